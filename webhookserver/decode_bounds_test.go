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
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"sigs.k8s.io/controller-runtime/pkg/client"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
)

// batchBomb is a SmarterPay batch of one real customer event followed by as
// many empty objects as fit in size bytes.
func batchBomb(size int) []byte {
	event, err := json.Marshal(smarterpayAccount("BOMB_1", "CUSTBOMB", "Bomb Ltd", time.Now()))
	Expect(err).NotTo(HaveOccurred())
	var b bytes.Buffer
	b.Grow(size)
	b.WriteString(`{"events":[`)
	b.Write(event)
	for b.Len()+len(`,{}]}`) <= size {
		b.WriteString(",{}")
	}
	b.WriteString("]}")
	return b.Bytes()
}

var _ = Describe("Decoding bounds", Serial, func() {
	It("answers four concurrent signed 1 MiB batch bombs 413 and keeps the RSS growth under 64 MiB", func() {
		const maxGrow = 64 << 20
		srvURL := startServer(cfg, Options{BindAddress: "127.0.0.1:0"})
		ns := newNamespace()
		createSource(ns, "smarterpay", crmv1alpha1.ProviderSmarterPay, smarterpaySecret)
		path := srvURL + "/hooks/" + ns + "/smarterpay"
		waitServed(srvURL, ns, "smarterpay")

		bomb := batchBomb(int(DefaultOptions.MaxBodyBytes))
		Expect(strings.Count(string(bomb), "{}")).To(BeNumerically(">", 340_000))
		body, header := signed(crmv1alpha1.ProviderSmarterPay, smarterpaySecret, bomb)
		before := rejections(string(crmv1alpha1.ProviderSmarterPay), ns+"/smarterpay", providers.ReasonTooManyEvents)

		runtime.GC()
		debug.FreeOSMemory()
		base := vmRSS()
		stop := rssPeak()
		codes := make([]int, 4)
		answers := make([][]byte, 4)
		var wg sync.WaitGroup
		for i := range codes {
			wg.Go(func() {
				defer GinkgoRecover()
				codes[i], answers[i] = do(http.MethodPost, path, body, header)
			})
		}
		wg.Wait()
		peak := stop()
		GinkgoWriter.Printf("batch bombs: %v; RSS %d MiB before, peak %d MiB (+%d MiB)\n", codes, base>>20, peak>>20, (peak-base)>>20)

		for i, code := range codes {
			Expect(code == http.StatusRequestEntityTooLarge || code/100 == 2).To(BeTrue(), "bomb %d answered %d: %s", i, code, answers[i])
			if code == http.StatusRequestEntityTooLarge {
				a := decodeAnswer(answers[i])
				Expect(a.Reason).To(Equal(providers.ReasonTooManyEvents))
				Expect(a.Error).NotTo(BeEmpty())
			}
		}
		Expect(rejections(string(crmv1alpha1.ProviderSmarterPay), ns+"/smarterpay", providers.ReasonTooManyEvents) - before).To(Equal(4.0))
		Expect(peak-base).To(BeNumerically("<", maxGrow), "RSS grew by %d MiB", (peak-base)>>20)
	})
})

// smarterpayEvents is a SmarterPay batch of n customer events.
func smarterpayEvents(prefix string, n int) []byte {
	events := make([]map[string]any, n)
	for i := range events {
		id := prefix + strconv.Itoa(i)
		events[i] = smarterpayAccount(id, "C"+id, "Company "+id, time.Now())
	}
	return smarterpayBatch(events...)
}

