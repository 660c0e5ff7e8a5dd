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

package smarterpay_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
	"github.com/customer-operator/customer-operator/webhookserver/providers/providertest"
	"github.com/customer-operator/customer-operator/webhookserver/providers/smarterpay"
)

const (
	fixture     = "customer-account-inserted.json"
	webhookKey  = "wk_live_7hR2pQ9sLm"
	previousKey = "wk_live_old_3fG8"
	username    = "smarterpay"
	password    = "s3cret-pass:with-colon"
	oldPassword = "old-pass"
)

var (
	keySecret   = providertest.SecretData("secret", webhookKey)
	basicSecret = providertest.SecretData("username", username, "password", password)
	bothSecret  = providertest.SecretData("secret", webhookKey, "username", username, "password", password)
)

// sign and basic build the headers as SmarterPay does, independently of Prepare.
func sign(key string, body []byte) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// A batch with a person (no company), a delivery address, an inactive status and a
// numeric event_source, between events of other resource types. The payment event
// uses customer field names with other JSON types, which must not fail the batch.
const mixedBatch = `{"events":[
 {"id":"EV1","created_at":"2021-07-15T12:48:39.000Z","resource_type":"payment","reference":12345,"first_name":{"x":1},"amount":"10.00"},
 {"id":"EV2","created_at":"2021-07-16T09:00:00.000Z","resource_type":"customer_account","description":"Portal - Customer Account updated",
  "event_source":10022091,"reference":"CUST2","Email":"","company_name":"","first_name":"Mike","last_name":"Walker","title":"Mr",
  "address_line1":"","address_line2":"","city":"","postal_code":"","country_code":"GB","status":"inactive",
  "delivery_address_line1":"1 Dock St","delivery_address_line2":"Unit 4","delivery_city":"Hull","delivery_postal_code":"HU1 1AA",
  "delivery_country_code":"GB","custom_reference":"Payment Run 33"},
 {"id":"EV3","created_at":"2021-07-16T09:00:01.000Z","resource_type":"mandate","reference":"MAND1"},
 {"id":"EV4","created_at":"2021-07-16T10:00:00+01:00","resource_type":"customer_account","reference":"CUST3","first_name":"A","last_name":"B","status":"active"}
]}`

