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

package delivery

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
)

func testCustomer() *crmv1alpha1.Customer {
	yes := true
	created := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	return &crmv1alpha1.Customer{
		// Typed clients return an empty TypeMeta; the payload must not depend on it.
		ObjectMeta: metav1.ObjectMeta{
			Name:            "phasio-cus-42",
			Namespace:       "tenant-a",
			UID:             "0d7e7c2e-5a8b-4f7e-9d5c-1f2a3b4c5d6e",
			Generation:      7,
			ResourceVersion: "123456",
			Labels:          map[string]string{crmv1alpha1.LabelProvider: "phasio", "tier": "gold"},
			Annotations:     map[string]string{crmv1alpha1.AnnotationLastEventID: "evt_1"},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "webhookserver", Operation: metav1.ManagedFieldsOperationApply}},
			Finalizers:      []string{crmv1alpha1.CustomerFinalizer},
		},
		Spec: crmv1alpha1.CustomerSpec{
			Provider:          crmv1alpha1.ProviderPhasio,
			ExternalID:        "cus_42",
			DisplayName:       "Smith & Sons <Ltd>",
			Email:             "ap@smith.example",
			Approved:          &yes,
			Lifecycle:         crmv1alpha1.LifecycleActive,
			Contacts:          []crmv1alpha1.Contact{{FirstName: "Ann", LastName: "Smith"}},
			Addresses:         []crmv1alpha1.Address{{Type: crmv1alpha1.AddressBilling, City: "Graz", Country: "AT"}},
			ProviderCreatedAt: &created,
			Attributes:        map[string]string{"segment": "b2b"},
		},
		Status: crmv1alpha1.CustomerStatus{
			ObservedGeneration: 6,
			Conditions:         []metav1.Condition{{Type: crmv1alpha1.ConditionReady, Status: metav1.ConditionTrue}},
		},
	}
}

