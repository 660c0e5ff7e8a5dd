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

package gettrx_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
	"github.com/customer-operator/customer-operator/webhookserver/providers/gettrx"
)

const (
	signingKey  = "whsec_gettrx_Xc81kq"
	previousKey = "whsec_gettrx_old_0"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name + ".json")
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

// mac and signed build the header as GETTRX does, independently of Prepare.
func mac(key string, parts ...string) string {
	m := hmac.New(sha256.New, []byte(key))
	for _, p := range parts {
		m.Write([]byte(p))
	}
	return hex.EncodeToString(m.Sum(nil))
}

func signed(key string, at time.Time, body []byte) string {
	t := strconv.FormatInt(at.Unix(), 10)
	return "t=" + t + ",v1=" + mac(key, t, ".", string(body))
}

func request(body []byte, sig string, secret map[string][]byte) *providers.Request {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	if sig != "" {
		h.Set("x-webhook-signature", sig)
	}
	return &providers.Request{Header: h, Body: body, Secret: secret, Now: now, Tolerance: 5 * time.Minute}
}

func unix(s int64) *metav1.Time { return &metav1.Time{Time: time.Unix(s, 0).UTC()} }

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

func parseOne(t *testing.T, req *providers.Request) providers.Event {
	t.Helper()
	res, err := gettrx.New().Parse(req)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(res.Events) != 1 || res.Ignored != 0 {
		t.Fatalf("Parse = %d events, %d ignored; want 1, 0", len(res.Events), res.Ignored)
	}
	return res.Events[0]
}

var fixtures = []struct {
	name   string
	id     string
	typ    string
	at     int64
	action providers.Action
	spec   crmv1alpha1.CustomerSpec
}{
	{
		name: "customer-created", id: "evt_674f8f91778c0c7274a6636c", typ: "customer.created", at: 1733267345, action: providers.ActionUpsert,
		spec: crmv1alpha1.CustomerSpec{
			Provider: crmv1alpha1.ProviderGETTRX, ExternalID: "cus_674f8ebeb6d07a3f7b6cf555",
			DisplayName: "Alejandra", Email: "alejandra@example.com", Phone: "GW 1663954111",
			Addresses: []crmv1alpha1.Address{
				{Type: crmv1alpha1.AddressBilling, Line1: "57556 Paxton Keys Suite 337", Line2: "50820 Mill Road Suite 583",
					City: "West Eladiofurt", State: "Michigan", PostalCode: "12782", Country: "SA"},
				{Type: crmv1alpha1.AddressShipping, Name: "Hannah Shanahan", Phone: "GL 1587872490",
					Line1: "8892 Gutmann Gateway Apt. 488", Line2: "3988 Lauren Creek Suite 138",
					City: "Eliasville", State: "US-IN", PostalCode: "11857", Country: "US"},
			},
			ProviderCreatedAt: unix(1733267134), ProviderUpdatedAt: unix(1733267345),
			Attributes: map[string]string{
				"description": "patriot", "invoicePrefix": "D817FED4", "account": "acm_65f48b068b8d6912fe07f555",
			},
		},
	},
	{
		name: "customer-updated", id: "evt_66ad596722627a3dd0f30795", typ: "customer.updated", at: 1722636646, action: providers.ActionUpsert,
		spec: crmv1alpha1.CustomerSpec{
			Provider: crmv1alpha1.ProviderGETTRX, ExternalID: "cus_66ad2efc93cccf50d08ac5ac",
			DisplayName: "Test", Email: "test@example.com", Phone: "8336971128",
			Addresses: []crmv1alpha1.Address{
				{Type: crmv1alpha1.AddressBilling, City: "Torrance", State: "MX", Country: "MX"},
				{Type: crmv1alpha1.AddressShipping, Name: "Ryan", Phone: "7248978912 ", City: "Torrance", State: "MX", Country: "MX"},
			},
			ProviderCreatedAt: unix(1722625788), ProviderUpdatedAt: unix(1722636646),
			Attributes: map[string]string{
				"description": "description", "invoicePrefix": "D817FED4", "account": "acm_65f48b068b8d6912fe07f000",
				"invoiceSettings.defaultPaymentMethod": "pm_66ad2f8e60f2a24375837619",
			},
		},
	},
	{
		name: "customer-deleted", id: "evt_6793deef08af0b41b6d3b617", typ: "customer.deleted", at: 1737744111, action: providers.ActionDelete,
		spec: crmv1alpha1.CustomerSpec{
			Provider: crmv1alpha1.ProviderGETTRX, ExternalID: "cus_6793deef08af0b41b6d3b612",
			DisplayName: "Owen", Email: "owen@example.com", Phone: "NE 2365095768",
			Addresses: []crmv1alpha1.Address{
				{Type: crmv1alpha1.AddressBilling, Line1: "85527 Vicarage Lane Apt. 181", Line2: "582 Rippin Estates Apt. 625",
					City: "Schowaltercester", State: "Indiana", PostalCode: "09852", Country: "MP"},
				{Type: crmv1alpha1.AddressShipping, Name: "Joe Pacocha", Phone: "GM 7570490471",
					Line1: "3692 River Road Apt. 252", Line2: "5791 Mill Street Suite 814",
					City: "North Landen", State: "US-CO", PostalCode: "35789", Country: "US"},
			},
			ProviderCreatedAt: unix(1737744111), ProviderUpdatedAt: unix(1737744111),
			Attributes: map[string]string{
				"description": "engineer, author, creator 🇨🇨", "invoicePrefix": "D817FED4", "account": "acm_65f48b068b8d6912fe07f000",
			},
		},
	},
}

