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

package phasio_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
	"github.com/customer-operator/customer-operator/webhookserver/providers/phasio"
	"github.com/customer-operator/customer-operator/webhookserver/providers/providertest"
)

const fixture = "customer-organisation-created.json"

// Keys as Phasio shows them: URL-safe Base64 of 32 bytes. keyB holds '-' and '_'
// so a decoder that only knows standard Base64 would fail on it.
var (
	keyA    = bytesOf(0x00, 32)
	keyB    = bytesOf(0xf8, 32)
	keyC    = bytesOf(0x40, 32)
	secretA = base64.URLEncoding.EncodeToString(keyA)
	secretB = base64.RawURLEncoding.EncodeToString(keyB)

	secret = providertest.SecretData("secret", secretA)
)

func bytesOf(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)*7
	}
	return b
}

// seal encrypts as Phasio does, written independently of Prepare: nonce ||
// ciphertext || tag, unpadded URL-safe Base64.
func seal(t testing.TB, key, plaintext []byte) string {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	nonce := []byte("fixed-nonce!")
	return base64.RawURLEncoding.EncodeToString(gcm.Seal(append([]byte{}, nonce...), nonce, plaintext, nil))
}

func sign(key []byte, e string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(e))
	return hex.EncodeToString(m.Sum(nil))
}

func request(body []byte, sig string, secret map[string][]byte) *providers.Request {
	return providertest.RawRequest(body, secret, time.Now(), phasio.SignatureHeader, sig)
}

func quoted(e string) []byte {
	b, _ := json.Marshal(e)
	return b
}

func metaTime(s string) *metav1.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return &metav1.Time{Time: t.UTC()}
}

func parseOK(t *testing.T, req *providers.Request) providers.Event {
	t.Helper()
	return providertest.ParseOne(t, phasio.New(), req)
}

func wantFixtureSpec() crmv1alpha1.CustomerSpec {
	f, tr := false, true
	return crmv1alpha1.CustomerSpec{
		Provider:    crmv1alpha1.ProviderPhasio,
		ExternalID:  "678",
		DisplayName: "Acme Manufacturing",
		CompanyName: "Acme Manufacturing",
		Email:       "john@acme.com",
		Phone:       "+1-555-0100",
		TaxID:       "US123456789",
		TaxExempt:   &f,
		Approved:    &tr,
		Language:    "en",
		Contacts: []crmv1alpha1.Contact{{
			ID: "1", FirstName: "John", LastName: "Doe", Email: "john@acme.com",
			Phone: "+1-555-0100", NotificationPreference: "EMAIL",
		}},
		Addresses: []crmv1alpha1.Address{{
			Type: crmv1alpha1.AddressOther, Name: "Headquarters", Line1: "123 Industrial Ave",
			City: "Austin", State: "TX", PostalCode: "73301", Country: "US",
			Phone: "+1-555-0100", Email: "info@acme.com", Residential: &f,
		}},
		ProviderCreatedAt: metaTime("2025-01-10T08:00:00Z"),
		ProviderUpdatedAt: metaTime("2025-01-10T08:00:00Z"),
	}
}

