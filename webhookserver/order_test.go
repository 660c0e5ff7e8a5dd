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
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
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
	"github.com/customer-operator/customer-operator/webhookserver/providers/registry"
)

func hmacHex(key, msg []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return hex.EncodeToString(m.Sum(nil))
}

func rejections(provider, reason string) float64 {
	return testutil.ToFloat64(rejectionsTotal.WithLabelValues(provider, reason))
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

	// Property: whatever order a sequence of events with duplicates arrives in,
	// sequentially or all at once, the Customer ends as the newest event says,
	// and a delete is never undone.
	It("ends at the newest event for random permutations with duplicates", func() {
		seed := GinkgoRandomSeed()
		rng := rand.New(rand.NewPCG(uint64(seed), 42))
		GinkgoWriter.Printf("permutation seed %d\n", seed)
		for trial := range 16 {
			customerID := fmt.Sprintf("cus_prop_%d", trial)
			withDelete := trial%2 == 1
			concurrent := trial%4 >= 2
			events := [][]byte{
				gettrxEvent(customerID+"_1", "customer.created", 1000, customerID, "v1"),
				gettrxEvent(customerID+"_2", "customer.updated", 2000, customerID, "v2"),
				gettrxEvent(customerID+"_3", "customer.updated", 3000, customerID, "v3"),
			}
			if withDelete {
				events = append(events, gettrxEvent(customerID+"_4", "customer.deleted", 4000, customerID, "v3"))
			}
			seq := append([][]byte{}, events...)
			for range 3 {
				seq = append(seq, events[rng.IntN(len(events))])
			}
			rng.Shuffle(len(seq), func(i, j int) { seq[i], seq[j] = seq[j], seq[i] })

			var total Counts
			var mu sync.Mutex
			deliver := func(ev []byte) {
				defer GinkgoRecover()
				code, body := send(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret, ev)
				Expect(code).To(Equal(http.StatusOK), string(body))
				c := decodeCounts(body)
				mu.Lock()
				total.Applied += c.Applied
				total.Duplicate += c.Duplicate
				total.Stale += c.Stale
				mu.Unlock()
			}
			deletedSeen := false
			if concurrent {
				var wg sync.WaitGroup
				for _, ev := range seq {
					wg.Go(func() { deliver(ev) })
				}
				wg.Wait()
			} else {
				for _, ev := range seq {
					deliver(ev)
					c := &crmv1alpha1.Customer{}
					err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: CustomerName(crmv1alpha1.ProviderGETTRX, customerID)}, c)
					Expect(err).NotTo(HaveOccurred())
					if deletedSeen {
						Expect(c.Spec.Lifecycle).To(Equal(crmv1alpha1.LifecycleDeleted), "trial %d: a delete was undone", trial)
					}
					deletedSeen = c.Spec.Lifecycle == crmv1alpha1.LifecycleDeleted
				}
			}

			Expect(total.Applied+total.Duplicate+total.Stale).To(Equal(len(seq)), "trial %d: every event acknowledged once", trial)
			final := getCustomer(ns, crmv1alpha1.ProviderGETTRX, customerID)
			if withDelete {
				Expect(final.Spec.Lifecycle).To(Equal(crmv1alpha1.LifecycleDeleted), "trial %d", trial)
			} else {
				Expect(final.Spec.Lifecycle).To(Equal(crmv1alpha1.LifecycleActive), "trial %d", trial)
				Expect(final.Spec.DisplayName).To(Equal("v3"), "trial %d (concurrent %v)", trial, concurrent)
				Expect(final.Annotations[crmv1alpha1.AnnotationLastEventID]).To(Equal(customerID + "_3"))
			}
		}
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
