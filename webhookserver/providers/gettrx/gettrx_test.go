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
	"net/http"
	"strconv"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
	"github.com/customer-operator/customer-operator/webhookserver/providers/gettrx"
	"github.com/customer-operator/customer-operator/webhookserver/providers/providertest"
)

const (
	signingKey  = "whsec_gettrx_Xc81kq"
	previousKey = "whsec_gettrx_old_0"
)

var (
	now    = providertest.DefaultNow
	secret = providertest.SecretData("secret", signingKey)
)

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
	return providertest.RawRequest(body, secret, now, gettrx.SignatureHeader, sig)
}

func unix(s int64) *metav1.Time { return &metav1.Time{Time: time.Unix(s, 0).UTC()} }

func event(id, typ string, at int64, action providers.Action, spec crmv1alpha1.CustomerSpec) providers.Event {
	return providers.Event{ID: id, Type: typ, Time: time.Unix(at, 0).UTC(), Action: action, Customer: spec}
}

func suite(tb testing.TB) providertest.Suite {
	fixture := func(name string) []byte { return providertest.Testdata(tb, name+".json") }
	return providertest.Suite{
		Provider:    gettrx.New(),
		Secret:      secret,
		WrongSecret: providertest.SecretData("secret", "whsec_someone_else"),
		SignsBody:   true,
		SignsTime:   true,
		// The bare form signs the body as it stands.
		SignRaw: func(body []byte, secret map[string][]byte) http.Header {
			h := http.Header{}
			h.Set(gettrx.SignatureHeader, providers.HMACSHA256Hex(providers.SecretValue(secret, providers.KeySecret), body))
			return h
		},
		Rotations: []providertest.Rotation{{
			Name: "secret",
			Old:  providertest.SecretData("secret", previousKey),
			New:  secret,
		}},
		Fixtures: []providertest.Fixture{
			{Name: "customer-created", Plaintext: fixture("customer-created"), Want: []providers.Event{event(
				"evt_674f8f91778c0c7274a6636c", "customer.created", 1733267345, providers.ActionUpsert, crmv1alpha1.CustomerSpec{
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
				})}},
			{Name: "customer-updated", Plaintext: fixture("customer-updated"), Want: []providers.Event{event(
				"evt_66ad596722627a3dd0f30795", "customer.updated", 1722636646, providers.ActionUpsert, crmv1alpha1.CustomerSpec{
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
				})}},
			{Name: "customer-deleted", Plaintext: fixture("customer-deleted"), Want: []providers.Event{event(
				"evt_6793deef08af0b41b6d3b617", "customer.deleted", 1737744111, providers.ActionDelete, crmv1alpha1.CustomerSpec{
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
				})}},
			{Name: "refund", Ignored: 1,
				Plaintext: []byte(`{"id":"evt_2","type":"refund.pending","created":"1733267345","data":{"object":{"id":"re_1","amount":100}}}`)},
			// Other objects may use a customer's field names with other JSON types.
			{Name: "clashing field type", Ignored: 1,
				Plaintext: []byte(`{"id":"evt_3","type":"invoice.paid","created":1733267345,"data":{"object":{"id":"in_1","address":"a string","name":["x"]}}}`)},
			{Name: "customer.source", Ignored: 1,
				Plaintext: []byte(`{"id":"evt_4","type":"customer.source.created","created":1733267345,"data":{"object":{"id":"src_1"}}}`)},
		},
		Rejected: []providertest.Rejection{
			{Name: "customer event without data.object.id", Reason: providers.ReasonMissingField, Field: "data.object.id",
				Plaintext: []byte(`{"id":"evt_1","type":"customer.updated","created":1,"data":{"object":{"name":"x"}}}`)},
			{Name: "customer event without data", Reason: providers.ReasonMissingField, Field: "data.object.id",
				Plaintext: []byte(`{"id":"evt_1","type":"customer.deleted","created":1}`)},
			{Name: "customer event without id", Reason: providers.ReasonMissingField, Field: "id",
				Plaintext: []byte(`{"type":"customer.created","created":"1","data":{"object":{"id":"cus_1"}}}`)},
			{Name: "customer event without created", Reason: providers.ReasonMissingField, Field: "created",
				Plaintext: []byte(`{"id":"evt_1","type":"customer.created","data":{"object":{"id":"cus_1"}}}`)},
			{Name: "created not seconds", Reason: providers.ReasonMalformed, Field: "created",
				Plaintext: []byte(`{"id":"evt_1","type":"customer.created","created":"yesterday","data":{"object":{"id":"cus_1"}}}`)},
			{Name: "customer field of the wrong type", Reason: providers.ReasonMalformed, Field: "data.object.name",
				Plaintext: []byte(`{"id":"evt_1","type":"customer.created","created":1,"data":{"object":{"id":"cus_1","name":5}}}`)},
		},
		Secrets: []providertest.SecretCase{
			{Name: "empty value", Data: providertest.SecretData("secret", ""), WantErr: `"secret"`},
		},
		FuzzSeeds: []providertest.Seed{
			{Plaintext: []byte(`{"id":"e","type":"customer.created","created":1e99,"data":{"object":{"id":"c","created":"x","address":null,"shipping":{}}}}`), Header: "t=1,v1=00"},
			{Plaintext: []byte(`{"type":"x","data":{"object":[]}}`), Header: "v1=,t=,="},
		},
	}
}