func suite(tb testing.TB) providertest.Suite {
	rejected := func(name, reason, field, body string) providertest.Rejection {
		return providertest.Rejection{Name: name, Reason: reason, Field: field, Plaintext: []byte(body)}
	}
	return providertest.Suite{
		Provider:    phasio.New(),
		Secret:      secret,
		WrongSecret: providertest.SecretData("secret", base64.URLEncoding.EncodeToString(keyC)),
		SignsBody:   true,
		// The signature covers E as it stands in a bare body.
		SignRaw: func(body []byte, secret map[string][]byte) http.Header {
			h := http.Header{}
			h.Set(phasio.SignatureHeader, sign(providers.SecretValue(secret, providers.KeySecret), strings.TrimSpace(string(body))))
			return h
		},
		Rotations: []providertest.Rotation{{
			Name: "secret",
			Old:  providertest.SecretData("secret", secretB),
			New:  secret,
		}},
		Fixtures: []providertest.Fixture{
			{Name: "customer-organisation-created", Plaintext: providertest.Testdata(tb, fixture), Want: []providers.Event{{
				ID:       "phasio:678:2025-01-10T08:00:00",
				Type:     phasio.EventCreated, // createdAt equals lastUpdatedOn
				Time:     time.Date(2025, 1, 10, 8, 0, 0, 0, time.UTC),
				Action:   providers.ActionUpsert,
				Customer: wantFixtureSpec(),
			}}},
			{Name: "empty values are absent",
				Plaintext: []byte(`{"id":9,"name":"","taxNumber":"","language":"","customers":[{"id":2,"email":null,"phoneNumber":null,"firstName":"Ann","lastName":null,"notificationPreference":"SMS"}],"addresses":[],"lastUpdatedOn":"2025-01-10T08:00:00Z"}`),
				Want: []providers.Event{{
					ID:     "phasio:9:2025-01-10T08:00:00Z",
					Type:   phasio.EventUpdated, // no createdAt
					Time:   time.Date(2025, 1, 10, 8, 0, 0, 0, time.UTC),
					Action: providers.ActionUpsert,
					Customer: crmv1alpha1.CustomerSpec{
						Provider:          crmv1alpha1.ProviderPhasio,
						ExternalID:        "9",
						Contacts:          []crmv1alpha1.Contact{{ID: "2", FirstName: "Ann", NotificationPreference: "SMS"}},
						ProviderUpdatedAt: metaTime("2025-01-10T08:00:00Z"),
					},
				}}},
		},
		Rejected: []providertest.Rejection{
			rejected("organisation without id", providers.ReasonMissingField, "id", `{"name":"x","lastUpdatedOn":"2025-01-10T08:00:00"}`),
			rejected("organisation without lastUpdatedOn", providers.ReasonMissingField, "lastUpdatedOn", `{"id":678,"name":"x"}`),
			rejected("bad lastUpdatedOn", providers.ReasonMalformed, "lastUpdatedOn", `{"id":678,"lastUpdatedOn":"yesterday"}`),
			rejected("bad createdAt", providers.ReasonMalformed, "createdAt", `{"id":678,"createdAt":"soon","lastUpdatedOn":"2025-01-10T08:00:00"}`),
			rejected("field of the wrong type", providers.ReasonMalformed, "customers", `{"id":678,"lastUpdatedOn":"2025-01-10T08:00:00","customers":{}}`),
		},
		Secrets: []providertest.SecretCase{
			{Name: "url-safe unpadded", Data: providertest.SecretData("secret", secretB)},
			{Name: "standard padded", Data: providertest.SecretData("secret", base64.StdEncoding.EncodeToString(keyB))},
			{Name: "with previous", Data: providertest.SecretData("secret", secretA, "previousSecret", secretB)},
			{Name: "empty value", Data: providertest.SecretData("secret", ""), WantErr: `"secret"`},
			{Name: "not base64", Data: providertest.SecretData("secret", "not*base64"), WantErr: `"secret"`},
			{Name: "16 bytes", Data: providertest.SecretData("secret", base64.URLEncoding.EncodeToString(keyA[:16])), WantErr: "16 bytes"},
			{Name: "bad previous", Data: providertest.SecretData("secret", secretA, "previousSecret", "c2hvcnQ"), WantErr: `"previousSecret"`},
		},
		FuzzSeeds: []providertest.Seed{
			{Plaintext: []byte(`{"id":"1","lastUpdatedOn":"2025-01-10T08:00:00","customers":[{}],"addresses":[{"residential":true}]}`), Header: "00"},
			{Plaintext: []byte(`{"payload":"x"}`)},
			{Plaintext: []byte(`"abc"`)},
			{Plaintext: []byte(`{"id":{},"lastUpdatedOn":1}`)},
		},
	}
}

func TestConformance(t *testing.T) { providertest.Run(t, suite(t)) }

func FuzzParse(f *testing.F) { providertest.Fuzz(f, suite(f)) }

// TestPrepareWireFormat opens the simulator's request with AES-GCM code written
// here, so the conformance suite's round trips cannot pass on a shared mistake.
func TestPrepareWireFormat(t *testing.T) {
	p := phasio.New()
	plain := providertest.Testdata(t, fixture)
	body, h, err := p.Prepare(plain, secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var e string
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("body is not a JSON string: %v", err)
	}
	if got, want := h.Get("X-Phasio-Signature"), sign([]byte(secretA), e); got != want {
		t.Errorf("signature = %q, want HMAC of E keyed with the secret string %q", got, want)
	}
	raw, err := base64.URLEncoding.DecodeString(e)
	if err != nil {
		t.Fatalf("E is not URL-safe Base64: %v", err)
	}
	block, _ := aes.NewCipher(keyA)
	gcm, _ := cipher.NewGCM(block)
	opened, err := gcm.Open(nil, raw[:12], raw[12:], nil)
	if err != nil || !bytes.Equal(opened, plain) {
		t.Errorf("E does not open to the plaintext as nonce(12) || ciphertext || tag: %v", err)
	}
	// Each delivery uses a fresh nonce.
	body2, _, _ := p.Prepare(plain, secret, time.Now())
	if bytes.Equal(body2, body) {
		t.Error("Prepare reused a nonce")
	}
	if p.Name() != crmv1alpha1.ProviderPhasio {
		t.Errorf("Name = %q", p.Name())
	}
}

func TestEnvelopes(t *testing.T) {
	e := seal(t, keyA, providertest.Testdata(t, fixture))
	sig := sign([]byte(secretA), e)
	padded := e + strings.Repeat("=", (4-len(e)%4)%4)
	for name, tc := range map[string]struct{ body, sig string }{
		"json string":        {string(quoted(e)), sig},
		"payload":            {`{"payload":"` + e + `"}`, sig},
		"data":               {`{"data":"` + e + `"}`, sig},
		"encryptedPayload":   {`{"encryptedPayload":"` + e + `"}`, sig},
		"encrypted_payload":  {`{"encrypted_payload":"` + e + `"}`, sig},
		"object with extras": {`{"event":"CUSTOMER_ORGANISATION_CREATED","payload":"` + e + `"}`, sig},
		"bare":               {e, sig},
		"bare with newline":  {e + "\n", sig},
		// Padding is part of E as sent, so the signature covers it.
		"padded E": {string(quoted(padded)), sign([]byte(secretA), padded)},
	} {
		t.Run(name, func(t *testing.T) {
			ev := parseOK(t, request([]byte(tc.body), tc.sig, secret))
			providertest.AssertSpec(t, ev.Customer, wantFixtureSpec())
		})
	}
}