// independentVerify checks a Standard Webhooks signature without this package's
// code, so a bug shared by Sign and Verify cannot hide.
func independentVerify(t *testing.T, secret string, h http.Header, body []byte) bool {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatalf("test secret: %v", err)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(h.Get("webhook-id") + "." + h.Get("webhook-timestamp") + "." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	for _, s := range strings.Split(h.Get("webhook-signature"), " ") {
		if hmac.Equal([]byte(s), []byte(want)) {
			return true
		}
	}
	return false
}

type received struct {
	header http.Header
	body   []byte
}

// recorder is a sink that answers with status and hands every request to the test.
func recorder(t *testing.T, status int) (*httptest.Server, <-chan received) {
	ch := make(chan received, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost {
			t.Errorf("method %s, want POST", r.Method)
		}
		ch <- received{r.Header.Clone(), body}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

func keys(m map[string]any) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

// checkCustomerData checks the Customer as sinks see it: exactly apiVersion,
// kind, metadata (name, namespace, uid, generation, labels) and spec.
func checkCustomerData(t *testing.T, data any, c *crmv1alpha1.Customer) {
	t.Helper()
	d, ok := data.(map[string]any)
	if !ok {
		t.Fatalf("data is %T", data)
	}
	if got := keys(d); got != "apiVersion,kind,metadata,spec" {
		t.Errorf("data keys = %s", got)
	}
	if d["apiVersion"] != "crm.customer-operator.io/v1alpha1" || d["kind"] != "Customer" {
		t.Errorf("apiVersion, kind = %v, %v", d["apiVersion"], d["kind"])
	}
	meta, _ := d["metadata"].(map[string]any)
	if got := keys(meta); got != "generation,labels,name,namespace,uid" {
		t.Errorf("metadata keys = %s", got)
	}
	if meta["name"] != c.Name || meta["namespace"] != c.Namespace || meta["uid"] != string(c.UID) || meta["generation"] != float64(c.Generation) {
		t.Errorf("metadata = %v", meta)
	}
	labels, _ := meta["labels"].(map[string]any)
	if len(labels) != len(c.Labels) || labels["tier"] != "gold" {
		t.Errorf("labels = %v", labels)
	}
	spec, _ := d["spec"].(map[string]any)
	if spec["externalID"] != "cus_42" || spec["displayName"] != "Smith & Sons <Ltd>" || spec["provider"] != "phasio" ||
		spec["providerCreatedAt"] != "2026-01-02T03:04:05Z" || spec["approved"] != true {
		t.Errorf("spec = %v", spec)
	}
}

func mustTarget(t testing.TB, url string, format crmv1alpha1.SinkFormat, data map[string][]byte) *Target {
	t.Helper()
	sink := &crmv1alpha1.CustomerSink{Spec: crmv1alpha1.CustomerSinkSpec{URL: url, Format: format}}
	if data != nil {
		sink.Spec.SecretRef = &crmv1alpha1.SecretReference{Name: "sink"}
	}
	tgt, err := TargetFromSink(sink, data)
	if err != nil {
		t.Fatal(err)
	}
	return tgt
}

func TestNewEvent(t *testing.T) {
	c := testCustomer()
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.FixedZone("CEST", 7200))
	ev := NewEvent(c, false, now)
	if ev.Type != TypeUpserted || ev.ID != "0d7e7c2e-5a8b-4f7e-9d5c-1f2a3b4c5d6e.7" || !ev.Time.Equal(now) || ev.Customer != c {
		t.Errorf("upsert event = %+v", ev)
	}
	if ev := NewEvent(c, true, now); ev.Type != TypeDeleted || ev.ID != "0d7e7c2e-5a8b-4f7e-9d5c-1f2a3b4c5d6e.7" {
		t.Errorf("delete event = %+v", ev)
	}
}

func TestDeliverStandardWebhooks(t *testing.T) {
	srv, got := recorder(t, http.StatusNoContent)
	c := testCustomer()
	eventTime := time.Date(2026, 5, 6, 7, 8, 9, 500, time.UTC)
	tgt := mustTarget(t, srv.URL+"/hooks", crmv1alpha1.FormatStandardWebhooks, map[string][]byte{KeySecret: []byte(vectorSecret)})

	client := loopbackClient()
	before := time.Now().Unix()
	res := client.Deliver(context.Background(), tgt, NewEvent(c, false, eventTime))
	after := time.Now().Unix()
	if res.Err != nil || res.StatusCode != http.StatusNoContent || res.Duration <= 0 {
		t.Fatalf("Deliver = %+v", res)
	}
	r := <-got

	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if id := r.header.Get("webhook-id"); id != string(c.UID)+".7" {
		t.Errorf("webhook-id = %q", id)
	}
	ts, err := strconv.ParseInt(r.header.Get("webhook-timestamp"), 10, 64)
	if err != nil || ts < before || ts > after {
		t.Errorf("webhook-timestamp = %q, want the send time", r.header.Get("webhook-timestamp"))
	}
	if !independentVerify(t, vectorSecret, r.header, r.body) {
		t.Errorf("independent verifier rejects signature %q", r.header.Get("webhook-signature"))
	}
	if err := Verify(vectorSecret, r.header, r.body, 0, time.Now()); err != nil {
		t.Errorf("Verify: %v", err)
	}

	var body map[string]any
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	if got := keys(body); got != "data,timestamp,type" {
		t.Errorf("body keys = %s", got)
	}
	if body["type"] != "customer.upserted" {
		t.Errorf("type = %v", body["type"])
	}
	if ts, err := time.Parse(time.RFC3339, body["timestamp"].(string)); err != nil || !ts.Equal(eventTime) {
		t.Errorf("timestamp = %v (%v), want %v", body["timestamp"], err, eventTime)
	}
	checkCustomerData(t, body["data"], c)
	for _, leak := range []string{"status", "managedFields", "resourceVersion", "annotations", "finalizers", "observedGeneration", "evt_1"} {
		if strings.Contains(string(r.body), leak) {
			t.Errorf("body contains %q: %s", leak, r.body)
		}
	}

	// A retry of the same event keeps its webhook-id, so the receiver can de-duplicate.
	ev := NewEvent(c, true, eventTime)
	first := client.Deliver(context.Background(), tgt, ev)
	second := client.Deliver(context.Background(), tgt, ev)
	r1, r2 := <-got, <-got
	if first.Err != nil || second.Err != nil || r1.header.Get("webhook-id") != r2.header.Get("webhook-id") {
		t.Errorf("retry changed webhook-id: %q, %q (%v, %v)", r1.header.Get("webhook-id"), r2.header.Get("webhook-id"), first.Err, second.Err)
	}
	if !strings.Contains(string(r1.body), `"type":"customer.deleted"`) {
		t.Errorf("delete body = %s", r1.body)
	}
}

func TestDeliverRotation(t *testing.T) {
	srv, got := recorder(t, http.StatusOK)
	tgt := mustTarget(t, srv.URL, crmv1alpha1.FormatStandardWebhooks, map[string][]byte{
		KeySecret:         []byte(newSecret),
		KeyPreviousSecret: []byte(vectorSecret),
	})
	client := loopbackClient()
	if res := client.Deliver(context.Background(), tgt, NewEvent(testCustomer(), false, time.Now())); res.Err != nil {
		t.Fatal(res.Err)
	}
	r := <-got
	if n := len(strings.Fields(r.header.Get("webhook-signature"))); n != 2 {
		t.Errorf("webhook-signature has %d entries, want 2", n)
	}
	for _, secret := range []string{vectorSecret, newSecret} {
		if !independentVerify(t, secret, r.header, r.body) {
			t.Errorf("a receiver knowing only %s… rejects the delivery", secret[:10])
		}
		if err := Verify(secret, r.header, r.body, 0, time.Now()); err != nil {
			t.Errorf("Verify with %s…: %v", secret[:10], err)
		}
	}
	if Verify("whsec_"+base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", 32))), r.header, r.body, 0, time.Now()) == nil {
		t.Error("an unrelated secret verifies")
	}
}

func TestDeliverCloudEvents(t *testing.T) {
	srv, got := recorder(t, http.StatusAccepted)
	c := testCustomer()
	eventTime := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	client := loopbackClient()

	for _, signed := range []bool{false, true} {
		t.Run("signed="+strconv.FormatBool(signed), func(t *testing.T) {
			var data map[string][]byte
			if signed {
				data = map[string][]byte{KeySecret: []byte(vectorSecret)}
			}
			tgt := mustTarget(t, srv.URL, crmv1alpha1.FormatCloudEvents, data)
			if res := client.Deliver(context.Background(), tgt, NewEvent(c, true, eventTime)); res.Err != nil || res.StatusCode != http.StatusAccepted {
				t.Fatalf("Deliver = %+v", res)
			}
			r := <-got
			if ct := r.header.Get("Content-Type"); ct != "application/cloudevents+json" {
				t.Errorf("Content-Type = %q", ct)
			}
			var ce map[string]any
			if err := json.Unmarshal(r.body, &ce); err != nil {
				t.Fatal(err)
			}
			if got := keys(ce); got != "data,datacontenttype,id,source,specversion,subject,time,type" {
				t.Errorf("attributes = %s", got)
			}
			want := map[string]any{
				"specversion":     "1.0",
				"id":              string(c.UID) + ".7",
				"source":          "/apis/crm.customer-operator.io/v1alpha1/namespaces/tenant-a/customers",
				"type":            "io.customer-operator.crm.customer.deleted",
				"subject":         "phasio-cus-42",
				"datacontenttype": "application/json",
			}
			for k, v := range want {
				if ce[k] != v {
					t.Errorf("%s = %v, want %v", k, ce[k], v)
				}
			}
			if ts, err := time.Parse(time.RFC3339, ce["time"].(string)); err != nil || !ts.Equal(eventTime) {
				t.Errorf("time = %v", ce["time"])
			}
			checkCustomerData(t, ce["data"], c)
			if signed {
				if r.header.Get("webhook-id") != string(c.UID)+".7" || !independentVerify(t, vectorSecret, r.header, r.body) {
					t.Errorf("signed CloudEvent does not verify: %v", r.header)
				}
			} else if r.header.Get("webhook-signature") != "" || r.header.Get("webhook-id") != "" {
				t.Errorf("unsigned CloudEvent carries webhook headers: %v", r.header)
			}
		})
	}
}

func TestDeliverAnswers(t *testing.T) {
	httpDate := time.Now().Add(2 * time.Minute).UTC().Format(http.TimeFormat)
	var landed atomic.Int32
	mux := http.NewServeMux()
	answer := func(path string, status int, header map[string]string, body string) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			for k, v := range header {
				w.Header().Set(k, v)
			}
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
		})
	}
	answer("/ok", 200, nil, `{"received":true}`)
	answer("/no-content", 204, nil, "")
	answer("/fail", 500, map[string]string{"Content-Type": "text/plain"}, "database\n  unavailable")
	answer("/html", 502, map[string]string{"Content-Type": "text/html"}, "<html><body>Bad gateway</body></html>")
	answer("/slow-down", 429, map[string]string{"Retry-After": "30"}, "")
	answer("/maintenance", 503, map[string]string{"Retry-After": httpDate}, "")
	answer("/huge-retry", 503, map[string]string{"Retry-After": "864000"}, "")
	answer("/retry-after-on-500", 500, map[string]string{"Retry-After": "30"}, "")
	answer("/gone", 410, nil, "")
	answer("/refused", 401, nil, "invalid signature: "+strings.Repeat("x", 500))
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/landing", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/landing", func(w http.ResponseWriter, r *http.Request) {
		landed.Add(1)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	client := loopbackClient()
	ev := NewEvent(testCustomer(), false, time.Now())
	for _, tc := range []struct {
		path       string
		status     int
		ok, gone   bool
		retryAfter time.Duration // -1: about two minutes
		msg        string        // the error message after "POST <url>"
	}{
		{"/ok", 200, true, false, 0, ""},
		{"/no-content", 204, true, false, 0, ""},
		// The answer's body never reaches the message (it goes to status and
		// Events); only the code, its standard reason phrase and Retry-After do.
		{"/fail", 500, false, false, 0, ": HTTP 500 Internal Server Error"},
		{"/html", 502, false, false, 0, ": HTTP 502 Bad Gateway"},
		{"/slow-down", 429, false, false, 30 * time.Second, ": HTTP 429 Too Many Requests, Retry-After 30s"},
		{"/maintenance", 503, false, false, -1, ": HTTP 503 Service Unavailable, Retry-After "},
		{"/huge-retry", 503, false, false, MaxRetryAfter, ": HTTP 503 Service Unavailable, Retry-After 3600s"},
		{"/retry-after-on-500", 500, false, false, 0, ": HTTP 500 Internal Server Error"},
		{"/gone", 410, false, true, 0, ": HTTP 410 Gone"},
		{"/refused", 401, false, false, 0, ": HTTP 401 Unauthorized"},
		{"/redirect", 307, false, false, 0, ": HTTP 307 Temporary Redirect (redirects are not followed)"},
	} {
		t.Run(strings.TrimPrefix(tc.path, "/"), func(t *testing.T) {
			tgt := mustTarget(t, srv.URL+tc.path, crmv1alpha1.FormatStandardWebhooks, map[string][]byte{KeySecret: []byte(vectorSecret)})
			res := client.Deliver(context.Background(), tgt, ev)
			if res.StatusCode != tc.status || res.Gone != tc.gone || (res.Err == nil) != tc.ok {
				t.Fatalf("Deliver = %+v", res)
			}
			switch {
			case tc.retryAfter == -1:
				if res.RetryAfter < 110*time.Second || res.RetryAfter > 121*time.Second {
					t.Errorf("RetryAfter = %s, want about 2m", res.RetryAfter)
				}
			case res.RetryAfter != tc.retryAfter:
				t.Errorf("RetryAfter = %s, want %s", res.RetryAfter, tc.retryAfter)
			}
			if tc.ok {
				return
			}
			want := "POST " + srv.URL + tc.path + tc.msg
			if tc.retryAfter == -1 {
				want += strconv.Itoa(int(res.RetryAfter/time.Second)) + "s"
				if msg := res.Err.Error(); msg != want {
					t.Errorf("error = %q, want %q", msg, want)
				}
			} else if msg := res.Err.Error(); msg != want {
				t.Errorf("error = %q, want %q", msg, want)
			}
			var he *HTTPError
			if !errors.As(res.Err, &he) || he.StatusCode != tc.status || he.RetryAfter != res.RetryAfter {
				t.Errorf("error %#v is no *HTTPError of %d", res.Err, tc.status)
			}
		})
	}
	if landed.Load() != 0 {
		t.Error("the redirect was followed")
	}
}

func TestDeliverTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The server notices the client hanging up only once the body is read.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	defer srv.Close()
	tgt := mustTarget(t, srv.URL, crmv1alpha1.FormatStandardWebhooks, map[string][]byte{KeySecret: []byte(vectorSecret)})
	tgt.Timeout = 200 * time.Millisecond

	client := loopbackClient()
	res := client.Deliver(context.Background(), tgt, NewEvent(testCustomer(), false, time.Now()))
	if res.Err == nil || res.StatusCode != 0 {
		t.Fatalf("Deliver = %+v", res)
	}
	if !errors.Is(res.Err, context.DeadlineExceeded) {
		t.Errorf("errors.Is(%v, DeadlineExceeded) = false", res.Err)
	}
	if want := "POST " + srv.URL + ": timeout after 200ms"; res.Err.Error() != want {
		t.Errorf("error = %q, want %q", res.Err, want)
	}
	if res.Duration < 200*time.Millisecond || res.Duration > 3*time.Second {
		t.Errorf("Duration = %s", res.Duration)
	}

	// The caller's context still counts: a cancelled reconcile stops the delivery.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tgt.Timeout = time.Minute
	if res := client.Deliver(ctx, tgt, NewEvent(testCustomer(), false, time.Now())); !errors.Is(res.Err, context.Canceled) {
		t.Errorf("cancelled context: %+v", res)
	}
}