var _ = Describe("Decoding limits", func() {
	It("answers a batch of exactly --webhook-max-events-per-request events, and one more 413 too_many_events", func() {
		srvURL := startServer(cfg, Options{BindAddress: "127.0.0.1:0", MaxEventsPerRequest: 3, AuthFailuresPerMinute: 100000})
		ns := newNamespace()
		createSource(ns, "smarterpay", crmv1alpha1.ProviderSmarterPay, smarterpaySecret)
		path := srvURL + "/hooks/" + ns + "/smarterpay"
		waitServed(srvURL, ns, "smarterpay")

		body, header := signed(crmv1alpha1.ProviderSmarterPay, smarterpaySecret, smarterpayEvents("OK", 3))
		code, resp := do(http.MethodPost, path, body, header)
		Expect(code).To(Equal(http.StatusOK), string(resp))
		Expect(decodeCounts(resp).Applied).To(Equal(3))

		before := rejections(string(crmv1alpha1.ProviderSmarterPay), ns+"/smarterpay", providers.ReasonTooManyEvents)
		body, header = signed(crmv1alpha1.ProviderSmarterPay, smarterpaySecret, smarterpayEvents("OVER", 4))
		code, resp = do(http.MethodPost, path, body, header)
		Expect(code).To(Equal(http.StatusRequestEntityTooLarge), string(resp))
		a := decodeAnswer(resp)
		Expect(a.Reason).To(Equal(providers.ReasonTooManyEvents))
		Expect(a.Field).To(Equal("events"))
		Expect(a.Error).To(ContainSubstring("3 events"))
		Expect(rejections(string(crmv1alpha1.ProviderSmarterPay), ns+"/smarterpay", providers.ReasonTooManyEvents) - before).To(Equal(1.0))
		Expect(customersOf(ns, nil)).To(HaveLen(3), "nothing of the refused batch is written")
	})

	It("charges the decoded events to the body budget: a batch whose body fits but whose events do not is 503 server_busy", func() {
		srvURL := startServer(cfg, Options{BindAddress: "127.0.0.1:0", MaxBodyBytes: 100_000, MaxBufferedBytes: 250_000, AuthFailuresPerMinute: 100000})
		u, err := url.Parse(srvURL)
		Expect(err).NotTo(HaveOccurred())
		ns := newNamespace()
		createSource(ns, "smarterpay", crmv1alpha1.ProviderSmarterPay, smarterpaySecret)
		createSource(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret)
		waitServed(srvURL, ns, "smarterpay")

		batch := smarterpayEvents("BUDGET", 150)
		body, header := signed(crmv1alpha1.ProviderSmarterPay, smarterpaySecret, batch)
		Expect(len(body)).To(BeNumerically("<", 100_000))
		// The body and a held 100 kB body fit the budget; the 150 events'
		// decoding (150 KiB) does not fit beside them.
		Expect(int64(len(body)) + 100_000).To(BeNumerically("<", 250_000))
		Expect(int64(len(body)) + 100_000 + 150*decodedEventBytes).To(BeNumerically(">", 250_000))

		By("a stalled 100 kB body holding part of the budget")
		release := make(chan struct{})
		stalled := make(chan struct{})
		var heldCode int
		done := make(chan struct{})
		go func() {
			defer close(done)
			stalledRequest(u.Host, "/hooks/"+ns+"/gettrx", http.Header{"X-Webhook-Signature": {strings.Repeat("0", 64)}},
				100_000, release, func() { close(stalled) }, &heldCode)
		}()
		<-stalled
		Eventually(func() float64 {
			return testutil.ToFloat64(bufferedBytes)
		}, 10*time.Second, 20*time.Millisecond).Should(BeNumerically(">=", 90_000), "the stalled body is held")

		code, resp := do(http.MethodPost, srvURL+"/hooks/"+ns+"/smarterpay", body, header)
		Expect(code).To(Equal(http.StatusServiceUnavailable), string(resp))
		Expect(decodeAnswer(resp).Reason).To(Equal("server_busy"))
		Expect(customersOf(ns, nil)).To(BeEmpty())

		By("the stalled body ending, and the batch fitting again")
		close(release)
		<-done
		Eventually(func() int {
			code, resp = do(http.MethodPost, srvURL+"/hooks/"+ns+"/smarterpay", body, header)
			return code
		}, 10*time.Second, 100*time.Millisecond).Should(Equal(http.StatusOK))
		Expect(decodeCounts(resp).Applied).To(Equal(150))
	})
})

