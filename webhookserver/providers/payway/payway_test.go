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

package payway_test

import (
	"bytes"
	"encoding/base64"
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
	"github.com/customer-operator/customer-operator/webhookserver/providers/payway"
)

const (
	webhookFixture = "account-changed-webhook"
	ssiFixture     = "account-changed-ssi"

	username    = "payway-hooks"
	password    = "pw-Current-1"
	oldPassword = "pw-Old-0"
	token       = "tok_current_9a8b"
	oldToken    = "tok_old_1c2d"
)

// neverStored are the values of ssn, crn, birth_date, confirmation_code and
// contact_email_update_code in the fixtures and in withSecrets.
var neverStored = []string{"12341234-0000", "321321-0000", "2001-03-22", "19800101-1234", "1980-01-01", "CONF-9931", "UPD-7731"}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name + ".json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withSecrets fills the webhook fixture's empty identity fields and one-time codes.
func withSecrets(t testing.TB) []byte {
	b := readFixture(t, webhookFixture)
	for _, r := range [][2]string{
		{`"ssn": ""`, `"ssn": "19800101-1234"`},
		{`"birth_date": ""`, `"birth_date": "1980-01-01"`},
		{`"confirmation_code": ""`, `"confirmation_code": "CONF-9931"`},
		{`"contact_email_update_code": ""`, `"contact_email_update_code": "UPD-7731"`},
	} {
		if !bytes.Contains(b, []byte(r[0])) {
			t.Fatalf("fixture has no %s", r[0])
		}
		b = bytes.Replace(b, []byte(r[0]), []byte(r[1]), 1)
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

// basic builds the header as Payway sends it, independently of Prepare.
func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

var basicSecret = secretData("username", username, "password", password)

func request(body []byte, auth string, secret map[string][]byte) *providers.Request {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	if auth != "" {
		h.Set("Authorization", auth)
	}
	return &providers.Request{Header: h, Body: body, Secret: secret, Now: time.Now(), Tolerance: 5 * time.Minute}
}

func metaTime(s string) *metav1.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return &metav1.Time{Time: t.UTC()}
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

func assertNeverStored(t *testing.T, ev providers.Event) {
	t.Helper()
	all, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range neverStored {
		if bytes.Contains(all, []byte(v)) {
			t.Errorf("event holds never-stored value %q: %s", v, all)
		}
	}
	for _, k := range []string{"ssn", "crn", "birth_date", "confirmation_code", "contact_email_update_code"} {
		if _, ok := ev.Customer.Attributes[k]; ok {
			t.Errorf("attribute %q is stored", k)
		}
	}
}

func parseOne(t *testing.T, req *providers.Request) providers.Event {
	t.Helper()
	res, err := payway.New().Parse(req)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(res.Events) != 1 || res.Ignored != 0 {
		t.Fatalf("Parse = %d events, %d ignored; want 1, 0", len(res.Events), res.Ignored)
	}
	return res.Events[0]
}

func wantWebhookSpec() crmv1alpha1.CustomerSpec {
	return crmv1alpha1.CustomerSpec{
		Provider:    crmv1alpha1.ProviderPayway,
		ExternalID:  "6058a32309c04c0221d7a9c0",
		DisplayName: "Kalle Anka",
		Email:       "user@email.com",
		Phone:       "50460531",
		Lifecycle:   crmv1alpha1.LifecycleActive,
		Contacts:    []crmv1alpha1.Contact{{FirstName: "Kalle", LastName: "Anka", Email: "user@email.com", Phone: "50460531"}},
		Addresses: []crmv1alpha1.Address{{
			Type: crmv1alpha1.AddressBilling, Name: "Kalle Anka", Line1: "The Streets 12",
			Line2: "staircase A, floor 3, apartment 13", City: "Stockholm", PostalCode: "83242",
			Country: "SE", Phone: "50460531", Email: "user@email.com",
		}},
		ProviderCreatedAt: metaTime("2021-03-22T14:01:07Z"),
		ProviderUpdatedAt: metaTime("2021-03-22T14:01:07Z"),
		Attributes:        map[string]string{"organisation_id": "organisation"},
	}
}

func TestParseWebhookFixture(t *testing.T) {
	ev := parseOne(t, request(withSecrets(t), basic(username, password), basicSecret))
	if ev.ID != "payway:account_changed:6058a32309c04c0221d7a9c0:2021-03-22T14:01:07.737Z" {
		t.Errorf("ID = %q", ev.ID)
	}
	if ev.Type != "account_changed" || ev.Action != providers.ActionUpsert {
		t.Errorf("event = {%q %q}", ev.Type, ev.Action)
	}
	if want := time.Date(2021, 3, 22, 14, 1, 7, 737e6, time.UTC); !ev.Time.Equal(want) || ev.Time.Location() != time.UTC {
		t.Errorf("Time = %v, want %v", ev.Time, want)
	}
	assertSpec(t, ev.Customer, wantWebhookSpec())
	assertNeverStored(t, ev)
}

func TestParseSSIFixture(t *testing.T) {
	ev := parseOne(t, request(readFixture(t, ssiFixture), "Bearer "+token, secretData("token", token)))
	if ev.ID != "payway:account_changed:6058a29509c04c011084899c:2021-03-22T13:58:45+00:00" {
		t.Errorf("ID = %q", ev.ID)
	}
	if ev.Type != "account_changed" || ev.Action != providers.ActionUpsert {
		t.Errorf("event = {%q %q}", ev.Type, ev.Action)
	}
	if want := time.Date(2021, 3, 22, 13, 58, 45, 0, time.UTC); !ev.Time.Equal(want) || ev.Time.Location() != time.UTC {
		t.Errorf("Time = %v, want %v", ev.Time, want)
	}
	assertSpec(t, ev.Customer, crmv1alpha1.CustomerSpec{
		Provider:    crmv1alpha1.ProviderPayway,
		ExternalID:  "6058a29509c04c011084899c",
		DisplayName: "john doe",
		CompanyName: "acme",
		Email:       "user@email.com",
		Phone:       "0701231234",
		Contacts:    []crmv1alpha1.Contact{{FirstName: "john", LastName: "doe", Email: "user@email.com", Phone: "0701231234"}},
		Attributes:  map[string]string{"customer_number": "123456"},
	})
	assertNeverStored(t, ev)
}

func TestLifecycle(t *testing.T) {
	webhook := readFixture(t, webhookFixture)
	ssi := readFixture(t, ssiFixture)
	for _, tc := range []struct {
		name string
		body []byte
		want crmv1alpha1.Lifecycle
	}{
		{"status active", webhook, crmv1alpha1.LifecycleActive},
		{"status archived", bytes.Replace(webhook, []byte(`"status": "active"`), []byte(`"status": "archived"`), 1), crmv1alpha1.LifecycleArchived},
		{"account_archived", bytes.Replace(webhook, []byte(`"event": "account_changed"`), []byte(`"event": "account_archived"`), 1), crmv1alpha1.LifecycleArchived},
		{"unknown status", bytes.Replace(webhook, []byte(`"status": "active"`), []byte(`"status": "pending"`), 1), ""},
		{"ssi without status", ssi, ""},
		{"ssi account_archived", bytes.Replace(ssi, []byte(`"event_name": "account_changed"`), []byte(`"event_name": "account_archived"`), 1), crmv1alpha1.LifecycleArchived},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := parseOne(t, request(tc.body, basic(username, password), basicSecret))
			if ev.Customer.Lifecycle != tc.want {
				t.Errorf("Lifecycle = %q, want %q", ev.Customer.Lifecycle, tc.want)
			}
			if ev.Action != providers.ActionUpsert {
				t.Errorf("Action = %q", ev.Action)
			}
		})
	}
}