func suite(tb testing.TB) providertest.Suite {
	fixtureAt := time.Date(2021, 7, 15, 12, 48, 39, 0, time.UTC)
	batchAt := time.Date(2021, 7, 16, 9, 0, 0, 0, time.UTC)
	rejected := func(name, reason, field, body string) providertest.Rejection {
		return providertest.Rejection{Name: name, Reason: reason, Field: field, Plaintext: []byte(body)}
	}
	const at = "2021-07-15T12:48:39Z"
	return providertest.Suite{
		Provider: smarterpay.New(),
		// Both methods configured, so the suite shows that each is required.
		Secret:       bothSecret,
		WrongSecret:  providertest.SecretData("secret", "wk_live_someone_else", "username", "someone", "password", "not-the-password"),
		Unauthorized: providers.StatusSmarterPayUnauthorized,
		SignsBody:    true,
		Rotations: []providertest.Rotation{
			{Name: "secret", Old: providertest.SecretData("secret", previousKey), New: keySecret},
			{Name: "password", Old: providertest.SecretData("username", username, "password", oldPassword), New: basicSecret},
		},
		Fixtures: []providertest.Fixture{
			{Name: "customer-account-inserted", Plaintext: providertest.Testdata(tb, fixture), Want: []providers.Event{{
				ID: "FTBEV01781287", Type: "customer_account", Action: providers.ActionUpsert, Time: fixtureAt,
				Customer: crmv1alpha1.CustomerSpec{
					Provider:    crmv1alpha1.ProviderSmarterPay,
					ExternalID:  "FTBCUST00034750",
					DisplayName: "Halestorm",
					CompanyName: "Halestorm",
					Email:       "lhale@email.com",
					Lifecycle:   crmv1alpha1.LifecycleActive,
					Contacts:    []crmv1alpha1.Contact{{FirstName: "Lizzy", LastName: "Hale", Email: "lhale@email.com"}},
					Addresses: []crmv1alpha1.Address{{
						Type: crmv1alpha1.AddressBilling, Line1: "32-36 Prospect Street", City: "Hull",
						PostalCode: "HU2 8PX", Country: "GB",
					}},
					ProviderUpdatedAt: &metav1.Time{Time: fixtureAt},
					Attributes: map[string]string{
						"event_source": "20022091",
						"description":  "API - Customer Account inserted",
					},
				},
			}}},
			{Name: "mixed resource types", Plaintext: []byte(mixedBatch), Ignored: 2, Want: []providers.Event{
				{
					ID: "EV2", Type: "customer_account", Action: providers.ActionUpsert, Time: batchAt,
					Customer: crmv1alpha1.CustomerSpec{
						Provider:    crmv1alpha1.ProviderSmarterPay,
						ExternalID:  "CUST2",
						DisplayName: "Mr Mike Walker",
						Lifecycle:   crmv1alpha1.LifecycleInactive,
						Contacts:    []crmv1alpha1.Contact{{Title: "Mr", FirstName: "Mike", LastName: "Walker"}},
						Addresses: []crmv1alpha1.Address{{
							Type: crmv1alpha1.AddressDelivery, Line1: "1 Dock St", Line2: "Unit 4", City: "Hull",
							PostalCode: "HU1 1AA", Country: "GB",
						}},
						ProviderUpdatedAt: &metav1.Time{Time: batchAt},
						Attributes: map[string]string{
							"event_source":     "10022091",
							"description":      "Portal - Customer Account updated",
							"custom_reference": "Payment Run 33",
						},
					},
				},
				{
					// An offset created_at is the same instant in UTC.
					ID: "EV4", Type: "customer_account", Action: providers.ActionUpsert, Time: batchAt,
					Customer: crmv1alpha1.CustomerSpec{
						Provider:          crmv1alpha1.ProviderSmarterPay,
						ExternalID:        "CUST3",
						DisplayName:       "A B",
						Lifecycle:         crmv1alpha1.LifecycleActive,
						Contacts:          []crmv1alpha1.Contact{{FirstName: "A", LastName: "B"}},
						ProviderUpdatedAt: &metav1.Time{Time: batchAt},
					},
				},
			}},
			{Name: "empty batch", Plaintext: []byte(`{"events":[]}`)},
			{Name: "other resources", Ignored: 2,
				Plaintext: []byte(`{"events":[{"id":"EV1","resource_type":"payment"},{"id":"EV2","resource_type":"mandate","reference":[1]}]}`)},
		},
		Rejected: []providertest.Rejection{
			rejected("events not an array", providers.ReasonMalformed, "events", `{"events":{"id":"x"}}`),
			rejected("no events", providers.ReasonMalformed, "events", `{"data":[]}`),
			rejected("customer event without reference", providers.ReasonMissingField, "events[1].reference",
				`{"events":[{"id":"EV0","created_at":"`+at+`","resource_type":"payment"},{"id":"EV1","created_at":"`+at+`","resource_type":"customer_account","reference":""}]}`),
			rejected("customer event without id", providers.ReasonMissingField, "events[0].id",
				`{"events":[{"created_at":"`+at+`","resource_type":"customer_account","reference":"C1"}]}`),
			rejected("customer event without created_at", providers.ReasonMissingField, "events[0].created_at",
				`{"events":[{"id":"EV1","resource_type":"customer_account","reference":"C1"}]}`),
			rejected("bad created_at", providers.ReasonMalformed, "events[0].created_at",
				`{"events":[{"id":"EV1","created_at":"15/07/2021","resource_type":"customer_account","reference":"C1"}]}`),
			rejected("customer field of the wrong type", providers.ReasonMalformed, "events[1].first_name",
				`{"events":[{"id":"EV0","resource_type":"payment"},{"id":"EV1","resource_type":"customer_account","reference":"C1","first_name":7}]}`),
			rejected("event not an object", providers.ReasonMalformed, "events[0]", `{"events":[5]}`),
		},
		Secrets: []providertest.SecretCase{
			{Name: "webhook key", Data: keySecret},
			{Name: "basic", Data: basicSecret},
			{Name: "username only", Data: providertest.SecretData("username", username), WantErr: `"password"`},
			{Name: "password only", Data: providertest.SecretData("secret", webhookKey, "password", password), WantErr: `"username"`},
		},
		FuzzSeeds: []providertest.Seed{
			{Plaintext: []byte(`{"events":[{"resource_type":"customer_account","reference":"x","id":"y","created_at":"2021-07-15T12:48:39Z","event_source":1e400}]}`)},
			{Plaintext: []byte(`{"events":null}`), Header: "Basic !!!"},
		},
	}
}

