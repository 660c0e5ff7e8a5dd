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
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
)

// doFrom is do from a local address of the loopback network, on a connection
// of its own.
func doFrom(from netip.Addr, url string, body []byte, header http.Header) (int, []byte, http.Header) {
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: from.AsSlice()}}
	tr := &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	code, h, b := doWith(&http.Client{Transport: tr, Timeout: 20 * time.Second}, http.MethodPost, url, body, header)
	return code, b, h
}

// answerWithin reads the answer on conn if one comes within d.
func answerWithin(conn net.Conn, d time.Duration) (*http.Response, []byte, bool) {
	ExpectWithOffset(1, conn.SetReadDeadline(time.Now().Add(d))).To(Succeed())
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, nil, false
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	return resp, b, true
}

// Every tenant's webhooks reach the same server, and the providers send them
// from a few shared addresses: what one tenant's source or one client does must
// not use up what the others need.
var _ = Describe("Tenants sharing the webhook server", func() {
	var nsA, nsB string
	BeforeEach(func() {
		nsA, nsB = newNamespace(), newNamespace()
		createSource(nsA, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret)
		createSource(nsB, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret)
	})

	It("serves a provider's signed event while forty connections hold announced bodies they never send", func() {
		srv, srvURL := startTestServer(cfg, Options{BindAddress: "127.0.0.1:0", ReadTimeout: 3 * time.Second, AuthFailuresPerMinute: 5})
		waitServed(srvURL, nsA, "gettrx")
		waitServed(srvURL, nsB, "gettrx")
		pathA := "/hooks/" + nsA + "/gettrx"

		By("forty connections from one address sending a body-signed request's headers, a Content-Length of 1 MiB and no body byte")
		stranger := netip.MustParseAddr("127.0.0.2")
		_, header := signed(crmv1alpha1.ProviderGETTRX, gettrxSecret, gettrxEvent("evt_held", "customer.created", 1000, "cus_held", "held"))
		refusedBefore := testutil.ToFloat64(rejectionsTotal.WithLabelValues(string(crmv1alpha1.ProviderGETTRX), nsA+"/gettrx", reasonTooManyReads))
		conns := make([]net.Conn, 40)
		for i := range conns {
			conns[i] = rawRequestFrom(stranger, srvURL, pathA, header, 1<<20, nil)
		}
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()

		By("all but the per-address read cap answered 429 at once")
		type answered struct {
			resp *http.Response
			body []byte
			ok   bool
		}
		answers := make([]answered, len(conns))
		var wg sync.WaitGroup
		for i, c := range conns {
			wg.Go(func() {
				resp, body, ok := answerWithin(c, time.Second)
				answers[i] = answered{resp, body, ok}
			})
		}
		wg.Wait()
		refused, stalled := 0, 0
		for _, a := range answers {
			if !a.ok {
				stalled++
				continue
			}
			resp, body := a.resp, a.body
			Expect(resp.StatusCode).To(Equal(http.StatusTooManyRequests), string(body))
			Expect(resp.Header.Get("Retry-After")).NotTo(BeEmpty())
			Expect(decodeAnswer(body).Reason).To(Equal("too_many_body_reads"))
			refused++
		}
		Expect(refused).To(Equal(40 - DefaultOptions.MaxBodyReadsPerAddress))
		Expect(testutil.ToFloat64(rejectionsTotal.WithLabelValues(string(crmv1alpha1.ProviderGETTRX), nsA+"/gettrx", reasonTooManyReads)) - refusedBefore).
			To(BeNumerically("==", refused))

		By("the bodies being read hold their first chunk of the budget, not what they announced")
		Expect(srv.budget.sem.TryAcquire(DefaultOptions.MaxBufferedBytes - int64(stalled)*firstChunk)).To(BeTrue())
		srv.budget.sem.Release(DefaultOptions.MaxBufferedBytes - int64(stalled)*firstChunk)

		By("a provider's signed event to another tenant's source, and to the same source, from their own address")
		code, resp := send(nsB, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret, gettrxEvent("evt_b", "customer.created", 1000, "cus_b", "b"))
		Expect(code).To(Equal(http.StatusOK), string(resp))
		body, h := signed(crmv1alpha1.ProviderGETTRX, gettrxSecret, gettrxEvent("evt_b2", "customer.created", 1000, "cus_b2", "b2"))
		code, resp = do(http.MethodPost, srvURL+"/hooks/"+nsB+"/gettrx", body, h)
		Expect(code).To(Equal(http.StatusOK), string(resp))
		body, h = signed(crmv1alpha1.ProviderGETTRX, gettrxSecret, gettrxEvent("evt_a", "customer.created", 1000, "cus_a", "a"))
		code, resp = do(http.MethodPost, srvURL+pathA, body, h)
		Expect(code).To(Equal(http.StatusOK), string(resp))

		By("the stalled bodies timing out and counting against the sender at that source")
		Eventually(func() string {
			code, resp, _ := doFrom(stranger, srvURL+pathA, body, h)
			if code != http.StatusTooManyRequests {
				return strconv.Itoa(code)
			}
			return decodeAnswer(resp).Reason
		}, 15*time.Second, 200*time.Millisecond).Should(Equal("too_many_auth_failures"), "even a correctly signed event from that address")
		body, h = signed(crmv1alpha1.ProviderGETTRX, gettrxSecret, gettrxEvent("evt_b3", "customer.created", 1000, "cus_b3", "b3"))
		code, resp, _ = doFrom(stranger, srvURL+"/hooks/"+nsB+"/gettrx", body, h)
		Expect(code).To(Equal(http.StatusOK), "the same address at another source: %s", resp)
	})

	It("keeps one tenant's failed authentications from locking a provider's shared address out of other tenants' sources", func() {
		_, srvURL := startTestServer(cfg, Options{BindAddress: "127.0.0.1:0"})
		waitServed(srvURL, nsA, "gettrx")
		waitServed(srvURL, nsB, "gettrx")
		provider := netip.MustParseAddr("127.0.0.3")

		By("forty deliveries to tenant A's source that fail its signature (A's key is wrong)")
		body, h := signed(crmv1alpha1.ProviderGETTRX, gettrxSecret, gettrxEvent("evt_x", "customer.created", 1000, "cus_x", "x"))
		tampered := append(bytes.Clone(body), ' ')
		codes := map[int]int{}
		for range 40 {
			code, _, _ := doFrom(provider, srvURL+"/hooks/"+nsA+"/gettrx", tampered, h)
			codes[code]++
		}
		Expect(codes).To(Equal(map[int]int{
			http.StatusUnauthorized:    DefaultOptions.AuthFailuresPerMinute,
			http.StatusTooManyRequests: 40 - DefaultOptions.AuthFailuresPerMinute,
		}))

		By("a correctly signed event to tenant B's source from the same address")
		body, h = signed(crmv1alpha1.ProviderGETTRX, gettrxSecret, gettrxEvent("evt_y", "customer.created", 1000, "cus_y", "y"))
		code, resp, _ := doFrom(provider, srvURL+"/hooks/"+nsB+"/gettrx", body, h)
		Expect(code).To(Equal(http.StatusOK), string(resp))
		Expect(decodeAnswer(resp).Applied).To(Equal(1))

		By("tenant A's source stays closed to that address until it earns its allowance back")
		code, resp, header := doFrom(provider, srvURL+"/hooks/"+nsA+"/gettrx", body, h)
		Expect(code).To(Equal(http.StatusTooManyRequests), string(resp))
		Expect(header.Get("Retry-After")).NotTo(BeEmpty())
	})

	It("counts unknown paths against the client's address, so sources cannot be enumerated freely", func() {
		_, srvURL := startTestServer(cfg, Options{BindAddress: "127.0.0.1:0", AddressFailuresPerMinute: 20})
		waitServed(srvURL, nsA, "gettrx")
		guesser := netip.MustParseAddr("127.0.0.4")
		for i := range 20 {
			code, resp, _ := doFrom(guesser, srvURL+"/hooks/"+nsA+"/guess-"+string(rune('a'+i)), []byte("{}"), http.Header{})
			Expect(code).To(Equal(http.StatusNotFound), string(resp))
		}
		code, resp, header := doFrom(guesser, srvURL+"/hooks/"+nsB+"/guess", []byte("{}"), http.Header{})
		Expect(code).To(Equal(http.StatusTooManyRequests), string(resp))
		Expect(decodeAnswer(resp).Reason).To(Equal("too_many_auth_failures"))
		Expect(header.Get("Retry-After")).NotTo(BeEmpty())

		body, h := signed(crmv1alpha1.ProviderGETTRX, gettrxSecret, gettrxEvent("evt_z", "customer.created", 1000, "cus_z", "z"))
		code, resp, _ = doFrom(guesser, srvURL+"/hooks/"+nsA+"/gettrx", body, h)
		Expect(code).To(Equal(http.StatusTooManyRequests), "the address is over its budget everywhere: %s", resp)
		code, resp = do(http.MethodPost, srvURL+"/hooks/"+nsA+"/gettrx", body, h)
		Expect(code).To(Equal(http.StatusOK), "another address is not: %s", resp)
	})
})
