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
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/engine"
	"github.com/customer-operator/customer-operator/test/benchutil"
)

// isolatedLabel marks Customers and sinks served by a test's own manager
// instead of the suite's, for tests that stop a manager or count its goroutines.
const isolatedLabel = "crm-test.customer-operator.io/manager"

// startIsolatedManager starts a manager wired as the suite's, serving only the
// Customers and sinks labelled isolatedLabel=id. The returned stop cancels it
// and waits for it to return.
func startIsolatedManager(id string) (stop func()) {
	GinkgoHelper()
	sel := labels.SelectorFromSet(labels.Set{isolatedLabel: id})
	skip := true
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&crmv1alpha1.Customer{}:     {Label: sel},
			&crmv1alpha1.CustomerSink{}: {Label: sel},
		}},
		Controller: config.Controller{SkipNameValidation: &skip},
	})
	Expect(err).NotTo(HaveOccurred())
	_, err = setupControllers(mgr, newDeliveryClient())
	Expect(err).NotTo(HaveOccurred())
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		Expect(mgr.Start(mctx)).To(Succeed())
	}()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		Eventually(done).WithTimeout(20*time.Second).Should(BeClosed(), "the manager did not stop")
	}
	DeferCleanup(stop)
	return stop
}

// goroutines counts the goroutines whose stack mentions any of marks (all
// goroutines when none), and returns their stacks.
func goroutines(marks ...string) (int, string) {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if len(marks) == 0 {
			out = append(out, g)
			continue
		}
		for _, m := range marks {
			if strings.Contains(g, m) {
				out = append(out, g)
				break
			}
		}
	}
	return len(out), strings.Join(out, "\n\n")
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

