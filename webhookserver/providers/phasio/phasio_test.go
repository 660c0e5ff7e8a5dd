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
	"crypto/aes"
	"crypto/cipher"
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
	"github.com/customer-operator/customer-operator/webhookserver/providers/phasio"
)

const fixture = "testdata/customer-organisation-created.json"

// Keys as Phasio shows them: URL-safe Base64 of 32 bytes. keyB holds '-' and '_'
// so a decoder that only knows standard Base64 would fail on it.
var (
	keyA    = bytesOf(0x00, 32)
	keyB    = bytesOf(0xf8, 32)
	secretA = base64.URLEncoding.EncodeToString(keyA)
	secretB = base64.RawURLEncoding.EncodeToString(keyB)
)

func bytesOf(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)*7
	}
	return b
}

func readFixture(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
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
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	if sig != "" {
		h.Set("X-Phasio-Signature", sig)
	}
	return &providers.Request{Header: h, Body: body, Secret: secret, Now: time.Now(), Tolerance: 5 * time.Minute}
}

func secretData(kv ...string) map[string][]byte {
	m := map[string][]byte{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = []byte(kv[i+1])
	}
	return m
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

func parseOK(t *testing.T, req *providers.Request) providers.Event {
	t.Helper()
	res, err := phasio.New().Parse(req)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(res.Events) != 1 || res.Ignored != 0 {
		t.Fatalf("Parse = %d events, %d ignored; want 1 event", len(res.Events), res.Ignored)
	}
	return res.Events[0]
}

func TestParseFixture(t *testing.T) {
	e := seal(t, keyA, readFixture(t))
	ev := parseOK(t, request(quoted(e), sign([]byte(secretA), e), secretData("secret", secretA)))

	if ev.ID != "phasio:678:2025-01-10T08:00:00" {
		t.Errorf("ID = %q", ev.ID)
	}
	if ev.Type != phasio.EventCreated {
		t.Errorf("Type = %q, want %q (createdAt equals lastUpdatedOn)", ev.Type, phasio.EventCreated)
	}
	if want := time.Date(2025, 1, 10, 8, 0, 0, 0, time.UTC); !ev.Time.Equal(want) || ev.Time.Location() != time.UTC {
		t.Errorf("Time = %v, want %v in UTC", ev.Time, want)
	}
	if ev.Action != providers.ActionUpsert {
		t.Errorf("Action = %q", ev.Action)
	}
	assertSpec(t, ev.Customer, wantFixtureSpec())
}

func TestPrepareRoundTrip(t *testing.T) {
	p := phasio.New()
	secret := secretData("secret", secretA)
	body, h, err := p.Prepare(readFixture(t), secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if ct := h.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
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
	if len(raw) != 12+len(readFixture(t))+16 {
		t.Errorf("E decodes to %d bytes, want nonce+plaintext+tag", len(raw))
	}
	// Each delivery uses a fresh nonce.
	body2, _, _ := p.Prepare(readFixture(t), secret, time.Now())
	if string(body2) == string(body) {
		t.Error("Prepare reused a nonce")
	}
	ev := parseOK(t, &providers.Request{Header: h, Body: body, Secret: secret})
	assertSpec(t, ev.Customer, wantFixtureSpec())
}

func TestEnvelopes(t *testing.T) {
	e := seal(t, keyA, readFixture(t))
	sig := sign([]byte(secretA), e)
	for name, body := range map[string]string{
		"json string":        string(quoted(e)),
		"payload":            `{"payload":"` + e + `"}`,
		"data":               `{"data":"` + e + `"}`,
		"encryptedPayload":   `{"encryptedPayload":"` + e + `"}`,
		"encrypted_payload":  `{"encrypted_payload":"` + e + `"}`,
		"object with extras": `{"event":"CUSTOMER_ORGANISATION_CREATED","payload":"` + e + `"}`,
		"bare":               e,
		"bare with newline":  e + "\n",
		"padded E":           string(quoted(e + strings.Repeat("=", (4-len(e)%4)%4))),
	} {
		t.Run(name, func(t *testing.T) {
			if name == "padded E" {
				// Padding is part of E as sent, so the signature covers it.
				var s string
				_ = json.Unmarshal([]byte(body), &s)
				sig := sign([]byte(secretA), s)
				parseOK(t, request([]byte(body), sig, secretData("secret", secretA)))
				return
			}
			ev := parseOK(t, request([]byte(body), sig, secretData("secret", secretA)))
			if ev.Customer.ExternalID != "678" {
				t.Errorf("ExternalID = %q", ev.Customer.ExternalID)
			}
		})
	}
}

func TestSignatureKeys(t *testing.T) {
	e := seal(t, keyA, readFixture(t))
	t.Run("decoded key bytes", func(t *testing.T) {
		parseOK(t, request(quoted(e), sign(keyA, e), secretData("secret", secretA)))
	})
	t.Run("uppercase hex", func(t *testing.T) {
		parseOK(t, request(quoted(e), strings.ToUpper(sign([]byte(secretA), e)), secretData("secret", secretA)))
	})
	t.Run("standard base64 secret", func(t *testing.T) {
		std := base64.StdEncoding.EncodeToString(keyB)
		eb := seal(t, keyB, readFixture(t))
		parseOK(t, request(quoted(eb), sign([]byte(std), eb), secretData("secret", std)))
	})
	t.Run("previousSecret", func(t *testing.T) {
		// The sender still uses the old key while the Secret already has the new one.
		eb := seal(t, keyB, readFixture(t))
		secret := secretData("secret", secretA, "previousSecret", secretB)
		parseOK(t, request(quoted(eb), sign([]byte(secretB), eb), secret))
		parseOK(t, request(quoted(e), sign([]byte(secretA), e), secret))
	})
	t.Run("secret with trailing newline", func(t *testing.T) {
		parseOK(t, request(quoted(e), sign([]byte(secretA), e), secretData("secret", secretA+"\n")))
	})
}

func TestEventType(t *testing.T) {
	var org map[string]any
	_ = json.Unmarshal(readFixture(t), &org)
	org["lastUpdatedOn"] = "2025-02-01T09:30:00.123"
	plain, _ := json.Marshal(org)
	e := seal(t, keyA, plain)
	ev := parseOK(t, request(quoted(e), sign([]byte(secretA), e), secretData("secret", secretA)))
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

func TestEmptyValuesAreAbsent(t *testing.T) {
	plain := []byte(`{"id":9,"name":"","taxNumber":"","language":"","customers":[{"id":2,"email":null,"phoneNumber":null,"firstName":"Ann","lastName":null,"notificationPreference":"SMS"}],"addresses":[],"lastUpdatedOn":"2025-01-10T08:00:00Z"}`)
	e := seal(t, keyA, plain)
	ev := parseOK(t, request(quoted(e), sign([]byte(secretA), e), secretData("secret", secretA)))
	assertSpec(t, ev.Customer, crmv1alpha1.CustomerSpec{
		Provider:          crmv1alpha1.ProviderPhasio,
		ExternalID:        "9",
		Contacts:          []crmv1alpha1.Contact{{ID: "2", FirstName: "Ann", NotificationPreference: "SMS"}},
		ProviderUpdatedAt: metaTime("2025-01-10T08:00:00Z"),
	})
	if ev.Type != phasio.EventUpdated {
		t.Errorf("Type = %q without createdAt, want %q", ev.Type, phasio.EventUpdated)
	}
}

func TestRejections(t *testing.T) {
	plain := readFixture(t)
	e := seal(t, keyA, plain)
	good := sign([]byte(secretA), e)
	secret := secretData("secret", secretA)

	tampered := []byte(e)
	if tampered[len(tampered)/2] == 'A' {
		tampered[len(tampered)/2] = 'B'
	} else {
		tampered[len(tampered)/2] = 'A'
	}
	otherKeyE := seal(t, keyB, plain)
	noID := seal(t, keyA, []byte(`{"name":"x","lastUpdatedOn":"2025-01-10T08:00:00"}`))
	badJSON := seal(t, keyA, []byte(`{"id":678,`))
	badTime := seal(t, keyA, []byte(`{"id":678,"lastUpdatedOn":"yesterday"}`))
	short := base64.RawURLEncoding.EncodeToString([]byte("too short"))

	for _, tc := range []struct {
		name   string
		body   []byte
		sig    string
		secret map[string][]byte
		status int
		reason string
		field  string
	}{
		{"missing signature", quoted(e), "", secret, 401, providers.ReasonUnauthorized, ""},
		{"signature not hex", quoted(e), "zz" + good[2:], secret, 401, providers.ReasonUnauthorized, ""},
		{"bad signature", quoted(e), sign([]byte("other"), e), secret, 401, providers.ReasonUnauthorized, ""},
		{"wrong key", quoted(e), good, secretData("secret", secretB), 401, providers.ReasonUnauthorized, ""},
		{"no key configured", quoted(e), good, nil, 401, providers.ReasonUnauthorized, ""},
		{"signature over another payload", quoted(otherKeyE), good, secret, 401, providers.ReasonUnauthorized, ""},
		{"tampered ciphertext, re-signed", quoted(string(tampered)), sign([]byte(secretA), string(tampered)), secret, 401, providers.ReasonDecrypt, ""},
		{"encrypted with another key, signed with ours", quoted(otherKeyE), sign([]byte(secretA), otherKeyE), secret, 401, providers.ReasonDecrypt, ""},
		{"ciphertext too short", quoted(short), sign([]byte(secretA), short), secret, 401, providers.ReasonDecrypt, ""},
		{"unsigned broken envelope", []byte(`{"payload":`), good, secret, 401, providers.ReasonUnauthorized, ""},
		{"signed broken envelope", []byte(`{"payload":`), sign([]byte(secretA), `{"payload":`), secret, 400, providers.ReasonMalformed, ""},
		{"envelope without payload", []byte(`{"other":1}`), sign([]byte(secretA), `{"other":1}`), secret, 400, providers.ReasonMissingField, "payload"},
		{"E not base64", quoted("!!!"), sign([]byte(secretA), "!!!"), secret, 400, providers.ReasonMalformed, ""},
		{"plaintext not JSON", quoted(badJSON), sign([]byte(secretA), badJSON), secret, 400, providers.ReasonMalformed, ""},
		{"organisation without id", quoted(noID), sign([]byte(secretA), noID), secret, 400, providers.ReasonMissingField, "id"},
		{"bad lastUpdatedOn", quoted(badTime), sign([]byte(secretA), badTime), secret, 400, providers.ReasonMalformed, "lastUpdatedOn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := phasio.New().Parse(request(tc.body, tc.sig, tc.secret))
			var perr *providers.Error
			if !errors.As(err, &perr) {
				t.Fatalf("Parse = %v, %v; want *providers.Error", res, err)
			}
			if perr.Status != tc.status || perr.Reason != tc.reason || perr.Field != tc.field {
				t.Errorf("error = {%d %s %q} %q, want {%d %s %q}", perr.Status, perr.Reason, perr.Field, perr.Message, tc.status, tc.reason, tc.field)
			}
			for _, s := range []string{secretA, secretB} {
				if strings.Contains(perr.Error(), s) {
					t.Errorf("error message holds a secret: %q", perr.Error())
				}
			}
		})
	}
}

func TestValidateSecret(t *testing.T) {
	p := phasio.New()
	for _, tc := range []struct {
		name    string
		data    map[string][]byte
		wantErr string
	}{
		{"url-safe padded", secretData("secret", secretA), ""},
		{"url-safe unpadded", secretData("secret", secretB), ""},
		{"standard padded", secretData("secret", base64.StdEncoding.EncodeToString(keyB)), ""},
		{"with previous", secretData("secret", secretA, "previousSecret", secretB), ""},
		{"missing", secretData(), `"secret"`},
		{"empty", secretData("secret", ""), `"secret"`},
		{"not base64", secretData("secret", "not*base64"), `"secret"`},
		{"16 bytes", secretData("secret", base64.URLEncoding.EncodeToString(keyA[:16])), "16 bytes"},
		{"bad previous", secretData("secret", secretA, "previousSecret", "c2hvcnQ"), `"previousSecret"`},
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
				if len(v) > 0 && strings.Contains(err.Error(), string(v)) {
					t.Errorf("error holds a secret value: %v", err)
				}
			}
		})
	}
	if p.Name() != crmv1alpha1.ProviderPhasio {
		t.Errorf("Name = %q", p.Name())
	}
}

func FuzzParse(f *testing.F) {
	p := phasio.New()
	secret := secretData("secret", secretA)
	f.Add(readFixture(f), []byte(nil))
	f.Add([]byte(`{"id":"1","lastUpdatedOn":"2025-01-10T08:00:00","customers":[{}],"addresses":[{"residential":true}]}`), []byte(`"abc"`))
	f.Add([]byte(`[]`), []byte(`{"payload":"x"}`))
	f.Add([]byte(`{"id":{},"lastUpdatedOn":1}`), []byte("bare"))
	f.Fuzz(func(t *testing.T, plaintext, raw []byte) {
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
		// A raw body signed as it stands reaches the envelope and Base64 handling.
		check(request(raw, sign([]byte(secretA), strings.TrimSpace(string(raw))), secret))
	})
}

func BenchmarkParse(b *testing.B) {
	p := phasio.New()
	secret := secretData("secret", secretA)
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
