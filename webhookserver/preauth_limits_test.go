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

package webhookserver

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
	"github.com/customer-operator/customer-operator/webhookserver/providers/registry"
)

// rawRequest sends a request's head and the first sent bytes of its body by
// hand, and returns the connection so the test decides what comes next.
func rawRequest(baseURL, path string, header http.Header, contentLength int, sent []byte) net.Conn {
	return rawRequestFrom(netip.Addr{}, baseURL, path, header, contentLength, sent)
}

// rawRequestFrom is rawRequest from a local address of the loopback network
// (127.0.0.0/8), so that a test has clients with addresses of their own.
func rawRequestFrom(from netip.Addr, baseURL, path string, header http.Header, contentLength int, sent []byte) net.Conn {
	u, err := url.Parse(baseURL)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	d := net.Dialer{Timeout: 5 * time.Second}
	if from.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: from.AsSlice()}
	}
	conn, err := d.Dial("tcp", u.Host)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	var head bytes.Buffer
	fmt.Fprintf(&head, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", path, u.Host, contentLength)
	_ = header.Write(&head)
	head.WriteString("\r\n")
	head.Write(sent)
	_, err = conn.Write(head.Bytes())
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return conn
}

// readAnswer reads the answer on conn, failing if it takes longer than within.
func readAnswer(conn net.Conn, within time.Duration) (*http.Response, []byte) {
	resp, b, ok := answerWithin(conn, within)
	ExpectWithOffset(1, ok).To(BeTrue(), "no answer within %s", within)
	return resp, b
}