func TestConformance(t *testing.T) { providertest.Run(t, suite(t)) }

func FuzzParse(f *testing.F) { providertest.Fuzz(f, suite(f)) }

func TestCreatedAsNumber(t *testing.T) {
	body := bytes.Replace(providertest.Testdata(t, "customer-created.json"), []byte(`"created": "1733267345"`), []byte(`"created": 1733267345`), 1)
	if bytes.Contains(body, []byte(`"1733267345"`)) {
		t.Fatal("fixture edit did not apply")
	}
	ev := providertest.ParseOne(t, gettrx.New(), request(body, signed(signingKey, now, body), secret))
	if !ev.Time.Equal(time.Unix(1733267345, 0)) {
		t.Errorf("Time = %v", ev.Time)
	}
}

// TestSignatureForms covers the header forms GETTRX may send, since it does not
// document one.
func TestSignatureForms(t *testing.T) {
	body := providertest.Testdata(t, "customer-created.json")
	ts := strconv.FormatInt(now.Unix(), 10)
	good := mac(signingKey, ts, ".", string(body))
	rotating := providertest.SecretData("secret", signingKey, "previousSecret", previousKey)
	for name, tc := range map[string]struct {
		header string
		secret map[string][]byte
	}{
		"t and v1":        {"t=" + ts + ",v1=" + good, secret},
		"spaces":          {" t=" + ts + ", v1=" + good + " ", secret},
		"v1 before t":     {"v1=" + good + ",t=" + ts, secret},
		"several v1":      {"t=" + ts + ",v1=" + mac("rolled", ts, ".", string(body)) + ",v1=" + good, secret},
		"unknown entries": {"t=" + ts + ",v0=abc,v1=nothex,v1=" + good, secret},
		"bare hex":        {mac(signingKey, string(body)), secret},
		"bare previous":   {mac(previousKey, string(body)), rotating},
	} {
		t.Run(name, func(t *testing.T) {
			providertest.ParseOne(t, gettrx.New(), request(body, tc.header, tc.secret))
		})
	}
}

// TestSignatureHeaderRejections covers headers that look like GETTRX's but do not
// authenticate the body; the conformance suite covers missing and wrong ones.
func TestSignatureHeaderRejections(t *testing.T) {
	body := providertest.Testdata(t, "customer-created.json")
	ts := strconv.FormatInt(now.Unix(), 10)
	for name, header := range map[string]string{
		"t changed after signing":    "t=" + strconv.FormatInt(now.Unix()+1, 10) + ",v1=" + mac(signingKey, ts, ".", string(body)),
		"t without v1":               "t=" + ts,
		"v1 without t":               "v1=" + mac(signingKey, ts, ".", string(body)),
		"t not a number":             "t=soon,v1=" + mac(signingKey, "soon", ".", string(body)),
		"two t":                      "t=" + ts + ",t=" + ts + ",v1=" + mac(signingKey, ts, ".", string(body)),
		"bare hex over another body": mac(signingKey, "{}"),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := gettrx.New().Parse(request(body, header, secret))
			providertest.ExpectError(t, err, providers.Error{Status: 401, Reason: providers.ReasonUnauthorized}, secret)
		})
	}
}

// TestPrepareWireFormat holds the simulator to the wire format written out above,
// so the conformance suite's round trips cannot pass on a shared mistake.
func TestPrepareWireFormat(t *testing.T) {
	body := providertest.Testdata(t, "customer-updated.json")
	out, h, err := gettrx.New().Prepare(body, secret, now)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, body) {
		t.Error("Prepare changed the body")
	}
	if got, want := h.Get("x-webhook-signature"), signed(signingKey, now, body); got != want {
		t.Errorf("x-webhook-signature = %q, want %q", got, want)
	}
	if p := gettrx.New(); p.Name() != crmv1alpha1.ProviderGETTRX {
		t.Errorf("Name = %q", p.Name())
	}
}

func BenchmarkParse(b *testing.B) { providertest.BenchParse(b, suite(b)) }

func BenchmarkUnmarshalBaseline(b *testing.B) { providertest.BenchUnmarshalBaseline(b, suite(b)) }