func TestConformance(t *testing.T) { providertest.Run(t, suite(t)) }

func FuzzParse(f *testing.F) { providertest.Fuzz(f, suite(f)) }

// TestAuthentication covers SmarterPay's header forms; the conformance suite
// covers missing, wrong and rotated credentials, and that with both methods
// configured each is required.
func TestAuthentication(t *testing.T) {
	body := providertest.Testdata(t, fixture)
	sig := sign(webhookKey, body)
	for _, tc := range []struct {
		name    string
		secret  map[string][]byte
		headers []string
		ok      bool
	}{
		{"signature", keySecret, []string{"Webhook-Signature", sig}, true},
		{"basic", basicSecret, []string{"Authorization", basic(username, password)}, true},
		{"basic scheme lowercase", basicSecret, []string{"Authorization", "basic " + basic(username, password)[6:]}, true},
		{"both", bothSecret, []string{"Webhook-Signature", sig, "Authorization", basic(username, password)}, true},
		{"signature with a scheme prefix", keySecret, []string{"Webhook-Signature", "sha256=" + sig}, false},
		{"wrong basic user", basicSecret, []string{"Authorization", basic("root", password)}, false},
		{"bearer instead of basic", basicSecret, []string{"Authorization", "Bearer " + password}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := smarterpay.New().Parse(providertest.RawRequest(body, tc.secret, time.Now(), tc.headers...))
			if tc.ok {
				if err != nil || len(res.Events) != 1 {
					t.Fatalf("Parse = %v, %v; want one event", res, err)
				}
				return
			}
			providertest.ExpectError(t, err, providers.Error{Status: 498, Reason: providers.ReasonUnauthorized}, bothSecret)
		})
	}
}

// TestPrepareWireFormat holds the simulator to the headers written out above, so
// the conformance suite's round trips cannot pass on a shared mistake.
func TestPrepareWireFormat(t *testing.T) {
	p := smarterpay.New()
	plain := providertest.Testdata(t, fixture)
	for name, tc := range map[string]struct {
		secret    map[string][]byte
		signature string
		auth      string
	}{
		"signature": {keySecret, sign(webhookKey, plain), ""},
		"basic":     {basicSecret, "", basic(username, password)},
		"both":      {bothSecret, sign(webhookKey, plain), basic(username, password)},
	} {
		t.Run(name, func(t *testing.T) {
			_, h, err := p.Prepare(plain, tc.secret, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if got := h.Get("Webhook-Signature"); got != tc.signature {
				t.Errorf("Webhook-Signature = %q, want %q", got, tc.signature)
			}
			if got := h.Get("Authorization"); got != tc.auth {
				t.Errorf("Authorization = %q, want %q", got, tc.auth)
			}
		})
	}
	if _, _, err := p.Prepare(plain, providertest.SecretData("username", username), time.Now()); err == nil {
		t.Error("Prepare without usable credentials succeeded")
	}
	if p.Name() != crmv1alpha1.ProviderSmarterPay {
		t.Errorf("Name = %q", p.Name())
	}
}

// The benchmarks verify the Webhook Key alone, the common configuration.
func benchSuite(b *testing.B) providertest.Suite {
	s := suite(b)
	s.Secret = keySecret
	return s
}

func BenchmarkParse(b *testing.B) { providertest.BenchParse(b, benchSuite(b)) }

func BenchmarkUnmarshalBaseline(b *testing.B) { providertest.BenchUnmarshalBaseline(b, benchSuite(b)) }