var _ = Describe("Event identity and time", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("rejects a GETTRX event from year 9999 naming created, and then applies an ordinary later event", func() {
		createSource(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret)
		year9999 := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).Unix()
		code, body := send(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret,
			gettrxEvent("evt_future", "customer.updated", year9999, "cus_future", "frozen"))
		Expect(code).To(Equal(http.StatusUnprocessableEntity), string(body))
		a := decodeAnswer(body)
		Expect(a.Reason).To(Equal(ReasonEventInFuture))
		Expect(a.Field).To(Equal("created"))

		code, body = send(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret,
			gettrxEvent("evt_now", "customer.updated", time.Now().Unix(), "cus_future", "current"))
		Expect(code).To(Equal(http.StatusOK), string(body))
		Expect(decodeCounts(body)).To(Equal(Counts{Applied: 1}))
		c := getCustomer(ns, crmv1alpha1.ProviderGETTRX, "cus_future")
		Expect(c.Spec.DisplayName).To(Equal("current"))
		Expect(c.Annotations[crmv1alpha1.AnnotationLastEventID]).To(Equal("evt_now"))
	})

	It("reports a future event in a SmarterPay batch as a poison event and applies the rest", func() {
		createSource(ns, "smarterpay", crmv1alpha1.ProviderSmarterPay, smarterpaySecret)
		now := time.Now()
		code, body := send(ns, "smarterpay", crmv1alpha1.ProviderSmarterPay, smarterpaySecret, smarterpayBatch(
			smarterpayAccount("FUT_1", "CUSTFUT", "Far Future Ltd", now.Add(time.Hour)),
			smarterpayAccount("NOW_1", "CUSTNOW", "Present Ltd", now),
		))
		Expect(code).To(Equal(http.StatusOK), string(body))
		a := decodeAnswer(body)
		Expect(a.Applied).To(Equal(1))
		Expect(a.Rejected).To(Equal(1))
		Expect(a.RejectedEvents).To(HaveLen(1))
		Expect(a.RejectedEvents[0].ID).To(Equal("FUT_1"))
		Expect(a.RejectedEvents[0].Reason).To(Equal(ReasonEventInFuture))
		Expect(a.RejectedEvents[0].Field).To(Equal("events[0].created_at"))
		Expect(getCustomer(ns, crmv1alpha1.ProviderSmarterPay, "CUSTNOW").Spec.CompanyName).To(Equal("Present Ltd"))
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: CustomerName(crmv1alpha1.ProviderSmarterPay, "CUSTFUT")}, &crmv1alpha1.Customer{})).NotTo(Succeed())
	})

	It("rejects a 10,000-character event id naming id, and then applies an ordinary event", func() {
		createSource(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret)
		long := "evt_" + strings.Repeat("x", 10_000-4)
		code, body := send(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret,
			gettrxEvent(long, "customer.created", time.Now().Unix()-60, "cus_long", "long"))
		Expect(code).To(Equal(http.StatusUnprocessableEntity), "answer of %d bytes", len(body))
		a := decodeAnswer(body)
		Expect(a.Reason).To(Equal(ReasonEventIDTooLong))
		Expect(a.Field).To(Equal("id"))
		Expect(len(body)).To(BeNumerically("<", 1024), "the answer quotes the id in full")

		code, body = send(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret,
			gettrxEvent("evt_short", "customer.created", time.Now().Unix(), "cus_long", "short"))
		Expect(code).To(Equal(http.StatusOK), string(body))
		Expect(decodeCounts(body)).To(Equal(Counts{Applied: 1}))
		c := getCustomer(ns, crmv1alpha1.ProviderGETTRX, "cus_long")
		Expect(c.Spec.DisplayName).To(Equal("short"))
		Expect(c.Annotations[AnnotationRecentEventIDs]).To(Equal(`["evt_short"]`))
	})

	It("counts events, not requests, against the source's rate limit, and refuses a batch over the burst 413", func() {
		limit := func(s *crmv1alpha1.CustomerSource) {
			s.Spec.RateLimit = &crmv1alpha1.RateLimit{EventsPerSecond: 1, Burst: 6}
		}
		createSource(ns, "smarterpay", crmv1alpha1.ProviderSmarterPay, smarterpaySecret, limit)
		basicSecret := map[string][]byte{"username": []byte("smarterpay"), "password": []byte("basic-only-password")}
		// A fast refill, so that the header-authenticated source's burst is
		// whole again between requests.
		createSource(ns, "basic", crmv1alpha1.ProviderSmarterPay, basicSecret, func(s *crmv1alpha1.CustomerSource) {
			s.Spec.RateLimit = &crmv1alpha1.RateLimit{EventsPerSecond: 100, Burst: 6}
		})
		batchOf := func(prefix string, n int) []byte {
			events := make([]map[string]any, n)
			for i := range events {
				id := prefix + strconv.Itoa(i)
				events[i] = smarterpayAccount(id, "C"+id, "Company "+id, time.Now())
			}
			return smarterpayBatch(events...)
		}

		By("a batch of 4 events fitting the burst of 6, then another that does not")
		code, body := send(ns, "smarterpay", crmv1alpha1.ProviderSmarterPay, smarterpaySecret, batchOf("A", 4))
		Expect(code).To(Equal(http.StatusOK), string(body))
		Expect(decodeCounts(body).Applied).To(Equal(4))
		req, err := http.NewRequest(http.MethodPost, baseURL+"/hooks/"+ns+"/smarterpay", nil)
		Expect(err).NotTo(HaveOccurred())
		b, h := signed(crmv1alpha1.ProviderSmarterPay, smarterpaySecret, batchOf("B", 4))
		req.Body, req.ContentLength, req.Header = io.NopCloser(bytes.NewReader(b)), int64(len(b)), h
		resp, err := http.DefaultClient.Do(req)
		Expect(err).NotTo(HaveOccurred())
		_ = resp.Body.Close()
		Expect(resp.StatusCode).To(Equal(http.StatusTooManyRequests))
		retry, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		Expect(err).NotTo(HaveOccurred())
		Expect(retry).To(BeNumerically(">=", 1))

		By("a batch larger than the burst: 413, not a 429 to retry forever")
		code, body = send(ns, "smarterpay", crmv1alpha1.ProviderSmarterPay, smarterpaySecret, batchOf("C", 7))
		Expect(code).To(Equal(http.StatusRequestEntityTooLarge), string(body))
		Expect(decodeAnswer(body).Reason).To(Equal(providers.ReasonTooManyEvents))

		By("a header-authenticated source, which pays for one event before its body is read: over the burst is 413, the burst itself passes")
		code, body = send(ns, "basic", crmv1alpha1.ProviderSmarterPay, basicSecret, batchOf("D", 7))
		Expect(code).To(Equal(http.StatusRequestEntityTooLarge), string(body))
		Expect(decodeAnswer(body).Reason).To(Equal(providers.ReasonTooManyEvents))
		Eventually(func(g Gomega) {
			code, body := send(ns, "basic", crmv1alpha1.ProviderSmarterPay, basicSecret, batchOf("E", 6))
			g.Expect(code).To(Equal(http.StatusOK), string(body))
			g.Expect(decodeCounts(body).Applied).To(Equal(6))
		}, 10*time.Second, 200*time.Millisecond).Should(Succeed())
	})
})