func TestDeliverExtraHeaders(t *testing.T) {
	srv, got := recorder(t, http.StatusOK)
	tgt := mustTarget(t, srv.URL, crmv1alpha1.FormatStandardWebhooks, map[string][]byte{
		KeySecret:  []byte(vectorSecret),
		KeyHeaders: []byte("Authorization: Bearer abc.def\nX-Tenant: a\nX-Tenant: b\n"),
	})
	// Targets built by hand cannot override the delivery's own headers either.
	tgt.Header.Set("Content-Type", "text/plain")
	tgt.Header.Set("Webhook-Id", "forged")

	client := loopbackClient()
	if res := client.Deliver(context.Background(), tgt, NewEvent(testCustomer(), false, time.Now())); res.Err != nil {
		t.Fatal(res.Err)
	}
	r := <-got
	if r.header.Get("Authorization") != "Bearer abc.def" || strings.Join(r.header.Values("X-Tenant"), ",") != "a,b" {
		t.Errorf("extra headers = %v", r.header)
	}
	if r.header.Get("Content-Type") != "application/json" || r.header.Get("webhook-id") != string(testCustomer().UID)+".7" {
		t.Errorf("reserved headers overridden: %v", r.header)
	}
	if ua := r.header.Get("User-Agent"); ua != DefaultUserAgent {
		t.Errorf("User-Agent = %q", ua)
	}
}