func TestParseFixtures(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			body := readFixture(t, fx.name)
			ev := parseOne(t, request(body, signed(signingKey, now, body), secretData("secret", signingKey)))
			if ev.ID != fx.id || ev.Type != fx.typ || ev.Action != fx.action {
				t.Errorf("event = {%q %q %q}, want {%q %q %q}", ev.ID, ev.Type, ev.Action, fx.id, fx.typ, fx.action)
			}
			if !ev.Time.Equal(time.Unix(fx.at, 0)) || ev.Time.Location() != time.UTC {
				t.Errorf("Time = %v, want %v in UTC", ev.Time, time.Unix(fx.at, 0).UTC())
			}
			assertSpec(t, ev.Customer, fx.spec)
		})
	}
}

func TestCreatedAsNumber(t *testing.T) {
	body := bytes.Replace(readFixture(t, "customer-created"), []byte(`"created": "1733267345"`), []byte(`"created": 1733267345`), 1)
	if bytes.Contains(body, []byte(`"1733267345"`)) {
		t.Fatal("fixture edit did not apply")
	}
	ev := parseOne(t, request(body, signed(signingKey, now, body), secretData("secret", signingKey)))
	if !ev.Time.Equal(time.Unix(1733267345, 0)) {
		t.Errorf("Time = %v", ev.Time)
	}
}

func TestSignatureForms(t *testing.T) {
	body := readFixture(t, "customer-created")
	ts := strconv.FormatInt(now.Unix(), 10)
	good := mac(signingKey, ts, ".", string(body))
	for name, tc := range map[string]struct {
		header string
		secret map[string][]byte
	}{
		"t and v1":          {"t=" + ts + ",v1=" + good, secretData("secret", signingKey)},
		"spaces":            {" t=" + ts + ", v1=" + good + " ", secretData("secret", signingKey)},
		"v1 before t":       {"v1=" + good + ",t=" + ts, secretData("secret", signingKey)},
		"several v1":        {"t=" + ts + ",v1=" + mac("rolled", ts, ".", string(body)) + ",v1=" + good, secretData("secret", signingKey)},
		"unknown entries":   {"t=" + ts + ",v0=abc,v1=nothex,v1=" + good, secretData("secret", signingKey)},
		"bare hex":          {mac(signingKey, string(body)), secretData("secret", signingKey)},
		"previousSecret":    {"t=" + ts + ",v1=" + mac(previousKey, ts, ".", string(body)), secretData("secret", signingKey, "previousSecret", previousKey)},
		"bare previous":     {mac(previousKey, string(body)), secretData("secret", signingKey, "previousSecret", previousKey)},
		"current w/ rotate": {"t=" + ts + ",v1=" + good, secretData("secret", signingKey, "previousSecret", previousKey)},
	} {
		t.Run(name, func(t *testing.T) {
			parseOne(t, request(body, tc.header, tc.secret))
		})
	}
}

