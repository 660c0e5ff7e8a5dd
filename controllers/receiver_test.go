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

package controllers

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
)

// This file is the other side of a CustomerSink: an HTTP receiver, as a user's
// system would run it, with its own Standard Webhooks verification (it does not
// use package delivery, so a bug shared by signer and verifier cannot hide).

// verifyStandardWebhook checks a Standard Webhooks request under one secret: the
// secret is "whsec_" + base64 of at least 24 bytes, and one of the
// space-separated "v1,<base64>" entries of webhook-signature must be the
// HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}"; the timestamp must be
// within 5 minutes of now.
func verifyStandardWebhook(secret string, h http.Header, body []byte, now time.Time) bool {
	raw, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return false
	}
	k, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(k) < 24 {
		return false
	}
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return false
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return false
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return false
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	want := m.Sum(nil)
	for _, entry := range strings.Split(sigs, " ") {
		v, sig, ok := strings.Cut(entry, ",")
		if !ok || v != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			return true
		}
	}
	return false
}

// received is one request to a receiver.
type received struct {
	At          time.Time
	ID          string
	Timestamp   string
	ContentType string
	Header      http.Header
	Body        []byte
	// Status is what the receiver answered.
	Status int
	// Valid says, per secret the receiver knows, whether the request verifies under
	// that secret alone.
	Valid map[string]bool
	// Note is what an ack hook recorded.
	Note string
}

func (r *received) acked() bool { return r.Status >= 200 && r.Status < 300 }

// swEvent is a Standard Webhooks delivery body.
type swEvent struct {
	Type      string          `json:"type"`
	Timestamp string          `json:"timestamp"`
	Data      customerPayload `json:"data"`
}

// ceEvent is a CloudEvents structured-mode delivery body.
type ceEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            string          `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            customerPayload `json:"data"`
}

type customerPayload struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name       string            `json:"name"`
		Namespace  string            `json:"namespace"`
		UID        string            `json:"uid"`
		Generation int64             `json:"generation"`
		Labels     map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec crmv1alpha1.CustomerSpec `json:"spec"`
}

func (r *received) standardWebhook() swEvent {
	GinkgoHelper()
	var ev swEvent
	Expect(json.Unmarshal(r.Body, &ev)).To(Succeed(), "body: %s", r.Body)
	return ev
}

// responder decides the answer to request number n (from 0); it may set headers.
type responder func(w http.ResponseWriter, r *http.Request, rec *received, n int) int

// receiver is a sink endpoint.
type receiver struct {
	srv *httptest.Server

	mu sync.Mutex
	// known are the secrets the receiver checks every request with.
	known []string
	// required are the secrets a request must verify under, else it is refused
	// with 401 as a real receiver would.
	required []string
	respond  responder
	// beforeAck runs before a 2xx is written and may note something in rec.
	beforeAck func(rec *received)
	reqs      []*received
}

// newReceiver starts a receiver that answers 200 to requests verifying under
// every required secret. It is closed after the test.
func newReceiver(required ...string) *receiver {
	rc := &receiver{known: append([]string(nil), required...), required: append([]string(nil), required...)}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	DeferCleanup(func() {
		rc.srv.Close()
		if CurrentSpecReport().Failed() {
			// What the receiver saw, to tell a delivery bug from a status bug.
			for _, r := range rc.all() {
				GinkgoWriter.Printf("receiver %s: %s %d id=%s %d bytes\n", rc.srv.URL, r.At.Format("15:04:05.000"), r.Status, r.ID, len(r.Body))
			}
		}
	})
	return rc
}

func (rc *receiver) URL() string { return rc.srv.URL + "/hooks/customers" }

func (rc *receiver) setResponder(f responder) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.respond = f
}

func (rc *receiver) setSecrets(known, required []string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.known, rc.required = known, required
}

func (rc *receiver) setBeforeAck(f func(rec *received)) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.beforeAck = f
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	now := time.Now()
	rec := &received{
		At:          now,
		ID:          r.Header.Get("webhook-id"),
		Timestamp:   r.Header.Get("webhook-timestamp"),
		ContentType: r.Header.Get("Content-Type"),
		Header:      r.Header.Clone(),
		Body:        body,
		Valid:       map[string]bool{},
	}
	rc.mu.Lock()
	n := len(rc.reqs)
	rc.reqs = append(rc.reqs, rec)
	known, required, respond, beforeAck := rc.known, rc.required, rc.respond, rc.beforeAck
	rc.mu.Unlock()

	for _, s := range known {
		rec.Valid[s] = verifyStandardWebhook(s, r.Header, body, now)
	}
	status := http.StatusOK
	if r.Method != http.MethodPost {
		status = http.StatusMethodNotAllowed
	}
	for _, s := range required {
		if !verifyStandardWebhook(s, r.Header, body, now) {
			status = http.StatusUnauthorized
		}
	}
	if status == http.StatusOK && respond != nil {
		status = respond(w, r, rec, n)
	}
	if status >= 200 && status < 300 && beforeAck != nil {
		beforeAck(rec)
	}
	rc.mu.Lock()
	rec.Status = status
	rc.mu.Unlock()
	w.WriteHeader(status)
}

// all returns a copy of every request so far.
func (rc *receiver) all() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make([]received, 0, len(rc.reqs))
	for _, r := range rc.reqs {
		if r.Status != 0 {
			out = append(out, *r)
		}
	}
	return out
}

// acked returns the acknowledged requests, de-duplicated by webhook-id (for
// CloudEvents, by the event id): the first acknowledgement of each id.
func (rc *receiver) acked() map[string]received {
	out := map[string]received{}
	for _, r := range rc.all() {
		if !r.acked() {
			continue
		}
		id := r.ID
		if id == "" {
			var ce ceEvent
			if json.Unmarshal(r.Body, &ce) == nil {
				id = ce.ID
			}
		}
		if _, seen := out[id]; !seen {
			out[id] = r
		}
	}
	return out
}

// ackedUIDs returns the uids of the Customers of every acknowledged upsert.
func (rc *receiver) ackedUIDs() map[string]bool {
	out := map[string]bool{}
	for _, r := range rc.acked() {
		var ev swEvent
		if json.Unmarshal(r.Body, &ev) == nil && ev.Type == "customer.upserted" {
			out[ev.Data.Metadata.UID] = true
		}
	}
	return out
}

var _ = Describe("the test receiver's Standard Webhooks verification", func() {
	It("accepts the test vector of the design document and rejects changes to it", func() {
		h := http.Header{}
		h.Set("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
		h.Set("webhook-timestamp", "1614265330")
		h.Set("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
		at := time.Unix(1614265330, 0)
		secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		Expect(verifyStandardWebhook(secret, h, []byte(`{"test": 2432232314}`), at)).To(BeTrue())
		Expect(verifyStandardWebhook(secret, h, []byte(`{"test": 2432232315}`), at)).To(BeFalse())
		Expect(verifyStandardWebhook(secret, h, []byte(`{"test": 2432232314}`), at.Add(10*time.Minute))).To(BeFalse())
		Expect(verifyStandardWebhook("whsec_"+base64.StdEncoding.EncodeToString(make([]byte, 24)), h,
			[]byte(`{"test": 2432232314}`), at)).To(BeFalse())
	})
})
