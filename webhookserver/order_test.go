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
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
	"github.com/customer-operator/customer-operator/webhookserver/providers/registry"
)

func hmacHex(key, msg []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return hex.EncodeToString(m.Sum(nil))
}

func rejections(provider, source, reason string) float64 {
	return testutil.ToFloat64(rejectionsTotal.WithLabelValues(provider, source, reason))
}

// gettrxEvent is a GETTRX customer event with its own id, time and name.
func gettrxEvent(id, typ string, created int64, customerID, name string) []byte {
	return mustJSON(`{"id":%q,"type":%q,"created":%d,"attemptId":"wha_%d","data":{"object":{"id":%q,"name":%q,"email":"%s@example.com"}}}`,
		id, typ, created, rand.Int64(), customerID, name, name)
}

var _ = Describe("Order and idempotency", func() {
	var ns string
	BeforeEach(func() {
		ns = newNamespace()
		createSource(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret)
	})

	It("acknowledges a duplicate without a write", func() {
		ev := gettrxEvent("evt_dup", "customer.created", 1000, "cus_dup", "first")
		code, body := send(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret, ev)
		Expect(code).To(Equal(http.StatusOK))
		Expect(decodeCounts(body)).To(Equal(Counts{Applied: 1}))
		rv := getCustomer(ns, crmv1alpha1.ProviderGETTRX, "cus_dup").ResourceVersion

		code, body = send(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret, ev)
		Expect(code).To(Equal(http.StatusOK))
		Expect(decodeCounts(body)).To(Equal(Counts{Duplicate: 1}))
		Expect(getCustomer(ns, crmv1alpha1.ProviderGETTRX, "cus_dup").ResourceVersion).To(Equal(rv))

		code, body = send(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret, gettrxEvent("evt_old", "customer.updated", 500, "cus_dup", "older"))
		Expect(code).To(Equal(http.StatusOK))
		Expect(decodeCounts(body)).To(Equal(Counts{Stale: 1}))
		Expect(getCustomer(ns, crmv1alpha1.ProviderGETTRX, "cus_dup").Spec.DisplayName).To(Equal("first"))
	})

	// Property: whatever order a sequence of events with retries arrives in,
	// sequentially or all at once, the Customer ends at the newest distinct event
	// (of two events with the same timestamp, the one that arrived later), a
	// retry never rolls it back, and a delete is never undone.
	It("ends at the newest distinct event for random permutations with retries and equal timestamps", func() {
		seed := GinkgoRandomSeed()
		rng := rand.New(rand.NewPCG(uint64(seed), 42))
		GinkgoWriter.Printf("permutation seed %d\n", seed)
		type event struct {
			id, typ, name string
			created       int64
		}
		for trial := range 16 {
			customerID := fmt.Sprintf("cus_prop_%d", trial)
			withDelete := trial%2 == 1
			concurrent := trial%4 >= 2
			events := []event{
				{customerID + "_1", "customer.created", "v1", 1000},
				{customerID + "_2", "customer.updated", "v2", 2000},
				{customerID + "_3", "customer.updated", "v3", 3000},
				// The same second as _3: whole-second timestamps make ties common.
				{customerID + "_3b", "customer.updated", "v3b", 3000},
			}
			if withDelete {
				events = append(events, event{customerID + "_4", "customer.deleted", "v4", 4000})
			}
			seq := append([]event{}, events...)
			for range 4 {
				seq = append(seq, events[rng.IntN(len(events))]) // the provider's retries
			}
			rng.Shuffle(len(seq), func(i, j int) { seq[i], seq[j] = seq[j], seq[i] })

			var total Counts
			var mu sync.Mutex
			deliver := func(ev event) {
				defer GinkgoRecover()
				// Each delivery is a new attempt (a new attemptId) of the same event id.
				code, body := send(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret, gettrxEvent(ev.id, ev.typ, ev.created, customerID, ev.name))
				Expect(code).To(Equal(http.StatusOK), string(body))
				c := decodeCounts(body)
				mu.Lock()
				total.Applied += c.Applied
				total.Duplicate += c.Duplicate
				total.Stale += c.Stale
				mu.Unlock()
			}
			if concurrent {
				var wg sync.WaitGroup
				for _, ev := range seq {
					wg.Go(func() { deliver(ev) })
				}
				wg.Wait()
			} else {
				// The ordering rules, step by step: a repeat of an applied
				// event is a duplicate; another event is applied unless it is older
				// than the record (or the record is a tombstone): then it is stale.
				var current *event
				applied := map[string]bool{}
				var want Counts
				for i, ev := range seq {
					deliver(ev)
					switch {
					case applied[ev.id]:
						want.Duplicate++
					case current == nil || (current.typ != "customer.deleted" && ev.created >= current.created):
						current = &seq[i]
						applied[ev.id] = true
						want.Applied++
					default:
						want.Stale++
					}
					c := getCustomer(ns, crmv1alpha1.ProviderGETTRX, customerID)
					if current.typ == "customer.deleted" {
						Expect(c.Spec.Lifecycle).To(Equal(crmv1alpha1.LifecycleDeleted), "trial %d step %d: a delete was undone", trial, i)
					} else {
						Expect(c.Spec.DisplayName).To(Equal(current.name), "trial %d step %d: %s after %v", trial, i, ev.id, seq[:i])
						Expect(c.Annotations[crmv1alpha1.AnnotationLastEventID]).To(Equal(current.id))
					}
				}
				Expect(total).To(Equal(want), "trial %d", trial)
			}

			Expect(total.Applied+total.Duplicate+total.Stale).To(Equal(len(seq)), "trial %d: every event acknowledged once", trial)
			final := getCustomer(ns, crmv1alpha1.ProviderGETTRX, customerID)
			if withDelete {
				Expect(final.Spec.Lifecycle).To(Equal(crmv1alpha1.LifecycleDeleted), "trial %d", trial)
			} else {
				Expect(final.Spec.Lifecycle).To(Equal(crmv1alpha1.LifecycleActive), "trial %d", trial)
				Expect(final.Spec.DisplayName).To(BeElementOf("v3", "v3b"), "trial %d (concurrent %v)", trial, concurrent)
				Expect(final.Annotations[crmv1alpha1.AnnotationLastEventID]).To(Equal(customerID + "_" + strings.TrimPrefix(final.Spec.DisplayName, "v")))
			}
		}
	})

	It("remembers the last 32 applied event ids, across a restart of the server", func() {
		for i := 1; i <= 40; i++ {
			code, body := send(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret,
				gettrxEvent(fmt.Sprintf("evt_n%d", i), "customer.updated", int64(1000+i), "cus_many", fmt.Sprintf("n%d", i)))
			Expect(code).To(Equal(http.StatusOK), string(body))
		}
		c := getCustomer(ns, crmv1alpha1.ProviderGETTRX, "cus_many")
		var ids []string
		Expect(json.Unmarshal([]byte(c.Annotations[AnnotationRecentEventIDs]), &ids)).To(Succeed())
		Expect(ids).To(HaveLen(RecentEventIDs))
		Expect(ids[0]).To(Equal("evt_n9"))
		Expect(ids[31]).To(Equal("evt_n40"))

		By("a new server, as after a restart, knowing the recent ids from the record")
		fresh := startServer(cfg, Options{BindAddress: "127.0.0.1:0"})
		retry := func(i int) answer {
			body, header, err := registry.Lookup(crmv1alpha1.ProviderGETTRX).(providers.Simulator).Prepare(
				gettrxEvent(fmt.Sprintf("evt_n%d", i), "customer.updated", int64(1000+i), "cus_many", fmt.Sprintf("n%d", i)), gettrxSecret, time.Now())
			Expect(err).NotTo(HaveOccurred())
			var code int
			var resp []byte
			Eventually(func() int {
				code, resp = do(http.MethodPost, fresh+"/hooks/"+ns+"/gettrx", body, header)
				return code
			}, 20*time.Second, 50*time.Millisecond).ShouldNot(Equal(http.StatusNotFound))
			Expect(code).To(Equal(http.StatusOK), string(resp))
			return decodeAnswer(resp)
		}
		Expect(retry(39).Duplicate).To(Equal(1))
		Expect(retry(1).Stale).To(Equal(1), "forgotten, but older than the record")
		Expect(getCustomer(ns, crmv1alpha1.ProviderGETTRX, "cus_many").Spec.DisplayName).To(Equal("n40"))
	})
})