func tlsServer(t *testing.T) (*httptest.Server, []byte) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	// The handshake failure below is expected; keep it out of the test log.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

func TestDeliverTLSPrivateCA(t *testing.T) {
	srv, ca := tlsServer(t)
	client := loopbackClient()
	ev := NewEvent(testCustomer(), false, time.Now())

	tgt := mustTarget(t, srv.URL, crmv1alpha1.FormatStandardWebhooks, map[string][]byte{KeySecret: []byte(vectorSecret), KeyCA: ca})
	if res := client.Deliver(context.Background(), tgt, ev); res.Err != nil || res.StatusCode != http.StatusNoContent {
		t.Fatalf("with ca.crt: %+v", res)
	}

	tgt = mustTarget(t, srv.URL, crmv1alpha1.FormatStandardWebhooks, map[string][]byte{KeySecret: []byte(vectorSecret)})
	res := client.Deliver(context.Background(), tgt, ev)
	if want := "POST " + srv.URL + ": TLS: the certificate is signed by an unknown authority (is ca.crt set?)"; res.Err == nil || res.Err.Error() != want {
		t.Fatalf("without ca.crt: %+v, want the error %q", res, want)
	}

	// Another CA is no substitute for the right one.
	tgt = mustTarget(t, srv.URL, crmv1alpha1.FormatStandardWebhooks, map[string][]byte{KeySecret: []byte(vectorSecret), KeyCA: selfSignedPEM(t)})
	if res := client.Deliver(context.Background(), tgt, ev); res.Err == nil {
		t.Fatalf("with an unrelated ca.crt: %+v", res)
	}
}