func TestAccountNamesWin(t *testing.T) {
	body := []byte(`{"event":"account_created_with_password_reset","timestamp":"2021-03-22T14:01:07Z","payload":{"account":{
		"id":"A1","first_name":"Greta","last_name":"","mobile_number":"0701","customer_number":42,
		"address":{"first_name":"Kalle","last_name":"Anka","street":"Gatan","street_number":7,"phone_number":"0801","mobile_number":null}}}}`)
	ev := parseOne(t, request(body, basic(username, password), basicSecret))
	c := ev.Customer
	if c.DisplayName != "Greta" || c.Contacts[0].FirstName != "Greta" || c.Contacts[0].LastName != "" {
		t.Errorf("name = %q / %+v, want the account's name, not mixed with the address's", c.DisplayName, c.Contacts)
	}
	if c.Phone != "0701" {
		t.Errorf("Phone = %q, want the account's mobile number", c.Phone)
	}
	if c.Attributes["customer_number"] != "42" {
		t.Errorf("customer_number = %q", c.Attributes["customer_number"])
	}
	if len(c.Addresses) != 1 || c.Addresses[0].Line1 != "Gatan 7" || c.Addresses[0].Line2 != "" || c.Addresses[0].Phone != "0801" {
		t.Errorf("Addresses = %+v", c.Addresses)
	}
	if c.ProviderCreatedAt != nil || c.ProviderUpdatedAt != nil {
		t.Errorf("provider times set without created/updated")
	}
}

