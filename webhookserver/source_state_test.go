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
	"net/http"
	"net/netip"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
)

var _ = Describe("Bounded per-source and per-client state", func() {
	It("drops a deleted source's limiter, touches, Event bursts and metric series", func() {
		ns := newNamespace()
		src := createSource(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret, func(s *crmv1alpha1.CustomerSource) {
			s.Spec.RateLimit = &crmv1alpha1.RateLimit{EventsPerSecond: 100, Burst: 100}
		})
		code, body := send(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret, gettrxEvent("evt_g1", "customer.created", 1000, "cus_g", "g"))
		Expect(code).To(Equal(http.StatusOK), string(body))
		code, _ = post(ns, "gettrx", []byte("{}"), http.Header{})
		Expect(code).To(Equal(http.StatusUnauthorized))

		has := func() bool {
			server.mu.Lock()
			defer server.mu.Unlock()
			st, ok := server.sources[src.UID]
			return ok && st.limiter != nil && !st.touched.IsZero() && len(st.told) > 0
		}
		Expect(has()).To(BeTrue(), "the source's limiter, last touch and last Event are kept")
		key := ns + "/gettrx"
		Expect(seriesOf(requestsTotal, key)).To(BeNumerically(">", 0))
		Expect(seriesOf(rejectionsTotal, key)).To(BeNumerically(">", 0))
		Expect(server.sweep(ctx)).To(Succeed())
		Expect(has()).To(BeTrue(), "a live source keeps its state")

		Expect(k8sClient.Delete(ctx, src)).To(Succeed())
		Eventually(func() bool {
			Expect(server.sweep(ctx)).To(Succeed())
			server.mu.Lock()
			defer server.mu.Unlock()
			_, ok := server.sources[src.UID]
			return ok
		}, 10*time.Second, 50*time.Millisecond).Should(BeFalse())
		for _, c := range []prometheus.Collector{requestsTotal, rejectionsTotal, eventsTotal, requestDuration} {
			Expect(seriesOf(c, key)).To(BeZero())
		}
	})

	It("forgets client addresses once they have earned back their allowance, and those of deleted sources", func() {
		g := newAddressGuard(3, 5)
		t0 := time.Now()
		a := netip.MustParsePrefix("203.0.113.7/32")
		for range 3 {
			g.failed(a, "uid-a", t0)
		}
		_, blocked := g.sourceBlocked(a, "uid-a", t0)
		Expect(blocked).To(BeTrue())
		_, blocked = g.addressBlocked(a, t0)
		Expect(blocked).To(BeFalse(), "3 of the address's 5")
		g.prune(t0.Add(10*time.Second), nil)
		Expect(g.source.tracked()).To(Equal(1), "still paying back")
		Expect(g.address.tracked()).To(Equal(1), "still paying back")
		g.prune(t0.Add(10*time.Second), func(uid types.UID) bool { return uid != "uid-a" })
		Expect(g.source.tracked()).To(BeZero(), "the source is gone")
		g.prune(t0.Add(61*time.Second), nil)
		Expect(g.address.tracked()).To(BeZero())
	})

	It("counts IPv6 clients per /64, and takes the client from X-Forwarded-For only from a trusted proxy", func() {
		req := func(remote, xff string) *http.Request {
			r := &http.Request{RemoteAddr: remote, Header: http.Header{}}
			if xff != "" {
				r.Header.Set("X-Forwarded-For", xff)
			}
			return r
		}
		trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		Expect(clientAddress(req("[2001:db8:1:2:3:4:5:6]:4000", ""), trusted)).To(Equal(netip.MustParsePrefix("2001:db8:1:2::/64")))
		Expect(clientAddress(req("192.0.2.1:4000", "198.51.100.9"), trusted)).To(Equal(netip.MustParsePrefix("192.0.2.1/32")), "an untrusted peer's header is ignored")
		Expect(clientAddress(req("10.1.1.1:4000", "198.51.100.9, 10.2.2.2"), trusted)).To(Equal(netip.MustParsePrefix("198.51.100.9/32")))
		Expect(clientAddress(req("10.1.1.1:4000", ""), trusted)).To(Equal(netip.MustParsePrefix("10.1.1.1/32")))
	})

	It("samples rejection logs: the first few, then one per interval, counting the rest", func() {
		s := New(Options{}, nil, nil, nil, nil)
		ran := 0
		for range 100 {
			s.sampled("unauthorized", func(int64) { ran++ })
		}
		Expect(ran).To(Equal(5))
		Expect(s.logSamplers["unauthorized"].suppressed.Load()).To(Equal(int64(95)))
	})
})