var _ = Describe("the delivery engine", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("holds 3,000 Customers pending at a hanging sink in bounded goroutines and heap, and leaves no goroutine behind when the manager stops", func() {
		const count = 3000
		// The process before: the suite's manager, the test's clients.
		goroutinesBefore := runtime.NumGoroutine()
		engineBefore, _ := goroutines("controllers/engine.", "controllers/delivery.")

		var requests, inFlight, maxInFlight atomic.Int64
		hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Read the body first: only then does the server notice a client
			// that gives up, and cancel r.Context().
			_, _ = io.Copy(io.Discard, r.Body)
			requests.Add(1)
			n := inFlight.Add(1)
			for {
				m := maxInFlight.Load()
				if n <= m || maxInFlight.CompareAndSwap(m, n) {
					break
				}
			}
			<-r.Context().Done() // never answers; the sender gives up
			inFlight.Add(-1)
		}))
		DeferCleanup(hanging.Close)

		id := "bounded"
		stop := startIsolatedManager(id)
		secret := newWebhookSecret()
		createSecret(ns, "hanging-secret", map[string]string{"secret": secret})
		sink := &crmv1alpha1.CustomerSink{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hanging", Labels: map[string]string{isolatedLabel: id}},
			Spec: crmv1alpha1.CustomerSinkSpec{URL: hanging.URL + "/hooks", SecretRef: &crmv1alpha1.SecretReference{Name: "hanging-secret"},
				Timeout: &metav1.Duration{Duration: time.Minute}},
		}
		Expect(k8sClient.Create(ctx, sink)).To(Succeed())
		heapBefore := heapInUse()

		_, err := benchutil.Parallel(count, 16, func(i int) error {
			return k8sClient.Create(ctx, &crmv1alpha1.Customer{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("pending-%04d", i), Labels: map[string]string{isolatedLabel: id}},
				Spec:       crmv1alpha1.CustomerSpec{DisplayName: fmt.Sprintf("Pending %d", i), Email: fmt.Sprintf("p%d@example.com", i)},
			})
		})
		Expect(err).NotTo(HaveOccurred())

		By("waiting until every Customer reports its delivery pending")
		Eventually(func(g Gomega) {
			list := &crmv1alpha1.CustomerList{}
			g.Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
			pending := 0
			for i := range list.Items {
				c := &list.Items[i]
				s := condition(g, c.Status.Conditions, crmv1alpha1.ConditionSynced)
				if c.Status.ObservedGeneration == c.Generation && s.Status == metav1.ConditionFalse &&
					(s.Reason == crmv1alpha1.ReasonDelivering || s.Reason == crmv1alpha1.ReasonDeliveryFailed) {
					pending++
				}
			}
			g.Expect(pending).To(Equal(count))
		}).WithTimeout(4 * time.Minute).WithPolling(2 * time.Second).Should(Succeed())

		By("counting goroutines and heap while they stay pending")
		peak := 0
		for range 10 {
			peak = max(peak, runtime.NumGoroutine())
			time.Sleep(300 * time.Millisecond)
		}
		heapPending := heapInUse()
		grown := int64(heapPending) - int64(heapBefore)
		GinkgoWriter.Printf("goroutines: %d before, peak %d with %d pending; heap: %d MiB before, %d MiB with them pending (%+d KiB, %d B per Customer); sink: %d requests, at most %d in flight\n",
			goroutinesBefore, peak, count, heapBefore>>20, heapPending>>20, grown>>10, grown/count, requests.Load(), maxInFlight.Load())
		Expect(peak).To(BeNumerically("<", 600), "goroutines grow with the backlog")
		Expect(maxInFlight.Load()).To(BeNumerically("<=", 16), "more deliveries in flight than --sink-concurrency")
		// The cache holds every Customer, a few KiB each; a copy or a goroutine
		// per pending delivery would add as much again.
		Expect(grown).To(BeNumerically("<", 12<<10*count), "heap grows with the backlog")

		By("stopping the manager with deliveries in flight")
		Expect(inFlight.Load()).To(BeNumerically(">", 0), "no delivery in flight to cancel")
		stopped := time.Now()
		stop()
		// Long before the sink's timeout: the deliveries in flight were cancelled.
		Expect(time.Since(stopped)).To(BeNumerically("<", 15*time.Second))
		Eventually(inFlight.Load).WithTimeout(10 * time.Second).Should(BeZero())
		hanging.Close()
		Eventually(func(g Gomega) {
			n, stacks := goroutines("controllers/engine.", "controllers/delivery.")
			g.Expect(n).To(BeNumerically("<=", engineBefore), "engine goroutines left behind:\n%s", stacks)
			g.Expect(runtime.NumGoroutine()).To(BeNumerically("<=", goroutinesBefore+2), func() string {
				_, all := goroutines()
				return "goroutines left behind:\n" + all
			})
		}).WithTimeout(20 * time.Second).Should(Succeed())
	})

	It("serves another namespace's sink promptly while a hundred slow sinks in one namespace hold their share of the deliveries in flight, in goroutines bounded by the pool", func() {
		const (
			sinks     = 100
			customers = 3
			answerIn  = 4 * time.Second
		)
		// The suite's engine runs with the defaults of main.go.
		maxInFlight := engine.DefaultMaxInFlight
		perNamespace := maxInFlight * 3 / 4
		goroutinesBefore := runtime.NumGoroutine()

		var requests, inFlight, maxSeen atomic.Int64
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			requests.Add(1)
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for {
				m := maxSeen.Load()
				if n <= m || maxSeen.CompareAndSwap(m, n) {
					break
				}
			}
			select {
			case <-time.After(answerIn): // slow but successful: never paused
			case <-r.Context().Done():
			}
		}))
		DeferCleanup(slow.Close)

		By("creating a hundred slow sinks in one namespace, each selecting its Customers")
		busy := ns
		for i := range customers {
			Expect(k8sClient.Create(ctx, newCustomer(busy, fmt.Sprintf("busy-%d", i),
				crmv1alpha1.CustomerSpec{DisplayName: fmt.Sprintf("Busy %d", i)}))).To(Succeed())
		}
		_, err := benchutil.Parallel(sinks, 8, func(i int) error {
			return k8sClient.Create(ctx, &crmv1alpha1.CustomerSink{
				ObjectMeta: metav1.ObjectMeta{Namespace: busy, Name: fmt.Sprintf("slow-%03d", i)},
				Spec: crmv1alpha1.CustomerSinkSpec{URL: slow.URL + "/hooks", Format: crmv1alpha1.FormatCloudEvents,
					Timeout: &metav1.Duration{Duration: 30 * time.Second}},
			})
		})
		Expect(err).NotTo(HaveOccurred())
		Eventually(inFlight.Load).WithTimeout(30*time.Second).Should(BeNumerically(">=", perNamespace/2),
			"the slow sinks' deliveries did not start")

		By("creating a sink and a Customer in another namespace while they are in flight")
		peak := runtime.NumGoroutine()
		sample := func() { peak = max(peak, runtime.NumGoroutine()) }
		other := newNamespace()
		secret := newWebhookSecret()
		rc := newReceiver(secret)
		createSignedSink(other, "prompt", rc, secret, nil)
		sample()
		start := time.Now()
		Expect(k8sClient.Create(ctx, newCustomer(other, "served", crmv1alpha1.CustomerSpec{DisplayName: "Served"}))).To(Succeed())
		Eventually(func() int {
			sample()
			return len(rc.acked())
		}).WithTimeout(3*time.Second).WithPolling(50*time.Millisecond).Should(Equal(1),
			"the other namespace's sink got nothing while the slow sinks hold the pool")
		served := time.Since(start)
		expectSynced(other, "served", "prompt")
		busyInFlight := inFlight.Load()

		By("counting goroutines while the slow deliveries go on")
		for range 10 {
			sample()
			time.Sleep(200 * time.Millisecond)
		}
		GinkgoWriter.Printf("goroutines: %d before, peak %d (%+d) with %d slow sinks; slow sink: %d requests, %d in flight when the other namespace was served (in %s), at most %d\n",
			goroutinesBefore, peak, peak-goroutinesBefore, sinks, requests.Load(), busyInFlight, served.Round(time.Millisecond), maxSeen.Load())
		Expect(busyInFlight).To(BeNumerically(">", 0), "the slow deliveries had finished already: nothing was shown")
		Expect(maxSeen.Load()).To(BeNumerically("<=", perNamespace), "one namespace held more than its share of deliveries in flight")
		// A delivery in flight costs its worker, the connection's two client
		// goroutines and the receiving server's one; idle connections kept for
		// reuse cost as much. None of it grows with the number of sinks.
		Expect(peak-goroutinesBefore).To(BeNumerically("<", 4*maxInFlight+100), "goroutines grow with the number of sinks")
	})

	It("pauses the whole sink for a 429's Retry-After while Customers arrive, then sends one probe, then the rest", func() {
		secret := newWebhookSecret()
		rc := newReceiver(secret)
		const probeDelay = 500 * time.Millisecond
		rc.setResponder(func(w http.ResponseWriter, _ *http.Request, _ *received, n int) int {
			switch n {
			case 0:
				w.Header().Set("Retry-After", "60")
				return http.StatusTooManyRequests
			case 1:
				time.Sleep(probeDelay) // the probe: nothing else may go out meanwhile
			}
			return http.StatusOK
		})
		createSignedSink(ns, "throttling", rc, secret, nil)
		first := newCustomer(ns, "first", crmv1alpha1.CustomerSpec{DisplayName: "First"})
		Expect(k8sClient.Create(ctx, first)).To(Succeed())
		Eventually(func() int { return len(rc.all()) }).Should(Equal(1))
		throttledAt := rc.all()[0].At

		By("showing the pause on the sink, with its end, and an Event")
		Eventually(func(g Gomega) {
			s := getSink(g, ns, "throttling")
			ready := expectCondition(g, s.Status.Conditions, s.Generation, crmv1alpha1.ConditionReady, metav1.ConditionFalse, "Throttled")
			until := throttledAt.Add(60 * time.Second).UTC()
			g.Expect(ready.Message).To(Or(ContainSubstring(until.Format(time.RFC3339)), ContainSubstring(until.Add(time.Second).Format(time.RFC3339))))
			g.Expect(ready.Message).To(ContainSubstring("429"))
			g.Expect(kstatusOf(g, "CustomerSink", ns, "throttling")).To(Equal(kstatus.InProgressStatus))
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			evs := &eventsv1.EventList{}
			g.Expect(k8sClient.List(ctx, evs, client.InNamespace(ns))).To(Succeed())
			var notes []string
			for _, ev := range evs.Items {
				if ev.Reason == "Throttled" && ev.Regarding.Kind == "CustomerSink" && ev.Regarding.Name == "throttling" {
					notes = append(notes, ev.Note)
				}
			}
			g.Expect(notes).To(HaveLen(1))
			g.Expect(notes[0]).To(ContainSubstring("429"))
		}).Should(Succeed())

		By("creating Customers during the pause")
		names := []string{first.Name}
		for i := 0; time.Since(throttledAt) < 50*time.Second; i++ {
			name := fmt.Sprintf("during-%02d", i)
			Expect(k8sClient.Create(ctx, newCustomer(ns, name, crmv1alpha1.CustomerSpec{DisplayName: name}))).To(Succeed())
			names = append(names, name)
			time.Sleep(5 * time.Second)
		}
		Expect(rc.all()).To(HaveLen(1), "a request reached the sink during its Retry-After")
		Eventually(func(g Gomega) {
			c := getCustomer(g, ns, names[len(names)-1])
			synced := expectCondition(g, c.Status.Conditions, c.Generation, crmv1alpha1.ConditionSynced, metav1.ConditionFalse, crmv1alpha1.ReasonDelivering)
			g.Expect(synced.Message).To(ContainSubstring("Throttled"))
		}).Should(Succeed())

		By("resuming after the pause")
		for _, name := range names {
			expectSynced(ns, name, "throttling")
		}
		expectSinkReady(ns, "throttling", metav1.ConditionTrue, crmv1alpha1.ReasonValid)
		reqs := rc.all()
		Expect(len(reqs)).To(BeNumerically(">=", len(names)+1))
		Expect(reqs[1].At.Sub(reqs[0].At)).To(BeNumerically(">=", 60*time.Second), "the probe came before Retry-After allowed")
		Expect(reqs[1].acked()).To(BeTrue())
		Expect(reqs[2].At.Sub(reqs[1].At)).To(BeNumerically(">=", probeDelay), "a request went out beside the probe")
	})

	It("redelivers every selected Customer on the redeliver annotation, with the same webhook-id, and records the token", func() {
		secret := newWebhookSecret()
		rc := newReceiver(secret)
		createSignedSink(ns, "warehouse", rc, secret, func(s *crmv1alpha1.CustomerSinkSpec) {
			s.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"warehouse": "yes"}}
		})
		var selected []*crmv1alpha1.Customer
		for i := range 5 {
			c := newCustomer(ns, fmt.Sprintf("stocked-%d", i), crmv1alpha1.CustomerSpec{DisplayName: fmt.Sprintf("Stocked %d", i)})
			c.Labels = map[string]string{"warehouse": "yes"}
			Expect(k8sClient.Create(ctx, c)).To(Succeed())
			selected = append(selected, c)
		}
		other := newCustomer(ns, "elsewhere", crmv1alpha1.CustomerSpec{DisplayName: "Elsewhere"})
		Expect(k8sClient.Create(ctx, other)).To(Succeed())
		ids := map[string]bool{}
		for _, c := range selected {
			ids[eventID(expectSynced(ns, c.Name, "warehouse"))] = true
		}
		expectSynced(ns, other.Name)
		countByID := func() map[string]int {
			n := map[string]int{}
			for _, r := range rc.all() {
				if r.acked() {
					n[r.ID]++
				}
			}
			return n
		}
		before := countByID()
		Expect(before).To(HaveLen(len(selected)))

		By("annotating the sink as kubectl annotate --overwrite does")
		updateSink(ns, "warehouse", func(s *crmv1alpha1.CustomerSink) {
			s.Annotations = map[string]string{crmv1alpha1.AnnotationRedeliver: "receiver-restored-1"}
		})
		Eventually(func(g Gomega) {
			g.Expect(getSink(g, ns, "warehouse").Status.LastHandledRedeliver).To(Equal("receiver-restored-1"))
		}).Should(Succeed())
		after := countByID()
		Expect(after).To(HaveLen(len(selected)), "only the selected Customers, under the ids they had")
		for id := range ids {
			Expect(after[id]).To(Equal(before[id]+1), "webhook-id %s", id)
		}
		for _, c := range selected {
			expectSynced(ns, c.Name, "warehouse")
		}

		By("leaving the sink alone while the token stays the same")
		Consistently(func() int { return len(rc.all()) }).WithTimeout(2 * time.Second).Should(Equal(len(rc.all())))
		Expect(countByID()).To(Equal(after))
	})
})