func TestTolerance(t *testing.T) {
	body := readFixture(t, "customer-created")
	secret := secretData("secret", signingKey)
	for _, tc := range []struct {
		name      string
		at        time.Time
		tolerance time.Duration
		reason    string
	}{
		{"just inside", now.Add(-5 * time.Minute), 5 * time.Minute, ""},
		{"expired", now.Add(-10 * time.Minute), 5 * time.Minute, providers.ReasonTimestamp},
		{"from the future", now.Add(6 * time.Minute), 5 * time.Minute, providers.ReasonTimestamp},
		{"wider tolerance", now.Add(-10 * time.Minute), time.Hour, ""},
		{"default tolerance, inside", now.Add(-4 * time.Minute), 0, ""},
		{"default tolerance, expired", now.Add(-6 * time.Minute), 0, providers.ReasonTimestamp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := request(body, signed(signingKey, tc.at, body), secret)
			req.Tolerance = tc.tolerance
			_, err := gettrx.New().Parse(req)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			var perr *providers.Error
			if !errors.As(err, &perr) || perr.Status != 401 || perr.Reason != tc.reason {
				t.Fatalf("Parse error = %v, want 401 %s", err, tc.reason)
			}
		})
	}
}

func TestRejections(t *testing.T) {
	body := readFixture(t, "customer-created")
	secret := secretData("secret", signingKey)
	ts := strconv.FormatInt(now.Unix(), 10)
	sign := func(b string) string { return signed(signingKey, now, []byte(b)) }
	for _, tc := range []struct {
		name   string
		body   string
		header string
		secret map[string][]byte
		status int
		reason string
		field  string
	}{
		{"missing signature", string(body), "", secret, 401, providers.ReasonUnauthorized, ""},
		{"bad signature", string(body), signed("other", now, body), secret, 401, providers.ReasonUnauthorized, ""},
		{"wrong key", string(body), signed(signingKey, now, body), secretData("secret", previousKey), 401, providers.ReasonUnauthorized, ""},
		{"no key configured", string(body), signed(signingKey, now, body), nil, 401, providers.ReasonUnauthorized, ""},
		{"t changed after signing", string(body), "t=" + strconv.FormatInt(now.Unix()+1, 10) + ",v1=" + mac(signingKey, ts, ".", string(body)), secret, 401, providers.ReasonUnauthorized, ""},
		{"t without v1", string(body), "t=" + ts, secret, 401, providers.ReasonUnauthorized, ""},
		{"v1 without t", string(body), "v1=" + mac(signingKey, ts, ".", string(body)), secret, 401, providers.ReasonUnauthorized, ""},
		{"t not a number", string(body), "t=soon,v1=" + mac(signingKey, "soon", ".", string(body)), secret, 401, providers.ReasonUnauthorized, ""},
		{"bare hex over another body", string(body), mac(signingKey, "{}"), secret, 401, providers.ReasonUnauthorized, ""},
		{"expired and unsigned", string(body), signed("other", now.Add(-time.Hour), body), secret, 401, providers.ReasonUnauthorized, ""},
		{"malformed JSON", `{"type":"customer.created",`, sign(`{"type":"customer.created",`), secret, 400, providers.ReasonMalformed, ""},
		{"customer event without data.object.id", `{"id":"evt_1","type":"customer.updated","created":1,"data":{"object":{"name":"x"}}}`,
			sign(`{"id":"evt_1","type":"customer.updated","created":1,"data":{"object":{"name":"x"}}}`), secret, 400, providers.ReasonMissingField, "data.object.id"},
		{"customer event without data", `{"id":"evt_1","type":"customer.deleted","created":1}`,
			sign(`{"id":"evt_1","type":"customer.deleted","created":1}`), secret, 400, providers.ReasonMissingField, "data.object.id"},
		{"customer event without id", `{"type":"customer.created","created":"1","data":{"object":{"id":"cus_1"}}}`,
			sign(`{"type":"customer.created","created":"1","data":{"object":{"id":"cus_1"}}}`), secret, 400, providers.ReasonMissingField, "id"},
		{"created not seconds", `{"id":"evt_1","type":"customer.created","created":"yesterday","data":{"object":{"id":"cus_1"}}}`,
			sign(`{"id":"evt_1","type":"customer.created","created":"yesterday","data":{"object":{"id":"cus_1"}}}`), secret, 400, providers.ReasonMalformed, "created"},
		{"customer field of the wrong type", `{"id":"evt_1","type":"customer.created","created":1,"data":{"object":{"id":"cus_1","name":5}}}`,
			sign(`{"id":"evt_1","type":"customer.created","created":1,"data":{"object":{"id":"cus_1","name":5}}}`), secret, 400, providers.ReasonMalformed, "data.object.name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := gettrx.New().Parse(request([]byte(tc.body), tc.header, tc.secret))
			var perr *providers.Error
			if !errors.As(err, &perr) {
				t.Fatalf("Parse = %v, %v; want *providers.Error", res, err)
			}
			if perr.Status != tc.status || perr.Reason != tc.reason || perr.Field != tc.field {
				t.Errorf("error = {%d %s %q} %q, want {%d %s %q}", perr.Status, perr.Reason, perr.Field, perr.Message, tc.status, tc.reason, tc.field)
			}
			for _, s := range []string{signingKey, previousKey} {
				if strings.Contains(perr.Error(), s) {
					t.Errorf("error message holds a secret: %q", perr.Error())
				}
			}
		})
	}
}

