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
	"net/http"
	"runtime"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/internal/cachetransform"
	"github.com/customer-operator/customer-operator/internal/secretcache"
	"github.com/customer-operator/customer-operator/test/envtestutil"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
	"github.com/customer-operator/customer-operator/webhookserver/providers/registry"
)

// heapAllocated is the live heap after a collection, in MiB.
func heapAllocated() float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / (1 << 20)
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
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultTransform: cachetransform.New().TransformFunc()},
	})
	Expect(err).NotTo(HaveOccurred())
	create, err := NewMetadataCreate(mgr.GetConfig(), mgr.GetHTTPClient())
	Expect(err).NotTo(HaveOccurred())
	secrets := secretcache.NewByName(mgr.GetAPIReader(), ttl)
	Expect(mgr.Add(&secretcache.Sweeper{Store: secrets, Interval: sweep})).To(Succeed())
	s := New(Options{BindAddress: "127.0.0.1:0", AuthFailuresPerMinute: -1, SweepInterval: sweep, CreateCustomer: create},
		mgr.GetClient(), mgr.GetAPIReader(), secrets, nil)
	addr, err := s.Listen()
	Expect(err).NotTo(HaveOccurred())
	Expect(mgr.Add(s)).To(Succeed())
	envtestutil.RunManager(ctx, mgr)
	return "http://" + addr.String()
}

var _ = Describe("a webhook-only server", Serial, func() {
	It("lets go of deleted sources: after 100 sources with 1 MiB Secrets come and go, the heap is back within 10% and no series names them", func() {
		const n = 100
		const sweep = 250 * time.Millisecond
		// Secrets are kept for the default TTL: longer than a round takes.
		hooks := startWebhookOnly(secretcache.DefaultTTL, sweep)
		padding := make([]byte, 1<<20-16<<10)
		_, _ = rand.Read(padding)
		gettrx := registry.Lookup(crmv1alpha1.ProviderGETTRX).(providers.Simulator)

		// round creates n sources, sends each a signed event (every other one an
		// event that can never be applied, answered 422), then deletes the
		// sources and every other Secret: the rest stay, read by nothing.
		round := func(padding []byte) string {
			ns := newNamespace()
			var g errgroup.Group
			g.SetLimit(8)
			for i := range n {
				g.Go(func() error {
					defer GinkgoRecover()
					name := fmt.Sprintf("src-%d", i)
					secret := map[string][]byte{providers.KeySecret: []byte(name + "-key"), "padding": padding}
					Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: secret})).To(Succeed())
					Expect(k8sClient.Create(ctx, &crmv1alpha1.CustomerSource{
						ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
						Spec:       crmv1alpha1.CustomerSourceSpec{Provider: crmv1alpha1.ProviderGETTRX, SecretRef: crmv1alpha1.SecretReference{Name: name}},
					})).To(Succeed())
					customer, want := "churn", BeNumerically("<", 300)
					if i%2 == 1 {
						customer, want = strings.Repeat("y", 600), Equal(http.StatusUnprocessableEntity)
					}
					// 404 until the server's cache holds the source.
					Eventually(func() int {
						body, header, err := gettrx.Prepare(gettrxEvent(name, "customer.updated", time.Now().Unix(), "cus_"+name, customer), secret, time.Now())
						Expect(err).NotTo(HaveOccurred())
						code, _ := do(http.MethodPost, hooks+"/hooks/"+ns+"/"+name, body, header)
						return code
					}).WithTimeout(30*time.Second).WithPolling(50*time.Millisecond).Should(want, "source %s", name)
					return nil
				})
			}
			Expect(g.Wait()).To(Succeed())
			Expect(seriesInNamespace(ns)).To(BeNumerically(">=", 2*n), "the sources have series")
			for i := range n {
				g.Go(func() error {
					defer GinkgoRecover()
					name := fmt.Sprintf("src-%d", i)
					Expect(k8sClient.Delete(ctx, &crmv1alpha1.CustomerSource{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})).To(Succeed())
					if i%2 == 0 {
						Expect(k8sClient.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})).To(Succeed())
					}
					return nil
				})
			}
			Expect(g.Wait()).To(Succeed())
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
