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
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
	"github.com/customer-operator/customer-operator/webhookserver/providers/payway"
	"github.com/customer-operator/customer-operator/webhookserver/providers/providertest"
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

var (
	basicSecret = providertest.SecretData("username", username, "password", password)
	tokenSecret = providertest.SecretData("token", token)
)

// neverStored are the values of ssn, crn, birth_date, confirmation_code and
// contact_email_update_code in the fixtures and in withSecrets.
var neverStored = []string{"12341234-0000", "321321-0000", "2001-03-22", "19800101-1234", "1980-01-01", "CONF-9931", "UPD-7731"}

// withSecrets fills the webhook fixture's empty identity fields and one-time codes.
func withSecrets(tb testing.TB) []byte {
	tb.Helper()
	b := providertest.Testdata(tb, webhookFixture+".json")
	for _, r := range [][2]string{
		{`"ssn": ""`, `"ssn": "19800101-1234"`},
		{`"birth_date": ""`, `"birth_date": "1980-01-01"`},
		{`"confirmation_code": ""`, `"confirmation_code": "CONF-9931"`},
		{`"contact_email_update_code": ""`, `"contact_email_update_code": "UPD-7731"`},
	} {
		if !bytes.Contains(b, []byte(r[0])) {
			tb.Fatalf("fixture has no %s", r[0])
		}
		b = bytes.Replace(b, []byte(r[0]), []byte(r[1]), 1)
	}
	return b
}

// basic builds the header as Payway sends it, independently of Prepare.
func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func request(body []byte, auth string, secret map[string][]byte) *providers.Request {
	if auth == "" {
		return providertest.RawRequest(body, secret, time.Now())
	}
	return providertest.RawRequest(body, secret, time.Now(), "Authorization", auth)
}

func metaTime(s string) *metav1.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return &metav1.Time{Time: t.UTC()}
}

func parseOne(t *testing.T, req *providers.Request) providers.Event {
	t.Helper()
	return providertest.ParseOne(t, payway.New(), req)
}

func suite(tb testing.TB) providertest.Suite {
	const at = "2021-03-22T14:01:07Z"
	ignored := func(name, body string) providertest.Fixture {
		return providertest.Fixture{Name: name, Plaintext: []byte(body), Ignored: 1}
	}
	rejected := func(name, reason, field, body string) providertest.Rejection {
		return providertest.Rejection{Name: name, Reason: reason, Field: field, Plaintext: []byte(body)}
	}
	return providertest.Suite{
		Provider:    payway.New(),
		Secret:      basicSecret,
		WrongSecret: providertest.SecretData("username", "someone", "password", "not-the-password"),
		Rotations: []providertest.Rotation{
			{Name: "password", Old: providertest.SecretData("username", username, "password", oldPassword), New: basicSecret},
			{Name: "token", Old: providertest.SecretData("token", oldToken), New: tokenSecret},
		},
		Fixtures: []providertest.Fixture{
			{Name: "account-changed-webhook", Plaintext: withSecrets(tb), Want: []providers.Event{{
				ID:   "payway:account_changed:6058a32309c04c0221d7a9c0:2021-03-22T14:01:07.737Z",
				Type: "account_changed", Action: providers.ActionUpsert,
				Time: time.Date(2021, 3, 22, 14, 1, 7, 737e6, time.UTC),
				Customer: crmv1alpha1.CustomerSpec{
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
				},
			}}},
			{Name: "account-changed-ssi", Plaintext: providertest.Testdata(tb, ssiFixture+".json"), Want: []providers.Event{{
				ID:   "payway:account_changed:6058a29509c04c011084899c:2021-03-22T13:58:45+00:00",
				Type: "account_changed", Action: providers.ActionUpsert,
				Time: time.Date(2021, 3, 22, 13, 58, 45, 0, time.UTC),
				Customer: crmv1alpha1.CustomerSpec{
					Provider:    crmv1alpha1.ProviderPayway,
					ExternalID:  "6058a29509c04c011084899c",
					DisplayName: "john doe",
					CompanyName: "acme",
					Email:       "user@email.com",
					Phone:       "0701231234",
					Contacts:    []crmv1alpha1.Contact{{FirstName: "john", LastName: "doe", Email: "user@email.com", Phone: "0701231234"}},
					Attributes:  map[string]string{"customer_number": "123456"},
				},
			}}},
			ignored("order event with account", `{"event":"order_created","timestamp":"`+at+`","payload":{"account":{"id":"A1"},"order":{"id":"O1"}}}`),
			ignored("account event, no account", `{"event":"account_changed","timestamp":"`+at+`","payload":{"account":null,"order":{}}}`),
			ignored("no payload", `{"event":"account_changed","timestamp":"`+at+`"}`),
			ignored("ssi other event", `{"event_name":"subscription_created","timestamp":"`+at+`","account_id":"A1"}`),
			ignored("clashing field types", `{"event":"payment_failed","timestamp":"`+at+`","payload":{"account":"A1"}}`),
		},
		Rejected: []providertest.Rejection{
			rejected("no event name", providers.ReasonMalformed, "event", `{"timestamp":"`+at+`"}`),
			rejected("payload without event name", providers.ReasonMissingField, "event", `{"timestamp":"`+at+`","payload":{"account":{"id":"A1"}}}`),
			rejected("account without id", providers.ReasonMissingField, "payload.account.id", `{"event":"account_changed","timestamp":"`+at+`","payload":{"account":{"first_name":"x"}}}`),
			rejected("ssi without account_id", providers.ReasonMissingField, "account_id", `{"event_name":"account_changed","timestamp":"`+at+`","customer":{"first_name":"x"}}`),
			rejected("no timestamp", providers.ReasonMissingField, "timestamp", `{"event":"account_changed","payload":{"account":{"id":"A1"}}}`),
			rejected("ssi without timestamp", providers.ReasonMissingField, "timestamp", `{"event_name":"account_changed","account_id":"A1"}`),
			rejected("bad timestamp", providers.ReasonMalformed, "timestamp", `{"event":"account_changed","timestamp":"22/03/2021","payload":{"account":{"id":"A1"}}}`),
			rejected("account field of the wrong type", providers.ReasonMalformed, "payload.account.first_name", `{"event":"account_changed","timestamp":"`+at+`","payload":{"account":{"id":"A1","first_name":["x"]}}}`),
		},
		Secrets: []providertest.SecretCase{
			{Name: "token", Data: tokenSecret},
			{Name: "basic and token", Data: providertest.SecretData("username", username, "password", password, "token", token)},
			{Name: "username only", Data: providertest.SecretData("username", username), WantErr: `"password"`},
			{Name: "password only", Data: providertest.SecretData("password", password), WantErr: `"username"`},
			{Name: "previousToken only", Data: providertest.SecretData("previousToken", oldToken), WantErr: `"token"`},
		},
		FuzzSeeds: []providertest.Seed{
			{Plaintext: []byte(`{"event":"account_archived","timestamp":"2021-03-22T14:01:07Z","payload":{"account":{"id":1,"address":{"street_number":{}}}}}`), Header: "Bearer x"},
			{Plaintext: []byte(`{"event_name":"account_x","account_id":7,"timestamp":"x","customer":null}`), Header: "Basic !!!"},
		},
	}
}

