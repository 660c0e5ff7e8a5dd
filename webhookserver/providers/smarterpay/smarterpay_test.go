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
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
	"github.com/customer-operator/customer-operator/webhookserver/providers/smarterpay"
)

const (
	fixture     = "testdata/customer-account-inserted.json"
	webhookKey  = "wk_live_7hR2pQ9sLm"
	previousKey = "wk_live_old_3fG8"
	username    = "smarterpay"
	password    = "s3cret-pass:with-colon"
	oldPassword = "old-pass"
)

func readFixture(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func secretData(kv ...string) map[string][]byte {
	m := map[string][]byte{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = []byte(kv[i+1])
	}
	return m
}

// sign and basic build the headers as SmarterPay does, independently of Prepare.
func sign(key string, body []byte) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func request(body []byte, secret map[string][]byte, headers ...string) *providers.Request {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		h.Set(headers[i], headers[i+1])
	}
	return &providers.Request{Header: h, Body: body, Secret: secret, Now: time.Now(), Tolerance: 5 * time.Minute}
}

func assertSpec(t *testing.T, got, want crmv1alpha1.CustomerSpec) {
	t.Helper()
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range gv.NumField() {
		if g, w := gv.Field(i).Interface(), wv.Field(i).Interface(); !reflect.DeepEqual(g, w) {
			gj, _ := json.Marshal(g)
			wj, _ := json.Marshal(w)
			t.Errorf("spec.%s = %s, want %s", gv.Type().Field(i).Name, gj, wj)
		}
	}
}

func parse(t *testing.T, req *providers.Request) *providers.Result {
	t.Helper()
	res, err := smarterpay.New().Parse(req)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return res
}

