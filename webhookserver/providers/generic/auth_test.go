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
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"net/http"
	"strconv"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
	"github.com/customer-operator/customer-operator/webhookserver/providers/generic"
)

var now = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

const oneEvent = `{"id":"evt_1","type":"customer.updated","created":1796385600,"customer":{"id":"cus_1","name":"Ada","email":"ada@example.com"}}`

func spec(auth crmv1alpha1.GenericAuthentication) *crmv1alpha1.GenericSource {
	return &crmv1alpha1.GenericSource{
		Authentication: auth,
		Events:         crmv1alpha1.GenericEvents{ID: "body.id", Type: "body.type", Time: "body.created"},
		Mapping: crmv1alpha1.GenericMapping{ExternalID: "body.customer.id", DisplayName: "body.customer.name",
			Email: "body.customer.email"},
	}
}

var uidSeq int

func bind(t testing.TB, g *crmv1alpha1.GenericSource) *generic.Provider {
	t.Helper()
	uidSeq++
	src := &crmv1alpha1.CustomerSource{ObjectMeta: metav1.ObjectMeta{UID: types.UID("uid-" + strconv.Itoa(uidSeq)), Generation: 1},
		Spec: crmv1alpha1.CustomerSourceSpec{Provider: crmv1alpha1.ProviderGeneric, Generic: g}}
	p, err := generic.For(src)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mac(h func() hash.Hash, key []byte, parts ...string) []byte {
	m := hmac.New(h, key)
	for _, p := range parts {
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

// parse runs the request through the header check and Parse, as the server
// does, and returns the rejection reason and status ("" and 200 when accepted).
func parse(p *generic.Provider, h http.Header, body string, secret map[string][]byte) (string, int) {
	if _, perr := p.AuthenticateHeader(h, secret); perr != nil {
		return perr.Reason, perr.Status
	}
	res, err := p.Parse(&providers.Request{Header: h, Body: []byte(body), Secret: secret, Now: now, Tolerance: 5 * time.Minute})
	if err != nil {
		var perr *providers.Error
		if errors.As(err, &perr) {
			return perr.Reason, perr.Status
		}
		return err.Error(), 0
	}
	if len(res.Events) != 1 || res.Events[0].Customer.Email != "ada@example.com" || res.Events[0].Rejection != nil {
		return "wrong result", 0
	}
	return "", http.StatusOK
}

type authCase struct {
	name   string
	header http.Header
	secret map[string][]byte
	reason string
}

func runCases(t *testing.T, p *generic.Provider, body string, cases []authCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reason, status := parse(p, tc.header, body, tc.secret)
			if reason != tc.reason {
				t.Fatalf("reason = %q (status %d), want %q", reason, status, tc.reason)
			}
			if tc.reason != "" && status != http.StatusUnauthorized {
				t.Fatalf("status = %d, want 401", status)
			}
		})
	}
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func TestStandardWebhooks(t *testing.T) {
	p := bind(t, spec(crmv1alpha1.GenericAuthentication{StandardWebhooks: &crmv1alpha1.StandardWebhooksAuthentication{}}))
	key := []byte("0123456789abcdef0123456789abcdef")
	old := []byte("fedcba9876543210fedcba9876543210")
	whsec := func(k []byte) []byte { return []byte("whsec_" + base64.StdEncoding.EncodeToString(k)) }
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := func(k []byte, id, ts string) string {
		return "v1," + base64.StdEncoding.EncodeToString(mac(sha256.New, k, id, ".", ts, ".", oneEvent))
	}
	current := map[string][]byte{"secret": whsec(key)}
	rotating := map[string][]byte{"secret": whsec(key), "previousSecret": whsec(old)}
	expiredTS := strconv.FormatInt(now.Add(-6*time.Minute).Unix(), 10)
	runCases(t, p, oneEvent, []authCase{
		{"signed", hdr("webhook-id", "msg_1", "webhook-timestamp", ts, "webhook-signature", sig(key, "msg_1", ts)), current, ""},
		{"several signatures, one matching", hdr("webhook-id", "msg_1", "webhook-timestamp", ts,
			"webhook-signature", "v1,AAAA v2,xyz "+sig(key, "msg_1", ts)), current, ""},
		{"signed with the previous key during a rotation", hdr("webhook-id", "msg_1", "webhook-timestamp", ts, "webhook-signature", sig(old, "msg_1", ts)), rotating, ""},
		{"signed with the previous key after the rotation", hdr("webhook-id", "msg_1", "webhook-timestamp", ts, "webhook-signature", sig(old, "msg_1", ts)), current, "unauthorized"},
		{"wrong signature", hdr("webhook-id", "msg_2", "webhook-timestamp", ts, "webhook-signature", sig(key, "msg_1", ts)), current, "unauthorized"},
		{"hex instead of base64", hdr("webhook-id", "msg_1", "webhook-timestamp", ts,
			"webhook-signature", "v1,"+hex.EncodeToString(mac(sha256.New, key, "msg_1", ".", ts, ".", oneEvent))), current, "unauthorized"},
		{"expired", hdr("webhook-id", "msg_1", "webhook-timestamp", expiredTS, "webhook-signature", sig(key, "msg_1", expiredTS)), current, "timestamp"},
		{"missing webhook-id", hdr("webhook-timestamp", ts, "webhook-signature", sig(key, "", ts)), current, "unauthorized"},
		{"missing webhook-signature", hdr("webhook-id", "msg_1", "webhook-timestamp", ts), current, "unauthorized"},
	})
}

func TestHMAC(t *testing.T) {
	key := []byte("hmac-key")
	old := []byte("old-hmac-key")
	current := map[string][]byte{"secret": key}
	rotating := map[string][]byte{"secret": key, "previousSecret": old}
	ts := strconv.FormatInt(now.Unix(), 10)
	expiredTS := strconv.FormatInt(now.Add(-6*time.Minute).Unix(), 10)

	t.Run("github style", func(t *testing.T) {
		p := bind(t, spec(crmv1alpha1.GenericAuthentication{HMAC: &crmv1alpha1.HMACAuthentication{
			Header: "X-Hub-Signature-256", Algorithm: "sha256", Encoding: "hex", Prefix: "sha256="}}))
		good := "sha256=" + hex.EncodeToString(mac(sha256.New, key, oneEvent))
		runCases(t, p, oneEvent, []authCase{
			{"signed", hdr("X-Hub-Signature-256", good), current, ""},
			{"rotation", hdr("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac(sha256.New, old, oneEvent))), rotating, ""},
			{"wrong prefix", hdr("X-Hub-Signature-256", "sha1="+good[len("sha256="):]), current, "unauthorized"},
			{"wrong key", hdr("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac(sha256.New, old, oneEvent))), current, "unauthorized"},
			{"base64 instead of hex", hdr("X-Hub-Signature-256", "sha256="+base64.StdEncoding.EncodeToString(mac(sha256.New, key, oneEvent))), current, "unauthorized"},
			{"missing header", hdr("X-Other", good), current, "unauthorized"},
		})
	})
	t.Run("stripe style", func(t *testing.T) {
		p := bind(t, spec(crmv1alpha1.GenericAuthentication{HMAC: &crmv1alpha1.HMACAuthentication{
			Header: "Stripe-Signature", SignatureKey: "v1", TimestampKey: "t", SignedContent: "{timestamp}.{body}"}}))
		sig := func(k []byte, ts string) string { return hex.EncodeToString(mac(sha256.New, k, ts, ".", oneEvent)) }
		runCases(t, p, oneEvent, []authCase{
			{"signed", hdr("Stripe-Signature", "t="+ts+",v1="+sig(key, ts)), current, ""},
			{"two v1, the second matching", hdr("Stripe-Signature", "t="+ts+",v1="+sig(old, ts)+",v1="+sig(key, ts)+",v0=abc"), current, ""},
			{"rotation", hdr("Stripe-Signature", "t="+ts+",v1="+sig(old, ts)), rotating, ""},
			{"timestamp not the signed one", hdr("Stripe-Signature", "t="+expiredTS+",v1="+sig(key, ts)), current, "unauthorized"},
			{"expired", hdr("Stripe-Signature", "t="+expiredTS+",v1="+sig(key, expiredTS)), current, "timestamp"},
			{"no timestamp", hdr("Stripe-Signature", "v1="+sig(key, ts)), current, "unauthorized"},
			{"no v1", hdr("Stripe-Signature", "t="+ts+",v0="+sig(key, ts)), current, "unauthorized"},
		})
	})
	t.Run("timestamp header, sha512, base64", func(t *testing.T) {
		p := bind(t, spec(crmv1alpha1.GenericAuthentication{HMAC: &crmv1alpha1.HMACAuthentication{
			Header: "X-Signature", Algorithm: "sha512", Encoding: "base64", TimestampHeader: "X-Timestamp", SignedContent: "v0:{timestamp}:{body}"}}))
		sig := func(k []byte, ts string) string {
			return base64.StdEncoding.EncodeToString(mac(sha512.New, k, "v0:", ts, ":", oneEvent))
		}
		runCases(t, p, oneEvent, []authCase{
			{"signed", hdr("X-Signature", sig(key, ts), "X-Timestamp", ts), current, ""},
			{"expired", hdr("X-Signature", sig(key, expiredTS), "X-Timestamp", expiredTS), current, "timestamp"},
			{"missing timestamp header", hdr("X-Signature", sig(key, ts)), current, "unauthorized"},
			{"sha256 instead of sha512", hdr("X-Signature", base64.StdEncoding.EncodeToString(mac(sha256.New, key, "v0:", ts, ":", oneEvent)), "X-Timestamp", ts), current, "unauthorized"},
		})
	})
	t.Run("sha1 whole value", func(t *testing.T) {
		p := bind(t, spec(crmv1alpha1.GenericAuthentication{HMAC: &crmv1alpha1.HMACAuthentication{Header: "X-Sig", Algorithm: "sha1"}}))
		runCases(t, p, oneEvent, []authCase{
			{"signed", hdr("X-Sig", hex.EncodeToString(mac(sha1.New, key, oneEvent))), current, ""},
			{"tampered body signature", hdr("X-Sig", hex.EncodeToString(mac(sha1.New, key, oneEvent+" "))), current, "unauthorized"},
		})
	})
}

func TestHeaderModes(t *testing.T) {
	basic := bind(t, spec(crmv1alpha1.GenericAuthentication{Basic: &crmv1alpha1.HeaderAuthentication{}}))
	creds := map[string][]byte{"username": []byte("u"), "password": []byte("new"), "previousPassword": []byte("old")}
	runCases(t, basic, oneEvent, []authCase{
		{"basic", hdr("Authorization", providers.BasicHeader([]byte("u"), []byte("new"))), creds, ""},
		{"basic with the previous password", hdr("Authorization", providers.BasicHeader([]byte("u"), []byte("old"))), creds, ""},
		{"basic wrong password", hdr("Authorization", providers.BasicHeader([]byte("u"), []byte("x"))), creds, "unauthorized"},
		{"basic missing", hdr(), creds, "unauthorized"},
	})
	// Header credentials are complete before the body is read.
	if complete, perr := basic.AuthenticateHeader(hdr("Authorization", providers.BasicHeader([]byte("u"), []byte("new"))), creds); !complete || perr != nil {
		t.Errorf("AuthenticateHeader = %v, %v; want complete", complete, perr)
	}
	bearer := bind(t, spec(crmv1alpha1.GenericAuthentication{Bearer: &crmv1alpha1.HeaderAuthentication{}}))
	toks := map[string][]byte{"token": []byte("t1"), "previousToken": []byte("t0")}
	runCases(t, bearer, oneEvent, []authCase{
		{"bearer", hdr("Authorization", "Bearer t1"), toks, ""},
		{"bearer previous", hdr("Authorization", "Bearer t0"), toks, ""},
		{"bearer wrong", hdr("Authorization", "Bearer t2"), toks, "unauthorized"},
		{"bearer missing", hdr(), toks, "unauthorized"},
	})
	if err := bearer.ValidateSecret(map[string][]byte{"secret": []byte("x")}); err == nil {
		t.Error("ValidateSecret of a bearer source without a token = nil")
	}
}

// TestSimulatorSigns: what the simulator signs, the provider accepts, for
// every mode.
func TestSimulatorSigns(t *testing.T) {
	for name, tc := range map[string]struct {
		auth   crmv1alpha1.GenericAuthentication
		secret map[string][]byte
	}{
		"standardWebhooks": {crmv1alpha1.GenericAuthentication{StandardWebhooks: &crmv1alpha1.StandardWebhooksAuthentication{}},
			map[string][]byte{"secret": []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")}},
		"stripe": {crmv1alpha1.GenericAuthentication{HMAC: &crmv1alpha1.HMACAuthentication{Header: "Stripe-Signature",
			SignatureKey: "v1", TimestampKey: "t", SignedContent: "{timestamp}.{body}"}}, map[string][]byte{"secret": []byte("k")}},
		"github": {crmv1alpha1.GenericAuthentication{HMAC: &crmv1alpha1.HMACAuthentication{Header: "X-Hub-Signature-256", Prefix: "sha256="}},
			map[string][]byte{"secret": []byte("k")}},
		"basic":  {crmv1alpha1.GenericAuthentication{Basic: &crmv1alpha1.HeaderAuthentication{}}, map[string][]byte{"username": []byte("u"), "password": []byte("p")}},
		"bearer": {crmv1alpha1.GenericAuthentication{Bearer: &crmv1alpha1.HeaderAuthentication{}}, map[string][]byte{"token": []byte("t")}},
	} {
		t.Run(name, func(t *testing.T) {
			p := bind(t, spec(tc.auth))
			_, h, err := p.Prepare([]byte(oneEvent), tc.secret, now)
			if err != nil {
				t.Fatal(err)
			}
			if reason, status := parse(p, h, oneEvent, tc.secret); status != http.StatusOK {
				t.Fatalf("own signature refused: %s", reason)
			}
		})
	}
}
