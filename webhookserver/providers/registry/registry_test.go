/*
Copyright 2026 The customer-operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package registry_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
	"github.com/customer-operator/customer-operator/webhookserver/providers/registry"
)

// apiProviders reads the Provider enum from the API types, the values the CRDs
// accept in spec.provider.
func apiProviders(t *testing.T) []crmv1alpha1.Provider {
	t.Helper()
	src, err := os.ReadFile("../../../api/v1alpha1/customer_types.go")
	if err != nil {
		t.Fatal(err)
	}
	const marker = "// +kubebuilder:validation:Enum="
	lines := strings.Split(string(src), "\n")
	for i, line := range lines {
		if strings.HasPrefix(line, "type Provider string") && i > 0 && strings.HasPrefix(lines[i-1], marker) {
			var out []crmv1alpha1.Provider
			for v := range strings.SplitSeq(strings.TrimPrefix(lines[i-1], marker), ";") {
				out = append(out, crmv1alpha1.Provider(v))
			}
			slices.Sort(out)
			return out
		}
	}
	t.Fatal("no Enum marker above type Provider")
	return nil
}

// TestTable: every provider the API accepts is registered under its own name, and
// signs with a simulator (hack/sendevent and the tests need one); nothing else is.
func TestTable(t *testing.T) {
	if got, want := registry.Names(), apiProviders(t); !slices.Equal(got, want) {
		t.Errorf("registered providers = %v, the API's Provider enum = %v", got, want)
	}
	for _, name := range registry.Names() {
		p := registry.Lookup(name)
		if p == nil || p.Name() != name {
			t.Errorf("Lookup(%q) = %v", name, p)
			continue
		}
		if _, ok := p.(providers.Simulator); !ok {
			t.Errorf("provider %q implements no providers.Simulator", name)
		}
	}
	if p := registry.Lookup("stripe"); p != nil {
		t.Errorf("Lookup of an unknown provider = %v, want nil", p)
	}
}

// TestForSource: a source is served by its provider's entry, and a provider
// nothing registers is an error that names it.
func TestForSource(t *testing.T) {
	for _, name := range registry.Names() {
		if name == crmv1alpha1.ProviderGeneric {
			continue // served from its spec.generic, which the generic package tests
		}
		p, err := registry.ForSource(&crmv1alpha1.CustomerSource{Spec: crmv1alpha1.CustomerSourceSpec{Provider: name}})
		if err != nil || p != registry.Lookup(name) {
			t.Errorf("ForSource(%q) = %v, %v; want its registered provider", name, p, err)
		}
	}
	p, err := registry.ForSource(&crmv1alpha1.CustomerSource{Spec: crmv1alpha1.CustomerSourceSpec{Provider: "stripe"}})
	if err == nil || !strings.Contains(err.Error(), `"stripe"`) {
		t.Errorf("ForSource of an unknown provider = %v, %v; want an error naming it", p, err)
	}
}
