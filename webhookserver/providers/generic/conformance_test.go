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

package generic_test

import (
	"bytes"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
	"github.com/customer-operator/customer-operator/webhookserver/providers/generic"
	"github.com/customer-operator/customer-operator/webhookserver/providers/providertest"
)

// Recipe reads a sample under config/samples/generic: its Secret's data and
// its CustomerSource.
func Recipe(tb testing.TB, name string) (*crmv1alpha1.CustomerSource, map[string][]byte) {
	tb.Helper()
	raw, err := os.ReadFile("../../../config/samples/generic/" + name + ".yaml")
	if err != nil {
		tb.Fatal(err)
	}
	var src *crmv1alpha1.CustomerSource
	var data map[string][]byte
	for _, doc := range bytes.Split(raw, []byte("\n---\n")) {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			tb.Fatal(err)
		}
		switch meta.Kind {
		case "Secret":
			var s corev1.Secret
			if err := yaml.UnmarshalStrict(doc, &s); err != nil {
				tb.Fatal(err)
			}
			data = map[string][]byte{}
			for k, v := range s.StringData {
				data[k] = []byte(v)
			}
		case "CustomerSource":
			src = &crmv1alpha1.CustomerSource{}
			if err := yaml.UnmarshalStrict(doc, src); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if src == nil || data == nil {
		tb.Fatalf("recipe %s holds no CustomerSource and Secret", name)
	}
	return src, data
}

func stripe(tb testing.TB) (*generic.Provider, map[string][]byte) {
	tb.Helper()
	src, secret := Recipe(tb, "stripe")
	src.UID, src.Generation = "stripe-recipe", 1
	p, err := generic.For(src)
	if err != nil {
		tb.Fatal(err)
	}
	return p, secret
}

func stripeSuite(tb testing.TB) providertest.Suite {
	p, secret := stripe(tb)
	fixture := func(name string) []byte { return providertest.Testdata(tb, name+".json") }
	fields := providers.EventFields{ID: "spec.generic.events.id", Type: "spec.generic.events.type", Time: "spec.generic.events.time"}
	at := func(s int64) time.Time { return time.Unix(s, 0).UTC() }
	return providertest.Suite{
		Provider:    p,
		Secret:      secret,
		WrongSecret: providertest.SecretData("secret", "whsec_someone_else"),
		SignsBody:   true,
		SignsTime:   true,
		Now:         time.Unix(1772366400, 0).UTC(),
		SignRaw: func(body []byte, secret map[string][]byte) http.Header {
			ts := strconv.FormatInt(time.Unix(1772366400, 0).Unix(), 10)
			h := http.Header{}
			h.Set("Stripe-Signature", "t="+ts+",v1="+providers.HMACSHA256Hex(providers.SecretValue(secret, "secret"), []byte(ts), []byte{'.'}, body))
			return h
		},
		Rotations: []providertest.Rotation{{Name: "secret", Old: providertest.SecretData("secret", "whsec_old"), New: secret}},
		Fixtures: []providertest.Fixture{
			{Name: "customer.created", Plaintext: fixture("stripe-customer-created"), Want: []providers.Event{{
				ID: "evt_1QX2yZ2eZvKYlo2C8bTn3Hc1", Type: "customer.created", Time: at(1772366340), Action: providers.ActionUpsert, Fields: fields,
				Customer: crmv1alpha1.CustomerSpec{
					Provider: crmv1alpha1.ProviderGeneric, ExternalID: "cus_RQ8fD9kPa2bX7m", DisplayName: "Ada Lovelace",
					Email: "ada@example.com", Phone: "+49 30 1234567", Language: "de-DE", TaxExempt: providers.BoolPtr(false),
					Addresses: []crmv1alpha1.Address{
						{Type: "billing", Line1: "Unter den Linden 1", City: "Berlin", PostalCode: "10117", Country: "DE"},
						{Type: "shipping", Name: "Ada L.", Phone: "+49 331 1", Line1: "Am Neuen Markt 9", Line2: "Hof", City: "Potsdam", State: "BB", PostalCode: "14467", Country: "DE"},
					},
					ProviderCreatedAt: &metav1.Time{Time: at(1772366339)},
					ProviderUpdatedAt: &metav1.Time{Time: at(1772366340)},
					Attributes:        map[string]string{"description": "Key account", "currency": "eur", "livemode": "false"},
				}}}},
			{Name: "customer.deleted", Plaintext: fixture("stripe-customer-deleted"), Want: []providers.Event{{
				ID: "evt_1QX30a2eZvKYlo2CxF3mQ9pL", Type: "customer.deleted", Time: at(1772366350), Action: providers.ActionDelete, Fields: fields,
				Customer: crmv1alpha1.CustomerSpec{
					Provider: crmv1alpha1.ProviderGeneric, ExternalID: "cus_RQ8fD9kPa2bX7m", DisplayName: "Ada Lovelace",
					Email: "ada@example.com", TaxExempt: providers.BoolPtr(true),
					ProviderCreatedAt: &metav1.Time{Time: at(1772366339)},
					ProviderUpdatedAt: &metav1.Time{Time: at(1772366350)},
					Attributes:        map[string]string{"livemode": "false"},
				}}}},
			{Name: "invoice.paid", Plaintext: fixture("stripe-invoice-paid"), Ignored: 1},
		},
		Rejected: []providertest.Rejection{
			{Name: "customer event without data.object.id", Status: http.StatusUnprocessableEntity, Reason: generic.ReasonExpression, Field: "spec.generic.mapping.externalID",
				Plaintext: []byte(`{"id":"evt_1","type":"customer.updated","created":1772366400,"livemode":false,"data":{"object":{"name":"x"}}}`)},
			{Name: "customer event with an empty id", Reason: providers.ReasonMissingField, Field: "spec.generic.events.id",
				Plaintext: []byte(`{"id":"","type":"customer.updated","created":1772366400,"livemode":false,"data":{"object":{"id":"cus_1"}}}`)},
			{Name: "name of the wrong type", Status: http.StatusUnprocessableEntity, Reason: generic.ReasonExpression, Field: "spec.generic.mapping.displayName",
				Plaintext: []byte(`{"id":"evt_1","type":"customer.updated","created":1772366400,"livemode":false,"data":{"object":{"id":"cus_1","name":5}}}`)},
		},
		Secrets: []providertest.SecretCase{
			{Name: "empty value", Data: providertest.SecretData("secret", ""), WantErr: `"secret"`},
		},
	}
}

func TestConformance(t *testing.T) { providertest.Run(t, stripeSuite(t)) }

func FuzzParse(f *testing.F) { providertest.Fuzz(f, stripeSuite(f)) }
