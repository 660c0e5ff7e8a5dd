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

// Package registry is the one table of providers. It sits beside the Provider
// interface rather than in the webhook server, so that the controllers (which
// validate a CustomerSource's Secret with it) and the tools under hack/ need not
// import the server. Adding a provider is a package under webhookserver/providers
// and a line in the table below.
package registry

import (
	"fmt"
	"slices"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
	"github.com/customer-operator/customer-operator/webhookserver/providers/generic"
	"github.com/customer-operator/customer-operator/webhookserver/providers/gettrx"
	"github.com/customer-operator/customer-operator/webhookserver/providers/payway"
	"github.com/customer-operator/customer-operator/webhookserver/providers/phasio"
	"github.com/customer-operator/customer-operator/webhookserver/providers/smarterpay"
)

// Every provider also implements providers.Simulator: hack/sendevent and the tests
// sign with it, and the registry test holds each entry to that.
var table = map[crmv1alpha1.Provider]providers.Provider{
	crmv1alpha1.ProviderPhasio:     phasio.New(),
	crmv1alpha1.ProviderSmarterPay: smarterpay.New(),
	crmv1alpha1.ProviderGETTRX:     gettrx.New(),
	crmv1alpha1.ProviderPayway:     payway.New(),
	// The generic entry serves no request: ForSource binds it to a source.
	crmv1alpha1.ProviderGeneric: generic.New(),
}

// Lookup returns the provider of a name, or nil.
func Lookup(name crmv1alpha1.Provider) providers.Provider {
	return table[name]
}

// ForSource returns the provider that serves src: the table's for a built-in
// provider, or for a generic one the provider bound to the source's compiled
// spec.generic. The error says why the source cannot be served: an unknown
// provider, or an expression that does not compile (a *generic.ExpressionError).
func ForSource(src *crmv1alpha1.CustomerSource) (providers.Provider, error) {
	if src.Spec.Provider == crmv1alpha1.ProviderGeneric {
		return generic.For(src)
	}
	if p := table[src.Spec.Provider]; p != nil {
		return p, nil
	}
	return nil, fmt.Errorf("unknown provider %q", src.Spec.Provider)
}

// Names returns the registered provider names, sorted.
func Names() []crmv1alpha1.Provider {
	names := make([]crmv1alpha1.Provider, 0, len(table))
	for name := range table {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