func TestSignatureKeys(t *testing.T) {
	e := seal(t, keyA, providertest.Testdata(t, fixture))
	t.Run("decoded key bytes", func(t *testing.T) {
		parseOK(t, request(quoted(e), sign(keyA, e), secret))
	})
	t.Run("uppercase hex", func(t *testing.T) {
		parseOK(t, request(quoted(e), strings.ToUpper(sign([]byte(secretA), e)), secret))
	})
	t.Run("standard base64 secret", func(t *testing.T) {
		std := base64.StdEncoding.EncodeToString(keyB)
		eb := seal(t, keyB, providertest.Testdata(t, fixture))
		parseOK(t, request(quoted(eb), sign([]byte(std), eb), providertest.SecretData("secret", std)))
	})
}

func TestEventType(t *testing.T) {
	var org map[string]any
	_ = json.Unmarshal(providertest.Testdata(t, fixture), &org)
	org["lastUpdatedOn"] = "2025-02-01T09:30:00.123"
	plain, _ := json.Marshal(org)
	e := seal(t, keyA, plain)
	ev := parseOK(t, request(quoted(e), sign([]byte(secretA), e), secret))
	if ev.Type != phasio.EventUpdated {
		t.Errorf("Type = %q, want %q", ev.Type, phasio.EventUpdated)
	}
	if want := time.Date(2025, 2, 1, 9, 30, 0, 123e6, time.UTC); !ev.Time.Equal(want) {
		t.Errorf("Time = %v, want %v", ev.Time, want)
	}
	if ev.ID != "phasio:678:2025-02-01T09:30:00.123" {
		t.Errorf("ID = %q", ev.ID)
	}
	if got := ev.Customer.ProviderCreatedAt; got == nil || !got.Equal(metaTime("2025-01-10T08:00:00Z")) {
		t.Errorf("ProviderCreatedAt = %v", got)
	}
}

// TestEnvelopeAndDecryptRejections covers what only an encrypted, enveloped
// payload can get wrong; the conformance suite covers signatures and plaintexts.
func TestEnvelopeAndDecryptRejections(t *testing.T) {
	plain := providertest.Testdata(t, fixture)
	e := seal(t, keyA, plain)
	good := sign([]byte(secretA), e)

	tampered := []byte(e)
	if tampered[len(tampered)/2] == 'A' {
		tampered[len(tampered)/2] = 'B'
	} else {
		tampered[len(tampered)/2] = 'A'
	}
	otherKeyE := seal(t, keyB, plain)
	short := base64.RawURLEncoding.EncodeToString([]byte("too short"))

	for _, tc := range []struct {
		name   string
		body   []byte
		sig    string
		status int
		reason string
		field  string
	}{
		{"tampered ciphertext, re-signed", quoted(string(tampered)), sign([]byte(secretA), string(tampered)), 401, providers.ReasonDecrypt, ""},
		{"encrypted with another key, signed with ours", quoted(otherKeyE), sign([]byte(secretA), otherKeyE), 401, providers.ReasonDecrypt, ""},
		{"ciphertext too short", quoted(short), sign([]byte(secretA), short), 401, providers.ReasonDecrypt, ""},
		{"unsigned broken envelope", []byte(`{"payload":`), good, 401, providers.ReasonUnauthorized, ""},
		{"signed broken envelope", []byte(`{"payload":`), sign([]byte(secretA), `{"payload":`), 400, providers.ReasonMalformed, ""},
		{"envelope without payload", []byte(`{"other":1}`), sign([]byte(secretA), `{"other":1}`), 400, providers.ReasonMissingField, "payload"},
		{"E not base64", quoted("!!!"), sign([]byte(secretA), "!!!"), 400, providers.ReasonMalformed, ""},
		{"empty body, signed", []byte(" \n"), sign([]byte(secretA), ""), 400, providers.ReasonMalformed, ""},
		{"empty body, unsigned", nil, sign([]byte(secretA), "x"), 401, providers.ReasonUnauthorized, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := phasio.New().Parse(request(tc.body, tc.sig, secret))
			providertest.ExpectError(t, err, providers.Error{Status: tc.status, Reason: tc.reason, Field: tc.field}, secret)
		})
	}
}

func BenchmarkParse(b *testing.B) { providertest.BenchParse(b, suite(b)) }

func BenchmarkUnmarshalBaseline(b *testing.B) { providertest.BenchUnmarshalBaseline(b, suite(b)) }