func TestIgnored(t *testing.T) {
	for name, body := range map[string]string{
		"refund":              `{"id":"evt_2","type":"refund.pending","created":"1733267345","data":{"object":{"id":"re_1","amount":100}}}`,
		"clashing field type": `{"id":"evt_3","type":"invoice.paid","created":1733267345,"data":{"object":{"id":"in_1","address":"a string","name":["x"]}}}`,
		"customer.source":     `{"id":"evt_4","type":"customer.source.created","created":1733267345,"data":{"object":{"id":"src_1"}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			res, err := gettrx.New().Parse(request([]byte(body), signed(signingKey, now, []byte(body)), secretData("secret", signingKey)))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(res.Events) != 0 || res.Ignored != 1 {
				t.Errorf("Parse = %d events, %d ignored; want 0, 1", len(res.Events), res.Ignored)
			}
		})
	}
}

func TestPrepare(t *testing.T) {
	p := gettrx.New()
	body := readFixture(t, "customer-updated")
	out, h, err := p.Prepare(body, secretData("secret", signingKey), now)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, body) {
		t.Error("Prepare changed the body")
	}
	if h.Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type = %q", h.Get("Content-Type"))
	}
	if got, want := h.Get("x-webhook-signature"), signed(signingKey, now, body); got != want {
		t.Errorf("x-webhook-signature = %q, want %q", got, want)
	}
	parseOne(t, &providers.Request{Header: h, Body: out, Secret: secretData("secret", signingKey), Now: now.Add(time.Minute)})
	if _, _, err := p.Prepare(body, nil, now); err == nil {
		t.Error("Prepare without a key succeeded")
	}
}

func TestValidateSecret(t *testing.T) {
	p := gettrx.New()
	if err := p.ValidateSecret(secretData("secret", signingKey)); err != nil {
		t.Errorf("ValidateSecret = %v", err)
	}
	for _, data := range []map[string][]byte{nil, secretData("secret", ""), secretData("previousSecret", previousKey)} {
		if err := p.ValidateSecret(data); err == nil || !strings.Contains(err.Error(), `"secret"`) {
			t.Errorf("ValidateSecret(%v) = %v, want an error naming \"secret\"", data, err)
		}
	}
	if p.Name() != crmv1alpha1.ProviderGETTRX {
		t.Errorf("Name = %q", p.Name())
	}
}

func FuzzParse(f *testing.F) {
	p := gettrx.New()
	secret := secretData("secret", signingKey)
	for _, fx := range fixtures {
		f.Add(readFixture(f, fx.name), "")
	}
	f.Add([]byte(`{"id":"e","type":"customer.created","created":1e99,"data":{"object":{"id":"c","created":"x","address":null,"shipping":{}}}}`), "t=1,v1=00")
	f.Add([]byte(`{"type":"x","data":{"object":[]}}`), "v1=,t=,=")
	f.Fuzz(func(t *testing.T, plaintext []byte, header string) {
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
		body, h, err := p.Prepare(plaintext, secret, now)
		if err != nil {
			t.Fatal(err)
		}
		check(&providers.Request{Header: h, Body: body, Secret: secret, Now: now})
		check(request(plaintext, header, secret))
		check(request(plaintext, mac(signingKey, string(plaintext)), secret))
	})
}

func BenchmarkParse(b *testing.B) {
	p := gettrx.New()
	secret := secretData("secret", signingKey)
	for _, fx := range fixtures {
		b.Run(fx.name, func(b *testing.B) {
			body, h, err := p.Prepare(readFixture(b, fx.name), secret, now)
			if err != nil {
				b.Fatal(err)
			}
			req := &providers.Request{Header: h, Body: body, Secret: secret, Now: now, Tolerance: 5 * time.Minute}
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
	for _, fx := range fixtures {
		b.Run(fx.name, func(b *testing.B) {
			plain := readFixture(b, fx.name)
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