// sourceEvents are the Events about a CustomerSource with a reason.
func sourceEvents(ns, source, reason string) []eventsv1.Event {
	list := &eventsv1.EventList{}
	ExpectWithOffset(1, k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == "CustomerSource" && e.Regarding.Name == source && e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

// seriesOf counts a metric's series that carry a source label value.
func seriesOf(c prometheus.Collector, source string) int {
	ch := make(chan prometheus.Metric, 1024)
	go func() { c.Collect(ch); close(ch) }()
	n := 0
	for m := range ch {
		var d dto.Metric
		Expect(m.Write(&d)).To(Succeed())
		for _, l := range d.GetLabel() {
			if l.GetName() == "source" && l.GetValue() == source {
				n++
			}
		}
	}
	return n
}

func signed(provider crmv1alpha1.Provider, secret map[string][]byte, plaintext []byte) ([]byte, http.Header) {
	body, header, err := registry.Lookup(provider).(providers.Simulator).Prepare(plaintext, secret, time.Now())
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return body, header
}

var _ = Describe("Limits before authentication", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("answers a Content-Length over the limit 413 without reading the body", func() {
		createSource(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret)
		conn := rawRequest(baseURL, "/hooks/"+ns+"/gettrx", http.Header{"Content-Type": {"application/json"}}, 2_000_000, nil)
		defer func() { _ = conn.Close() }()
		resp, body := readAnswer(conn, 5*time.Second)
		Expect(resp.StatusCode).To(Equal(http.StatusRequestEntityTooLarge), string(body))
		Expect(resp.Close).To(BeTrue(), "the connection is closed rather than drained")
		Expect(decodeAnswer(body).Reason).To(Equal("body_too_large"))
	})

	It("checks header credentials before the body is sent: Payway Basic, and a SmarterPay Basic-only source", func() {
		createSource(ns, "payway", crmv1alpha1.ProviderPayway, paywaySecret)
		basicOnly := map[string][]byte{"username": []byte("sp"), "password": []byte("sp-password")}
		createSource(ns, "smarterpay", crmv1alpha1.ProviderSmarterPay, basicOnly)

		for _, c := range []struct {
			source string
			header http.Header
			code   int
		}{
			{"payway", http.Header{"Authorization": {providers.BasicHeader([]byte("payway"), []byte("guess"))}}, http.StatusUnauthorized},
			{"payway", http.Header{}, http.StatusUnauthorized},
			{"smarterpay", http.Header{"Authorization": {providers.BasicHeader([]byte("sp"), []byte("guess"))}}, providers.StatusSmarterPayUnauthorized},
		} {
			// The head only: a server that waited for the body would not answer.
			conn := rawRequest(baseURL, "/hooks/"+ns+"/"+c.source, c.header, 10_000, nil)
			resp, body := readAnswer(conn, 5*time.Second)
			_ = conn.Close()
			Expect(resp.StatusCode).To(Equal(c.code), "%s: %s", c.source, body)
			a := decodeAnswer(body)
			Expect(a.Reason).To(Equal("unauthorized"))
			Expect(a.Error).To(Equal("authentication failed"), "no more than the status and a reason")
		}

		By("the right credentials still reaching the body")
		body := fixture("payway/account-changed-webhook.json")
		code, resp := post(ns, "payway", body, http.Header{"Authorization": {providers.BasicHeader(paywaySecret["username"], paywaySecret["password"])}})
		Expect(code).To(Equal(http.StatusOK), string(resp))
	})

	It("reads a body without Content-Length (chunked) within the same limits", func() {
		createSource(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret)
		chunked := func(body []byte, header http.Header) (int, []byte) {
			req, err := http.NewRequest(http.MethodPost, baseURL+"/hooks/"+ns+"/gettrx", io.NopCloser(bytes.NewReader(body)))
			Expect(err).NotTo(HaveOccurred())
			req.Header = header
			resp, err := http.DefaultClient.Do(req)
			Expect(err).NotTo(HaveOccurred())
			defer func() { _ = resp.Body.Close() }()
			Expect(resp.Request.ContentLength).To(BeZero())
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, b
		}
		code, resp := chunked(signed(crmv1alpha1.ProviderGETTRX, gettrxSecret, gettrxEvent("evt_chunked", "customer.created", 1000, "cus_chunked", "chunked")))
		Expect(code).To(Equal(http.StatusOK), string(resp))

		big := bytes.Repeat([]byte(" "), 2<<20)
		code, resp = chunked(big, http.Header{"Content-Type": {"application/json"}})
		Expect(code).To(Equal(http.StatusRequestEntityTooLarge), string(resp))
	})

	It("bounds the body bytes buffered across the server: past it 503 with Retry-After", func() {
		// Room for two bodies of the largest size, one of them still growing,
		// and a little more.
		srv, srvURL := startTestServer(cfg, Options{BindAddress: "127.0.0.1:0", MaxBodyBytes: 1_000_000, MaxBufferedBytes: 2_600_000})
		createSource(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret)
		path := "/hooks/" + ns + "/gettrx"
		waitServed(srvURL, ns, "gettrx")

		By("two stalled 1 MB bodies holding most of the budget")
		held := rawRequest(srvURL, path, http.Header{"X-Webhook-Signature": {strings.Repeat("0", 64)}}, 1_000_000, bytes.Repeat([]byte("x"), 999_999))
		defer func() { _ = held.Close() }()
		// One at a time: two buffers growing at once hold both their old and
		// new buffers, more than the budget has room for.
		Eventually(func() bool {
			if srv.budget.sem.TryAcquire(1_600_001) {
				srv.budget.sem.Release(1_600_001)
				return false
			}
			if !srv.budget.sem.TryAcquire(1_600_000) {
				return false
			}
			srv.budget.sem.Release(1_600_000)
			return true
		}, 10*time.Second, 20*time.Millisecond).Should(BeTrue(), func() string {
			lo, hi := int64(0), int64(2_600_000)
			for lo < hi {
				m := (lo + hi + 1) / 2
				if srv.budget.sem.TryAcquire(m) {
					srv.budget.sem.Release(m)
					lo = m
				} else {
					hi = m - 1
				}
			}
			return fmt.Sprintf("free %d", lo)
		})
		held2 := rawRequest(srvURL, path, http.Header{"X-Webhook-Signature": {strings.Repeat("0", 64)}}, 1_000_000, bytes.Repeat([]byte("x"), 999_999))
		defer func() { _ = held2.Close() }()
		Eventually(func() bool {
			free := srv.budget.sem.TryAcquire(700_000)
			if free {
				srv.budget.sem.Release(700_000)
			}
			return free
		}, 10*time.Second, 20*time.Millisecond).Should(BeFalse(), "the held bodies are reserved")

		big := gettrxEvent("evt_big", "customer.created", 1000, "cus_big", "big")
		big = append(big[:len(big)-1], []byte(`,"pad":"`+strings.Repeat("p", 600_000)+`"}`)...)
		body, header := signed(crmv1alpha1.ProviderGETTRX, gettrxSecret, big)
		code, resp := do(http.MethodPost, srvURL+path, body, header)
		Expect(code).To(Equal(http.StatusServiceUnavailable), string(resp))
		Expect(decodeAnswer(resp).Reason).To(Equal("server_busy"))

		By("a small delivery still fitting beside it")
		small, smallHeader := signed(crmv1alpha1.ProviderGETTRX, gettrxSecret, gettrxEvent("evt_small", "customer.created", 1000, "cus_small", "small"))
		code, resp = do(http.MethodPost, srvURL+path, small, smallHeader)
		Expect(code).To(Equal(http.StatusOK), string(resp))

		By("the held body ending, and its room coming back")
		_, err := held.Write([]byte("}"))
		Expect(err).NotTo(HaveOccurred())
		answer, _ := readAnswer(held, 5*time.Second)
		Expect(answer.StatusCode).To(Equal(http.StatusUnauthorized))
		code, resp = do(http.MethodPost, srvURL+path, body, header)
		Expect(code).To(Equal(http.StatusOK), string(resp))
	})

	It("limits failed authentications per client address, also behind a trusted proxy", func() {
		srv, srvURL := startTestServer(cfg, Options{BindAddress: "127.0.0.1:0", AuthFailuresPerMinute: 3, AddressFailuresPerMinute: 1000,
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
		createSource(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret)
		path := srvURL + "/hooks/" + ns + "/gettrx"
		from := func(xff string, h http.Header) http.Header {
			h = h.Clone()
			h.Set("X-Forwarded-For", xff)
			return h
		}
		Eventually(func() int {
			code, _ := do(http.MethodPost, path, []byte("{}"), from("192.0.2.1", http.Header{}))
			return code
		}, 20*time.Second, 50*time.Millisecond).ShouldNot(Equal(http.StatusNotFound))

		unsigned := gettrxEvent("evt_guess", "customer.created", 1000, "cus_guess", "guess")
		for i := range 3 {
			code, resp := do(http.MethodPost, path, unsigned, from("203.0.113.7", http.Header{}))
			Expect(code).To(Equal(http.StatusUnauthorized), "failure %d: %s", i, resp)
		}
		req, _ := http.NewRequest(http.MethodPost, path, bytes.NewReader(unsigned))
		req.Header = from("203.0.113.7", http.Header{})
		r, err := http.DefaultClient.Do(req)
		Expect(err).NotTo(HaveOccurred())
		_ = r.Body.Close()
		Expect(r.StatusCode).To(Equal(http.StatusTooManyRequests))
		Expect(r.Header.Get("Retry-After")).NotTo(BeEmpty())

		body, header := signed(crmv1alpha1.ProviderGETTRX, gettrxSecret, gettrxEvent("evt_ok", "customer.created", 1000, "cus_ok", "ok"))
		code, resp := do(http.MethodPost, path, body, from("203.0.113.7", header))
		Expect(code).To(Equal(http.StatusTooManyRequests), "even a right guess is refused while over the limit: %s", resp)
		code, resp = do(http.MethodPost, path, body, from("198.51.100.9, 203.0.113.7", header))
		Expect(code).To(Equal(http.StatusTooManyRequests), "the left part of X-Forwarded-For is the client's to forge: %s", resp)
		code, resp = do(http.MethodPost, path, body, from("198.51.100.9", header))
		Expect(code).To(Equal(http.StatusOK), "another client is not affected: %s", resp)
		Expect(srv.guard.address.tracked()).To(Equal(2), "192.0.2.1 and 203.0.113.7 failed")
		Expect(srv.guard.source.tracked()).To(Equal(2), "each at one source")
	})

	It("says only the status and a reason before authentication, and tells the details to the source's Events", func() {
		createSource(ns, "phasio", crmv1alpha1.ProviderPhasio, map[string][]byte{"secret": []byte("too-short")})
		var code int
		var body []byte
		Eventually(func() int {
			code, body = send(ns, "phasio", crmv1alpha1.ProviderPhasio, phasioSecret(), fixture("phasio/customer-organisation-created.json"))
			return code
		}, 10*time.Second, 50*time.Millisecond).Should(Equal(http.StatusServiceUnavailable))
		a := decodeAnswer(body)
		Expect(a.Reason).To(Equal("source_not_ready"))
		Expect(a.Error).To(Equal("the source is not ready"))
		for _, leak := range []string{"secret", "Secret", "32", "bytes", "credentials"} {
			Expect(string(body)).NotTo(ContainSubstring(leak))
		}
		Eventually(func() []eventsv1.Event {
			return sourceEvents(ns, "phasio", "WebhookSourceNotReady")
		}, 10*time.Second, 100*time.Millisecond).Should(ContainElement(And(
			HaveField("Type", corev1.EventTypeWarning),
			HaveField("Note", And(ContainSubstring("source_not_ready"), ContainSubstring("phasio-credentials"), ContainSubstring("secret"))),
		)), "kubectl describe csrc says why the provider is refused")
	})

	It("raises a burst of failed authentications as rate-limited Warning Events with the reason", func() {
		srvURL := startServer(cfg, Options{BindAddress: "127.0.0.1:0", EventInterval: 3 * time.Second, SweepInterval: 500 * time.Millisecond})
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "payway"}, Data: paywaySecret})).To(Succeed())
		Expect(k8sClient.Create(ctx, &crmv1alpha1.CustomerSource{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "payway"},
			Spec:       crmv1alpha1.CustomerSourceSpec{Provider: crmv1alpha1.ProviderPayway, SecretRef: crmv1alpha1.SecretReference{Name: "payway"}},
		})).To(Succeed())
		path := srvURL + "/hooks/" + ns + "/payway"
		right := http.Header{"Authorization": {providers.BasicHeader(paywaySecret["username"], paywaySecret["password"])}}
		Eventually(func() int {
			code, _ := do(http.MethodPost, path, []byte(`{"event":"order_created","payload":{}}`), right)
			return code
		}, 20*time.Second, 50*time.Millisecond).Should(Equal(http.StatusNoContent))

		wrong := http.Header{"Authorization": {providers.BasicHeader([]byte("payway"), []byte("rotated-away"))}}
		for range 20 {
			code, _ := do(http.MethodPost, path, []byte("{}"), wrong)
			Expect(code).To(Equal(http.StatusUnauthorized))
		}
		unauthorized := func() []eventsv1.Event { return sourceEvents(ns, "payway", "WebhookUnauthorized") }
		Eventually(unauthorized, 10*time.Second, 100*time.Millisecond).Should(ConsistOf(And(
			HaveField("Type", corev1.EventTypeWarning),
			HaveField("Note", And(ContainSubstring("answered 401 (unauthorized)"), ContainSubstring("wrong Basic credentials"))),
		)))
		Consistently(func() int { return len(unauthorized()) }, 2*time.Second, 200*time.Millisecond).Should(Equal(1),
			"one Event for the burst, not one per request")

		By("a rejection after the interval: the same Event, repeated")
		time.Sleep(time.Second)
		code, _ := do(http.MethodPost, path, []byte("{}"), wrong)
		Expect(code).To(Equal(http.StatusUnauthorized))
		Eventually(func() int32 {
			events := unauthorized()
			if len(events) != 1 || events[0].Series == nil {
				return 0
			}
			return events[0].Series.Count
		}, 10*time.Second, 100*time.Millisecond).Should(BeNumerically(">=", 2))
	})
})