func TestAuthentication(t *testing.T) {
	body := readFixture(t, webhookFixture)
	both := secretData("username", username, "password", password, "token", token)
	for _, tc := range []struct {
		name   string
		auth   string
		secret map[string][]byte
		ok     bool
	}{
		{"basic", basic(username, password), basicSecret, true},
		{"basic previousPassword", basic(username, oldPassword), secretData("username", username, "password", password, "previousPassword", oldPassword), true},
		{"bearer", "Bearer " + token, secretData("token", token), true},
		{"bearer lowercase scheme", "bearer " + token, secretData("token", token), true},
		{"bearer previousToken", "Bearer " + oldToken, secretData("token", token, "previousToken", oldToken), true},
		{"both configured, basic", basic(username, password), both, true},
		{"both configured, bearer", "Bearer " + token, both, true},
		{"missing authorization", "", basicSecret, false},
		{"wrong basic password", basic(username, oldPassword), basicSecret, false},
		{"wrong basic user", basic("admin", password), basicSecret, false},
		{"password as token", "Bearer " + password, basicSecret, false},
		{"wrong bearer token", "Bearer " + oldToken, secretData("token", token), false},
		{"basic when only a token is configured", basic(username, token), secretData("token", token), false},
		{"unknown scheme", "Digest " + token, secretData("token", token), false},
		{"basic not base64", "Basic !!!", basicSecret, false},
		{"no credentials configured", basic(username, password), secretData(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := payway.New().Parse(request(body, tc.auth, tc.secret))
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
			if perr.Status != 401 || perr.Reason != providers.ReasonUnauthorized {
				t.Errorf("error = {%d %s}, want {401 unauthorized}", perr.Status, perr.Reason)
			}
			for _, s := range []string{password, oldPassword, token, oldToken} {
				if strings.Contains(perr.Error(), s) {
					t.Errorf("error message holds a secret: %q", perr.Error())
				}
			}
		})
	}
}