func TestParseFixture(t *testing.T) {
	body := readFixture(t)
	res := parse(t, request(body, secretData("secret", webhookKey), "Webhook-Signature", sign(webhookKey, body)))
	if len(res.Events) != 1 || res.Ignored != 0 {
		t.Fatalf("Parse = %d events, %d ignored; want 1, 0", len(res.Events), res.Ignored)
	}
	ev := res.Events[0]
	if ev.ID != "FTBEV01781287" || ev.Type != "customer_account" || ev.Action != providers.ActionUpsert {
		t.Errorf("event = {%q %q %q}", ev.ID, ev.Type, ev.Action)
	}
	at := time.Date(2021, 7, 15, 12, 48, 39, 0, time.UTC)
	if !ev.Time.Equal(at) || ev.Time.Location() != time.UTC {
		t.Errorf("Time = %v, want %v", ev.Time, at)
	}
	assertSpec(t, ev.Customer, crmv1alpha1.CustomerSpec{
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
		ProviderUpdatedAt: &metav1.Time{Time: at},
		Attributes: map[string]string{
			"event_source": "20022091",
			"description":  "API - Customer Account inserted",
		},
	})
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

func TestMixedResourceTypes(t *testing.T) {
	body := []byte(mixedBatch)
	res := parse(t, request(body, secretData("secret", webhookKey), "Webhook-Signature", sign(webhookKey, body)))
	if len(res.Events) != 2 || res.Ignored != 2 {
		t.Fatalf("Parse = %d events, %d ignored; want 2, 2", len(res.Events), res.Ignored)
	}
	if res.Events[0].ID != "EV2" || res.Events[1].ID != "EV4" {
		t.Errorf("events out of order: %q, %q", res.Events[0].ID, res.Events[1].ID)
	}
	at := time.Date(2021, 7, 16, 9, 0, 0, 0, time.UTC)
	assertSpec(t, res.Events[0].Customer, crmv1alpha1.CustomerSpec{
		Provider:    crmv1alpha1.ProviderSmarterPay,
		ExternalID:  "CUST2",
		DisplayName: "Mr Mike Walker",
		Lifecycle:   crmv1alpha1.LifecycleInactive,
		Contacts:    []crmv1alpha1.Contact{{Title: "Mr", FirstName: "Mike", LastName: "Walker"}},
		Addresses: []crmv1alpha1.Address{{
			Type: crmv1alpha1.AddressDelivery, Line1: "1 Dock St", Line2: "Unit 4", City: "Hull",
			PostalCode: "HU1 1AA", Country: "GB",
		}},
		ProviderUpdatedAt: &metav1.Time{Time: at},
		Attributes: map[string]string{
			"event_source":     "10022091",
			"description":      "Portal - Customer Account updated",
			"custom_reference": "Payment Run 33",
		},
	})
	if got := res.Events[1].Time; !got.Equal(at) || got.Location() != time.UTC {
		t.Errorf("offset created_at = %v, want %v in UTC", got, at)
	}
	if res.Events[1].Customer.Attributes != nil {
		t.Errorf("Attributes = %v, want none", res.Events[1].Customer.Attributes)
	}
}

func TestNoCustomerEvents(t *testing.T) {
	for name, tc := range map[string]struct {
		body    string
		ignored int
	}{
		"empty batch":     {`{"events":[]}`, 0},
		"other resources": {`{"events":[{"id":"EV1","resource_type":"payment"},{"id":"EV2","resource_type":"mandate","reference":[1]}]}`, 2},
	} {
		t.Run(name, func(t *testing.T) {
			res := parse(t, request([]byte(tc.body), secretData("secret", webhookKey), "Webhook-Signature", sign(webhookKey, []byte(tc.body))))
			if len(res.Events) != 0 || res.Ignored != tc.ignored {
				t.Errorf("Parse = %d events, %d ignored; want 0, %d", len(res.Events), res.Ignored, tc.ignored)
			}
		})
	}
}

func TestAuthentication(t *testing.T) {
	body := readFixture(t)
	sig := sign(webhookKey, body)
	both := secretData("secret", webhookKey, "username", username, "password", password)
	for _, tc := range []struct {
		name    string
		secret  map[string][]byte
		headers []string
		ok      bool
	}{
		{"signature", secretData("secret", webhookKey), []string{"Webhook-Signature", sig}, true},
		{"signature with previousSecret", secretData("secret", webhookKey, "previousSecret", previousKey), []string{"Webhook-Signature", sign(previousKey, body)}, true},
		{"basic", secretData("username", username, "password", password), []string{"Authorization", basic(username, password)}, true},
		{"basic with previousPassword", secretData("username", username, "password", password, "previousPassword", oldPassword), []string{"Authorization", basic(username, oldPassword)}, true},
		{"basic scheme lowercase", secretData("username", username, "password", password), []string{"Authorization", "basic " + basic(username, password)[6:]}, true},
		{"both", both, []string{"Webhook-Signature", sig, "Authorization", basic(username, password)}, true},
		{"both configured, basic missing", both, []string{"Webhook-Signature", sig}, false},
		{"both configured, signature missing", both, []string{"Authorization", basic(username, password)}, false},
		{"both configured, wrong password", both, []string{"Webhook-Signature", sig, "Authorization", basic(username, "nope")}, false},
		{"missing signature", secretData("secret", webhookKey), nil, false},
		{"bad signature", secretData("secret", webhookKey), []string{"Webhook-Signature", sign("other", body)}, false},
		{"signature over another body", secretData("secret", webhookKey), []string{"Webhook-Signature", sign(webhookKey, []byte(`{"events":[]}`))}, false},
		{"signature not hex", secretData("secret", webhookKey), []string{"Webhook-Signature", "sha256=" + sig}, false},
		{"wrong key", secretData("secret", previousKey), []string{"Webhook-Signature", sig}, false},
		{"wrong basic password", secretData("username", username, "password", password), []string{"Authorization", basic(username, oldPassword)}, false},
		{"wrong basic user", secretData("username", username, "password", password), []string{"Authorization", basic("root", password)}, false},
		{"bearer instead of basic", secretData("username", username, "password", password), []string{"Authorization", "Bearer " + password}, false},
		{"no credentials configured", secretData(), []string{"Webhook-Signature", sig}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := smarterpay.New().Parse(request(body, tc.secret, tc.headers...))
			if tc.ok {
				if err != nil || len(res.Events) != 1 {
					t.Fatalf("Parse = %v, %v; want one event", res, err)
				}
				return
			}
			var perr *providers.Error
			if !errors.As(err, &perr) {
				t.Fatalf("Parse = %v, %v; want *providers.Error", res, err)
			}
			if perr.Status != 498 || perr.Reason != providers.ReasonUnauthorized {
				t.Errorf("error = {%d %s}, want {498 unauthorized}", perr.Status, perr.Reason)
			}
			for _, s := range []string{webhookKey, previousKey, password, oldPassword} {
				if strings.Contains(perr.Error(), s) {
					t.Errorf("error message holds a secret: %q", perr.Error())
				}
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		body   string
		reason string
		field  string
	}{
		{"not JSON", `{"events":[`, providers.ReasonMalformed, ""},
		{"events not an array", `{"events":{"id":"x"}}`, providers.ReasonMalformed, "events"},
		{"no events", `{"data":[]}`, providers.ReasonMalformed, "events"},
		{"customer event without reference", `{"events":[{"id":"EV0","created_at":"2021-07-15T12:48:39Z","resource_type":"payment"},{"id":"EV1","created_at":"2021-07-15T12:48:39Z","resource_type":"customer_account","reference":""}]}`, providers.ReasonMissingField, "events[1].reference"},
		{"customer event without id", `{"events":[{"created_at":"2021-07-15T12:48:39Z","resource_type":"customer_account","reference":"C1"}]}`, providers.ReasonMissingField, "events[0].id"},
		{"customer event without created_at", `{"events":[{"id":"EV1","resource_type":"customer_account","reference":"C1"}]}`, providers.ReasonMissingField, "events[0].created_at"},
		{"bad created_at", `{"events":[{"id":"EV1","created_at":"15/07/2021","resource_type":"customer_account","reference":"C1"}]}`, providers.ReasonMalformed, "events[0].created_at"},
		{"customer field of the wrong type", `{"events":[{"id":"EV0","resource_type":"payment"},{"id":"EV1","resource_type":"customer_account","reference":"C1","first_name":7}]}`, providers.ReasonMalformed, "events[1].first_name"},
		{"event not an object", `{"events":[5]}`, providers.ReasonMalformed, "events[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(tc.body)
			res, err := smarterpay.New().Parse(request(body, secretData("secret", webhookKey), "Webhook-Signature", sign(webhookKey, body)))
			var perr *providers.Error
			if !errors.As(err, &perr) {
				t.Fatalf("Parse = %v, %v; want *providers.Error", res, err)
			}
			if perr.Status != 400 || perr.Reason != tc.reason || perr.Field != tc.field {
				t.Errorf("error = {%d %s %q} %q, want {400 %s %q}", perr.Status, perr.Reason, perr.Field, perr.Message, tc.reason, tc.field)
			}
		})
	}
}

func TestPrepare(t *testing.T) {
	p := smarterpay.New()
	plain := readFixture(t)
	for name, secret := range map[string]map[string][]byte{
		"signature": secretData("secret", webhookKey),
		"basic":     secretData("username", username, "password", password),
		"both":      secretData("secret", webhookKey, "username", username, "password", password),
	} {
		t.Run(name, func(t *testing.T) {
			body, h, err := p.Prepare(plain, secret, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if h.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type = %q", h.Get("Content-Type"))
			}
			_, hasKey := secret["secret"]
			if got, want := h.Get("Webhook-Signature"), sign(webhookKey, plain); hasKey != (got == want) {
				t.Errorf("Webhook-Signature = %q (secret configured: %v)", got, hasKey)
			}
			_, hasUser := secret["username"]
			if got := h.Get("Authorization"); hasUser != (got == basic(username, password)) {
				t.Errorf("Authorization = %q (username configured: %v)", got, hasUser)
			}
			res := parse(t, &providers.Request{Header: h, Body: body, Secret: secret})
			if len(res.Events) != 1 {
				t.Errorf("round trip: %d events", len(res.Events))
			}
		})
	}
	if _, _, err := p.Prepare(plain, secretData("username", username), time.Now()); err == nil {
		t.Error("Prepare without usable credentials succeeded")
	}
}

func TestValidateSecret(t *testing.T) {
	p := smarterpay.New()
	for _, tc := range []struct {
		name    string
		data    map[string][]byte
		wantErr string
	}{
		{"webhook key", secretData("secret", webhookKey), ""},
		{"basic", secretData("username", username, "password", password), ""},
		{"both", secretData("secret", webhookKey, "username", username, "password", password), ""},
		{"nothing", secretData(), `"secret"`},
		{"username only", secretData("username", username), `"password"`},
		{"password only", secretData("secret", webhookKey, "password", password), `"username"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := p.ValidateSecret(tc.data)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidateSecret = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ValidateSecret = %v, want an error naming %s", err, tc.wantErr)
			}
			for _, v := range tc.data {
				if strings.Contains(err.Error(), string(v)) {
					t.Errorf("error holds a secret value: %v", err)
				}
			}
		})
	}
	if p.Name() != crmv1alpha1.ProviderSmarterPay {
		t.Errorf("Name = %q", p.Name())
	}
}

func FuzzParse(f *testing.F) {
	p := smarterpay.New()
	secret := secretData("secret", webhookKey, "username", username, "password", password)
	f.Add(readFixture(f))
	f.Add([]byte(mixedBatch))
	f.Add([]byte(`{"events":[{"resource_type":"customer_account","reference":"x","id":"y","created_at":"2021-07-15T12:48:39Z","event_source":1e400}]}`))
	f.Add([]byte(`{"events":null}`))
	f.Fuzz(func(t *testing.T, plaintext []byte) {
		check := func(req *providers.Request) {
			_, err := p.Parse(req)
			if err == nil {
				return
			}
			var perr *providers.Error
			if !errors.As(err, &perr) || perr.Status < 400 || perr.Status > 499 {
				t.Fatalf("Parse error %v (%T) is not a 4xx *providers.Error", err, err)
			}
		}
		body, h, err := p.Prepare(plaintext, secret, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		check(&providers.Request{Header: h, Body: body, Secret: secret})
		check(request(plaintext, secret))
	})
}

func BenchmarkParse(b *testing.B) {
	p := smarterpay.New()
	secret := secretData("secret", webhookKey)
	body, h, err := p.Prepare(readFixture(b), secret, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	req := &providers.Request{Header: h, Body: body, Secret: secret}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Parse(req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalBaseline(b *testing.B) {
	plain := readFixture(b)
	b.ReportAllocs()
	for b.Loop() {
		var m map[string]any
		if err := json.Unmarshal(plain, &m); err != nil {
			b.Fatal(err)
		}
	}
}
