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

package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
)

// spec.fields limits data.spec to those fields and the identity, in both formats.
func TestDeliverProjectsFields(t *testing.T) {
	srv, got := recorder(t, http.StatusNoContent)
	client := loopbackClient()
	defer client.CloseIdleConnections()
	c := testCustomer()
	c.Spec.TaxID = "ATU12345678"
	c.Spec.Phone = "+43 316 123456"
	ev := NewEvent(c, false, time.Now())

	for _, tc := range []struct {
		format crmv1alpha1.SinkFormat
		fields []crmv1alpha1.CustomerField
		want   string // the keys of data.spec
	}{
		{crmv1alpha1.FormatStandardWebhooks, []crmv1alpha1.CustomerField{"displayName", "email", "addresses"},
			"addresses,displayName,email,externalID,lifecycle,provider"},
		{crmv1alpha1.FormatCloudEvents, []crmv1alpha1.CustomerField{"email"},
			"email,externalID,lifecycle,provider"},
		// A selected field the Customer does not have is simply absent.
		{crmv1alpha1.FormatStandardWebhooks, []crmv1alpha1.CustomerField{"companyName", "attributes"},
			"attributes,externalID,lifecycle,provider"},
		// No spec.fields: everything.
		{crmv1alpha1.FormatStandardWebhooks, nil,
			"addresses,approved,attributes,contacts,displayName,email,externalID,lifecycle,phone,provider,providerCreatedAt,taxID"},
	} {
		sink := &crmv1alpha1.CustomerSink{Spec: crmv1alpha1.CustomerSinkSpec{
			URL: srv.URL, Format: tc.format, Fields: tc.fields,
			SecretRef: &crmv1alpha1.SecretReference{Name: "s"},
		}}
		tgt, err := TargetFromSink(sink, map[string][]byte{KeySecret: []byte(vectorSecret)})
		if err != nil {
			t.Fatal(err)
		}
		if res := client.Deliver(context.Background(), tgt, ev); res.Err != nil {
			t.Fatalf("Deliver: %v", res.Err)
		}
		r := <-got
		var body struct {
			Data struct {
				Spec map[string]any `json:"spec"`
			} `json:"data"`
		}
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatal(err)
		}
		if keys := keys(body.Data.Spec); keys != tc.want {
			t.Errorf("%s %v: data.spec keys = %s, want %s", tc.format, tc.fields, keys, tc.want)
		}
		if tc.fields != nil && (strings.Contains(string(r.body), c.Spec.TaxID) || strings.Contains(string(r.body), c.Spec.Phone)) {
			t.Errorf("%s %v: the body holds the tax id or phone: %s", tc.format, tc.fields, r.body)
		}
		if body.Data.Spec["externalID"] != "cus_42" || body.Data.Spec["provider"] != "phasio" {
			t.Errorf("identity missing: %v", body.Data.Spec)
		}
	}
	// The projection is of a copy: the Customer is untouched.
	if c.Spec.TaxID == "" || c.Spec.Phone == "" || c.Spec.DisplayName == "" {
		t.Errorf("the Customer was changed: %+v", c.Spec)
	}
}

func TestTargetFromSinkRefusesUnknownFields(t *testing.T) {
	sink := &crmv1alpha1.CustomerSink{Spec: crmv1alpha1.CustomerSinkSpec{
		URL: "https://crm.example.com/", Format: crmv1alpha1.FormatCloudEvents,
		Fields: []crmv1alpha1.CustomerField{"email", "Email"},
	}}
	_, err := TargetFromSink(sink, nil)
	if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), `spec.fields: "Email"`) {
		t.Errorf("TargetFromSink = %v", err)
	}
}

// The CRD's enum of spec.fields is every field of CustomerSpec, so a field added
// to Customers can be selected (and nothing else can).
func TestFieldsEnumMatchesCustomerSpec(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", "crm.customer-operator.io_customersinks.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		t.Fatal(err)
	}
	items := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["fields"].Items.Schema
	var enum []string
	for _, v := range items.Enum {
		var s string
		if err := json.Unmarshal(v.Raw, &s); err != nil {
			t.Fatal(err)
		}
		enum = append(enum, s)
	}
	var fields []string
	for f := range specFieldIndex {
		fields = append(fields, string(f))
	}
	slices.Sort(enum)
	slices.Sort(fields)
	if !slices.Equal(enum, fields) {
		t.Errorf("spec.fields enum %v, CustomerSpec fields %v", enum, fields)
	}
}

func TestProjectionHash(t *testing.T) {
	marketing := []crmv1alpha1.CustomerField{"displayName", "email"}
	base := testCustomer()
	h := ProjectionHash(base, marketing)
	if h != ProjectionHash(testCustomer(), marketing) {
		t.Fatal("the same Customer hashes differently")
	}
	for name, tc := range map[string]struct {
		change  func(*crmv1alpha1.Customer)
		fields  []crmv1alpha1.CustomerField
		changes bool
	}{
		"a field the sink does not get": {func(c *crmv1alpha1.Customer) { c.Spec.Phone = "+43 1 234" }, marketing, false},
		"the generation alone":          {func(c *crmv1alpha1.Customer) { c.Generation++ }, marketing, false},
		"a field the sink gets":         {func(c *crmv1alpha1.Customer) { c.Spec.Email = "new@smith.example" }, marketing, true},
		"an identity field":             {func(c *crmv1alpha1.Customer) { c.Spec.Lifecycle = crmv1alpha1.LifecycleDeleted }, marketing, true},
		"a label":                       {func(c *crmv1alpha1.Customer) { c.Labels["tier"] = "silver" }, marketing, true},
		"any field, without fields":     {func(c *crmv1alpha1.Customer) { c.Spec.Phone = "+43 1 234" }, nil, true},
	} {
		c := testCustomer()
		tc.change(c)
		if changed := ProjectionHash(c, tc.fields) != ProjectionHash(base, tc.fields); changed != tc.changes {
			t.Errorf("%s: hash changed = %v, want %v", name, changed, tc.changes)
		}
	}
}