func TestIgnored(t *testing.T) {
	for name, body := range map[string]string{
		"order event with account":  `{"event":"order_created","timestamp":"2021-03-22T14:01:07Z","payload":{"account":{"id":"A1"},"order":{"id":"O1"}}}`,
		"account event, no account": `{"event":"account_changed","timestamp":"2021-03-22T14:01:07Z","payload":{"account":null,"order":{}}}`,
		"no payload":                `{"event":"account_changed","timestamp":"2021-03-22T14:01:07Z"}`,
		"ssi other event":           `{"event_name":"subscription_created","timestamp":"2021-03-22T14:01:07Z","account_id":"A1"}`,
		"clashing field types":      `{"event":"payment_failed","timestamp":"2021-03-22T14:01:07Z","payload":{"account":"A1"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			res, err := payway.New().Parse(request([]byte(body), basic(username, password), basicSecret))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(res.Events) != 0 || res.Ignored != 1 {
				t.Errorf("Parse = %d events, %d ignored; want 0, 1", len(res.Events), res.Ignored)
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
		{"not JSON", `{"event":`, providers.ReasonMalformed, ""},
		{"not an object", `["account_changed"]`, providers.ReasonMalformed, ""},
		{"no event name", `{"timestamp":"2021-03-22T14:01:07Z"}`, providers.ReasonMalformed, "event"},
		{"account without id", `{"event":"account_changed","timestamp":"2021-03-22T14:01:07Z","payload":{"account":{"first_name":"x"}}}`, providers.ReasonMissingField, "payload.account.id"},
		{"ssi without account_id", `{"event_name":"account_changed","timestamp":"2021-03-22T14:01:07Z","customer":{"first_name":"x"}}`, providers.ReasonMissingField, "account_id"},
		{"no timestamp", `{"event":"account_changed","payload":{"account":{"id":"A1"}}}`, providers.ReasonMissingField, "timestamp"},
		{"bad timestamp", `{"event":"account_changed","timestamp":"22/03/2021","payload":{"account":{"id":"A1"}}}`, providers.ReasonMalformed, "timestamp"},
		{"account field of the wrong type", `{"event":"account_changed","timestamp":"2021-03-22T14:01:07Z","payload":{"account":{"id":"A1","first_name":["x"]}}}`, providers.ReasonMalformed, "payload.account.first_name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := payway.New().Parse(request([]byte(tc.body), basic(username, password), basicSecret))
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
	p := payway.New()
	body := readFixture(t, webhookFixture)
	for name, tc := range map[string]struct {
		secret map[string][]byte
		auth   string
	}{
		"basic":  {basicSecret, basic(username, password)},
		"bearer": {secretData("token", token), "Bearer " + token},
		"both":   {secretData("username", username, "password", password, "token", token), basic(username, password)},
	} {
		t.Run(name, func(t *testing.T) {
			out, h, err := p.Prepare(body, tc.secret, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, body) {
				t.Error("Prepare changed the body")
			}
			if h.Get("Authorization") != tc.auth || h.Get("Content-Type") != "application/json" {
				t.Errorf("headers = %v", h)
			}
			parseOne(t, &providers.Request{Header: h, Body: out, Secret: tc.secret})
		})
	}
	if _, _, err := p.Prepare(body, secretData("username", username), time.Now()); err == nil {
		t.Error("Prepare without usable credentials succeeded")
	}
}

func TestValidateSecret(t *testing.T) {
	p := payway.New()
	for _, tc := range []struct {
		name    string
		data    map[string][]byte
		wantErr string
	}{
		{"basic", basicSecret, ""},
		{"token", secretData("token", token), ""},
		{"nothing", secretData(), `"token"`},
		{"username only", secretData("username", username), `"password"`},
		{"password only", secretData("password", password), `"username"`},
		{"previousToken only", secretData("previousToken", oldToken), `"token"`},
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
	if p.Name() != crmv1alpha1.ProviderPayway {
		t.Errorf("Name = %q", p.Name())
	}
}

func FuzzParse(f *testing.F) {
	p := payway.New()
	secret := basicSecret
	f.Add(readFixture(f, webhookFixture))
	f.Add(readFixture(f, ssiFixture))
	f.Add([]byte(`{"event":"account_archived","timestamp":"2021-03-22T14:01:07Z","payload":{"account":{"id":1,"address":{"street_number":{}}}}}`))
	f.Add([]byte(`{"event_name":"account_x","account_id":7,"timestamp":"x","customer":null}`))
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
		check(request(plaintext, "", secret))
	})
}

func BenchmarkParse(b *testing.B) {
	p := payway.New()
	for _, name := range []string{webhookFixture, ssiFixture} {
		b.Run(name, func(b *testing.B) {
			body, h, err := p.Prepare(readFixture(b, name), basicSecret, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			req := &providers.Request{Header: h, Body: body, Secret: basicSecret}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Parse(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkUnmarshalBaseline(b *testing.B) {
	for _, name := range []string{webhookFixture, ssiFixture} {
		b.Run(name, func(b *testing.B) {
			plain := readFixture(b, name)
			b.ReportAllocs()
			for b.Loop() {
				var m map[string]any
				if err := json.Unmarshal(plain, &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