func TestConformance(t *testing.T) { providertest.Run(t, suite(t)) }

func FuzzParse(f *testing.F) { providertest.Fuzz(f, suite(f)) }

// TestNeverStored: national identity numbers and one-time codes are never decoded,
// in either wire form.
func TestNeverStored(t *testing.T) {
	for name, body := range map[string][]byte{
		"webhook": withSecrets(t),
		"ssi":     providertest.Testdata(t, ssiFixture+".json"),
	} {
		t.Run(name, func(t *testing.T) {
			ev := parseOne(t, request(body, basic(username, password), basicSecret))
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
		})
	}
}

func TestLifecycle(t *testing.T) {
	webhook := providertest.Testdata(t, webhookFixture+".json")
	ssi := providertest.Testdata(t, ssiFixture+".json")
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

// TestAuthentication covers Payway's two header schemes side by side; the
// conformance suite covers missing, wrong and rotated credentials.
func TestAuthentication(t *testing.T) {
	body := providertest.Testdata(t, webhookFixture+".json")
	both := providertest.SecretData("username", username, "password", password, "token", token)
	for _, tc := range []struct {
		name   string
		auth   string
		secret map[string][]byte
		ok     bool
	}{
		{"bearer lowercase scheme", "bearer " + token, tokenSecret, true},
		{"both configured, basic", basic(username, password), both, true},
		{"both configured, bearer", "Bearer " + token, both, true},
		{"wrong basic user", basic("admin", password), basicSecret, false},
		{"password as token", "Bearer " + password, basicSecret, false},
		{"basic when only a token is configured", basic(username, token), tokenSecret, false},
		{"unknown scheme", "Digest " + token, tokenSecret, false},
		{"basic not base64", "Basic !!!", basicSecret, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := payway.New().Parse(request(body, tc.auth, tc.secret))
			if tc.ok {
				if err != nil || len(res.Events) != 1 {
					t.Fatalf("Parse = %v, %v; want one event", res, err)
				}
				return
			}
			providertest.ExpectError(t, err, providers.Error{Status: 401, Reason: providers.ReasonUnauthorized}, tc.secret, both)
		})
	}
}

// TestPrepareWireFormat holds the simulator to the headers written out above, so
// the conformance suite's round trips cannot pass on a shared mistake.
func TestPrepareWireFormat(t *testing.T) {
	p := payway.New()
	body := providertest.Testdata(t, webhookFixture+".json")
	for name, tc := range map[string]struct {
		secret map[string][]byte
		auth   string
	}{
		"basic":  {basicSecret, basic(username, password)},
		"bearer": {tokenSecret, "Bearer " + token},
		"both":   {providertest.SecretData("username", username, "password", password, "token", token), basic(username, password)},
	} {
		t.Run(name, func(t *testing.T) {
			out, h, err := p.Prepare(body, tc.secret, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, body) {
				t.Error("Prepare changed the body")
			}
			if h.Get("Authorization") != tc.auth {
				t.Errorf("Authorization = %q, want %q", h.Get("Authorization"), tc.auth)
			}
		})
	}
	if _, _, err := p.Prepare(body, providertest.SecretData("username", username), time.Now()); err == nil {
		t.Error("Prepare without usable credentials succeeded")
	}
	if p.Name() != crmv1alpha1.ProviderPayway {
		t.Errorf("Name = %q", p.Name())
	}
}

func BenchmarkParse(b *testing.B) { providertest.BenchParse(b, suite(b)) }

func BenchmarkUnmarshalBaseline(b *testing.B) { providertest.BenchUnmarshalBaseline(b, suite(b)) }