// faultyTransport stands between a real client and the real API server and fails
// its writes on demand: the API server "unavailable" or "timing out", as a
// provider's request would meet it.
type faultyTransport struct {
	next http.RoundTripper
	mode atomic.Int32
}

const (
	faultNone = iota
	faultRefuse
	faultHang
)

func (f *faultyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet {
		switch f.mode.Load() {
		case faultRefuse:
			return nil, errors.New("dial tcp: connect: connection refused")
		case faultHang:
			<-req.Context().Done()
			return nil, req.Context().Err()
		}
	}
	return f.next.RoundTrip(req)
}

var _ = Describe("When the API server cannot be written", func() {
	It("answers 503 with Retry-After and acknowledges nothing that was not persisted", func() {
		ns := newNamespace()
		fault := &faultyTransport{}
		faultyCfg := rest.CopyConfig(cfg)
		faultyCfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
			fault.next = rt
			return fault
		}
		url := startServer(faultyCfg, Options{BindAddress: "127.0.0.1:0", APITimeout: time.Second})
		createSource(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret)
		sendTo := func(ev []byte) (int, http.Header) {
			body, header, err := registry.Lookup(crmv1alpha1.ProviderGETTRX).(interface {
				Prepare([]byte, map[string][]byte, time.Time) ([]byte, http.Header, error)
			}).Prepare(ev, gettrxSecret, time.Now())
			Expect(err).NotTo(HaveOccurred())
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, url+"/hooks/"+ns+"/gettrx", bytes.NewReader(body))
			req.Header = header
			resp, err := http.DefaultClient.Do(req)
			Expect(err).NotTo(HaveOccurred())
			_ = resp.Body.Close()
			return resp.StatusCode, resp.Header
		}
		Eventually(func() int {
			code, _ := sendTo([]byte(`{"id":"evt_x","type":"payment.created","created":1,"data":{"object":{"id":"p"}}}`))
			return code
		}, 20*time.Second, 100*time.Millisecond).Should(Equal(http.StatusNoContent))

		key := client.ObjectKey{Namespace: ns, Name: CustomerName(crmv1alpha1.ProviderGETTRX, "cus_outage")}
		ev := gettrxEvent("evt_outage", "customer.created", 1000, "cus_outage", "kept")
		for _, mode := range []int32{faultRefuse, faultHang} {
			fault.mode.Store(mode)
			code, header := sendTo(ev)
			Expect(code).To(Equal(http.StatusServiceUnavailable), "fault mode %d", mode)
			Expect(header.Get("Retry-After")).NotTo(BeEmpty())
			Expect(apierrors.IsNotFound(k8sClient.Get(ctx, key, &crmv1alpha1.Customer{}))).To(BeTrue())
		}

		fault.mode.Store(faultNone)
		code, _ := sendTo(ev)
		Expect(code).To(Equal(http.StatusOK), "the provider's retry is applied")
		c := &crmv1alpha1.Customer{}
		Expect(k8sClient.Get(ctx, key, c)).To(Succeed())
		Expect(c.Spec.DisplayName).To(Equal("kept"))
	})
})