func TestErrorsCarryNoSecrets(t *testing.T) {
	// A debugging endpoint that echoes the request back in its refusal.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		_ = r.Header.Write(w)
	}))
	defer srv.Close()
	u := strings.Replace(srv.URL, "http://", "http://user:pa55word@", 1) + "/hook?token=t0k3n#frag"
	tgt := mustTarget(t, u, crmv1alpha1.FormatStandardWebhooks, map[string][]byte{
		KeySecret:  []byte(vectorSecret),
		KeyHeaders: []byte("Authorization: Bearer b34r3r"),
	})
	client := loopbackClient()
	res := client.Deliver(context.Background(), tgt, NewEvent(testCustomer(), false, time.Now()))
	if res.StatusCode != http.StatusUnauthorized || res.Err == nil {
		t.Fatalf("Deliver = %+v", res)
	}
	msg := res.Err.Error()
	for _, secret := range []string{"pa55word", "user", "t0k3n", "b34r3r", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"} {
		if strings.Contains(msg, secret) {
			t.Errorf("error %q contains %q", msg, secret)
		}
	}
	if want := "POST " + srv.URL + "/hook: HTTP 401 Unauthorized"; msg != want {
		t.Errorf("error = %q, want %q", msg, want)
	}

	// Unreachable: the transport's error, with the URL redacted the same way.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://user:pa55word@" + ln.Addr().String() + "/?token=t0k3n"
	_ = ln.Close()
	tgt.URL = closed
	res = client.Deliver(context.Background(), tgt, NewEvent(testCustomer(), false, time.Now()))
	if want := "POST http://" + ln.Addr().String() + "/: connection refused"; res.Err == nil || res.Err.Error() != want {
		t.Errorf("unreachable: %v, want %q", res.Err, want)
	}
}

func TestDeliverRefusesUnsignedStandardWebhooks(t *testing.T) {
	srv, _ := recorder(t, http.StatusOK)
	tgt := &Target{URL: srv.URL, Format: crmv1alpha1.FormatStandardWebhooks}
	client := loopbackClient()
	if res := client.Deliver(context.Background(), tgt, NewEvent(testCustomer(), false, time.Now())); res.Err == nil || res.StatusCode != 0 {
		t.Errorf("unsigned standard-webhooks delivery: %+v", res)
	}
	tgt = &Target{URL: srv.URL, Format: crmv1alpha1.FormatStandardWebhooks, Secrets: [][]byte{[]byte("k")}}
	if res := client.Deliver(context.Background(), tgt, Event{Type: TypeUpserted, ID: "x.1"}); res.Err == nil {
		t.Errorf("event without a Customer: %+v", res)
	}
}

func TestConnectionsAreReused(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, strings.Repeat("ok", 1000))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	client := loopbackClient()
	defer client.CloseIdleConnections()
	tgt := mustTarget(t, srv.URL, crmv1alpha1.FormatStandardWebhooks, map[string][]byte{KeySecret: []byte(vectorSecret)})
	ev := NewEvent(testCustomer(), false, time.Now())
	for i := 0; i < 20; i++ {
		if res := client.Deliver(context.Background(), tgt, ev); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("20 sequential deliveries opened %d connections, want 1", n)
	}

	// Concurrent deliveries share the client (run with -race to check the cache).
	var wg sync.WaitGroup
	var failed atomic.Int32
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			other := *tgt // a second Target with the same (empty) CA shares the transport
			for i := 0; i < 10; i++ {
				if res := client.Deliver(context.Background(), &other, ev); res.Err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d concurrent deliveries failed", failed.Load())
	}
	// A connection returns to the pool a moment after its answer is read, so a
	// few extra dials are normal; one per delivery is not.
	if n := conns.Load(); n > 16 {
		t.Errorf("80 deliveries from 8 goroutines opened %d connections", n)
	}
}

