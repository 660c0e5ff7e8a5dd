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
	"crypto/rand"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/customer-operator/customer-operator/internal/cachetransform"
	"github.com/customer-operator/customer-operator/internal/secretcache"
	"github.com/customer-operator/customer-operator/test/envtestutil"
)

// heapAllocated is the live heap after a collection, in MiB.
func heapAllocated() float64 {
	_, alloc := envtestutil.Heap()
	return envtestutil.MiB(alloc)
}

// seriesInNamespace counts the series of customer_operator_* metrics (as /metrics
// serves them) with a label value naming an object of namespace ns.
func seriesInNamespace(ns string) int {
	GinkgoHelper()
	n, _ := envtestutil.SeriesNaming(ns)
	return n
}

// startWebhookOnly runs a manager with only the webhook server, wired as
// main.go wires --mode=webhook: Secrets read by name, kept for ttl and swept
// every sweep, as the server's own state is.
func startWebhookOnly(ttl, sweep time.Duration) string {
	GinkgoHelper()
	mgr := newServerManager(cfg, cache.Options{DefaultTransform: cachetransform.New().TransformFunc()})
	secrets := secretcache.NewByName(mgr.GetAPIReader(), ttl)
	Expect(mgr.Add(&secretcache.Sweeper{Store: secrets, Interval: sweep})).To(Succeed())
	_, url := serveOn(mgr, Options{BindAddress: "127.0.0.1:0", AuthFailuresPerMinute: -1, SweepInterval: sweep}, secrets, nil)
	envtestutil.RunManager(ctx, mgr)
	return url
}

var _ = Describe("a webhook-only server", Serial, func() {
	It("lets go of deleted sources: after 100 sources with 1 MiB Secrets come and go, the heap is back within 10% and no series names them", func() {
		const n = 100
		const sweep = 250 * time.Millisecond
		// Secrets are kept for the default TTL: longer than a round takes.
		hooks := startWebhookOnly(secretcache.DefaultTTL, sweep)
		padding := make([]byte, 1<<20-16<<10)
		_, _ = rand.Read(padding)

		sources := envtestutil.SourceChurn{Client: k8sClient, Hooks: hooks, N: n,
			Event: func(name, customer string) []byte {
				return gettrxEvent(name, "customer.updated", time.Now().Unix(), "cus_"+name, customer)
			}}
		// round creates n sources, sends each a signed event, then deletes the
		// sources and every other Secret.
		round := func(padding []byte) string {
			ns := newNamespace()
			sources.Create(ctx, ns, padding, nil)
			Expect(seriesInNamespace(ns)).To(BeNumerically(">=", 2*n), "the sources have series")
			sources.Delete(ctx, ns, nil)
			return ns
		}

		// A warm-up round with small Secrets grows the maps that never shrink.
		warm := round(padding[:1<<10])
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && seriesInNamespace(warm) > 0; time.Sleep(sweep) {
		}
		time.Sleep(secretcache.DefaultTTL + 4*sweep)
		before := heapAllocated()

		ns := round(padding)
		peak := heapAllocated()
		var after float64
		var left int
		Eventually(func(g Gomega) {
			after, left = heapAllocated(), seriesInNamespace(ns)
			state := fmt.Sprintf("%d series left; heap allocated %.1f MiB, %.1f MiB before and %.1f MiB with the sources", left, after, before, peak)
			g.Expect(left).To(BeZero(), state)
			g.Expect(after).To(BeNumerically("<=", 1.1*before), state)
		}).WithTimeout(30 * time.Second).WithPolling(time.Second).Should(Succeed())
		AddReportEntry("heap", fmt.Sprintf("allocated %.1f MiB before, %.1f MiB with %d sources, %.1f MiB after their delete", before, peak, n, after))
	})
})