func TestHTTPClientCache(t *testing.T) {
	client := loopbackClient()
	caA, caB := selfSignedPEM(t), selfSignedPEM(t)
	get := func(ca []byte) *http.Client {
		hc, err := client.httpClient(ca)
		if err != nil {
			t.Fatal(err)
		}
		return hc
	}
	none, a, b := get(nil), get(caA), get(caB)
	if none == a || a == b || none == b {
		t.Error("distinct CA bundles share a client")
	}
	if get(nil) != none || get(append([]byte(nil), caA...)) != a {
		t.Error("the same CA bundle got a new client")
	}
	if _, err := client.httpClient([]byte("junk")); err == nil {
		t.Error("a CA bundle without certificates was accepted")
	}
	for i := 0; i < 2*maxCachedClients; i++ {
		get(selfSignedPEM(t))
		get(nil) // in use all along, so never the one evicted
	}
	if len(client.clients) > maxCachedClients || get(nil) != none {
		t.Errorf("cache holds %d clients (max %d), or evicted the busiest", len(client.clients), maxCachedClients)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                                  0,
		"0":                                 0,
		"-5":                                0,
		"120":                               2 * time.Minute,
		" 7 ":                               7 * time.Second,
		"99999999999999999999":              0, // overflows int64: not a number we can use
		"9999999":                           MaxRetryAfter,
		"Wed, 06 May 2026 07:09:09 GMT":     time.Minute,
		"Wed, 06 May 2026 07:00:00 GMT":     0,
		"Wednesday, 06-May-26 07:08:39 GMT": 30 * time.Second,
		"soon":                              0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", in, got, want)
		}
	}
}

func BenchmarkDeliver(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	ev := NewEvent(testCustomer(), false, time.Now())
	for _, format := range []crmv1alpha1.SinkFormat{crmv1alpha1.FormatStandardWebhooks, crmv1alpha1.FormatCloudEvents} {
		b.Run(string(format), func(b *testing.B) {
			tgt := mustTarget(b, srv.URL, format, map[string][]byte{KeySecret: []byte(vectorSecret), KeyPreviousSecret: []byte(newSecret)})
			client := loopbackClient()
			defer client.CloseIdleConnections()
			b.ReportAllocs()
			for b.Loop() {
				if res := client.Deliver(context.Background(), tgt, ev); res.Err != nil {
					b.Fatal(res.Err)
				}
			}
		})
	}
}

// A sink that answers with megabytes of headers costs the controllers at most
// MaxResponseHeaderBytes of them, and the delivery fails.
func TestDeliverRefusesHugeAnswerHeaders(t *testing.T) {
	filler := strings.Repeat("a", 1<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		h := w.Header()
		for i := range 8 << 10 { // 8 MiB
			h["X-Filler-"+strconv.Itoa(i)] = []string{filler}
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	tgt := mustTarget(t, srv.URL, crmv1alpha1.FormatStandardWebhooks, map[string][]byte{KeySecret: []byte(vectorSecret)})
	tgt.Timeout = 10 * time.Second

	client := loopbackClient()
	ev := NewEvent(testCustomer(), false, time.Now())
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res := client.Deliver(context.Background(), tgt, ev)
	runtime.ReadMemStats(&after)
	if res.Err == nil || res.StatusCode != 0 {
		t.Fatalf("Deliver = %+v, want a failure without an answer", res)
	}
	if want := "POST " + srv.URL + ": the sink's answer headers exceed 64 KiB"; res.Err.Error() != want {
		t.Errorf("error = %q, want %q", res.Err, want)
	}
	// The server's side of the exchange allocates little: the header map is
	// built before, its values shared. What the client read is what counts.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("the delivery allocated %d KiB, want under 4 MiB", alloc>>10)
	}
}

// A sink that takes the request and never answers fails the delivery once
// ResponseHeaderTimeout passes, even when the sink's own timeout is longer.
func TestDeliverGivesUpOnAnswerHeadersThatNeverCome(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	tgt := mustTarget(t, srv.URL, crmv1alpha1.FormatStandardWebhooks, map[string][]byte{KeySecret: []byte(vectorSecret)})
	// As a sink stored before the schema bounded spec.timeout may say.
	tgt.Timeout = 8760 * time.Hour

	client := &Client{Policy: loopbackPolicy, ResponseHeaderTimeout: 300 * time.Millisecond}
	done := make(chan Result, 1)
	go func() { done <- client.Deliver(context.Background(), tgt, NewEvent(testCustomer(), false, time.Now())) }()
	var res Result
	select {
	case res = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the delivery still waits for the answer's headers after 5s")
	}
	if res.Err == nil || res.StatusCode != 0 {
		t.Fatalf("Deliver = %+v, want a failure without an answer", res)
	}
	if want := "POST " + srv.URL + ": no answer headers within 300ms"; res.Err.Error() != want {
		t.Errorf("error = %q, want %q", res.Err, want)
	}
	if res.Duration < 300*time.Millisecond || res.Duration > 3*time.Second {
		t.Errorf("Duration = %s", res.Duration)
	}
}
