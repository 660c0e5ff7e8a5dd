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
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/internal/cachetransform"
	"github.com/customer-operator/customer-operator/internal/secretcache"
	"github.com/customer-operator/customer-operator/test/benchutil"
)

// BenchmarkPropagation measures how fast a new CustomerSink receives 2,000
// existing Customers: from the sink's creation until every Customer reports
// Synced at its current generation. Beside it, in the same run and against the
// same envtest API server, the baseline: raw status writes at the same
// concurrency (the controller's workers), the least work any propagation must
// do. The baseline writes the very status the controller writes (conditions,
// messages, last event, sink entry), as the controller's field manager, to 2,000
// other Customers with the same history (created, then given their NoSinks
// status by the controller), so both sides make the same change to objects of
// the same size, and the ratio is the operator's own overhead: its reconciles,
// its deliveries and its watch. It reports both rates and their ratio.
//
//	KUBEBUILDER_ASSETS=$PWD/bin/k8s go test ./controllers -run '^$' -bench Propagation -benchtime 1x
func BenchmarkPropagation(b *testing.B) {
	const (
		customers = 2000
		workers   = 8
		// fieldOwner is the manager's field manager, and the baseline's.
		fieldOwner = "customer-operator"
	)
	env := &envtest.Environment{CRDDirectoryPaths: []string{filepath.Join("..", "config", "crd", "bases")}, ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	cfg.QPS, cfg.Burst = 5000, 5000

	sch := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(sch))
	utilruntime.Must(crmv1alpha1.AddToScheme(sch))
	raw, err := client.New(cfg, client.Options{Scheme: sch})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	parallel := func(n int, job func(i int) error) time.Duration {
		d, err := benchutil.Parallel(n, workers, job)
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	// startManager runs the controllers as main.go wires them, their writes
	// counted, until the returned stop is called.
	var writes requestCounter
	startManager := func() (client.Reader, func()) {
		mgrCtx, stop := context.WithCancel(ctx)
		mgrCfg := rest.CopyConfig(cfg)
		mgrCfg.WrapTransport = writes.wrap
		mgrCfg.UserAgent = fieldOwner
		mgr, err := ctrl.NewManager(mgrCfg, ctrl.Options{Scheme: sch, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
			Cache:      cache.Options{DefaultTransform: cachetransform.New().TransformFunc()}, // as main.go
			Controller: config.Controller{SkipNameValidation: &skipNameValidation}})
		if err != nil {
			b.Fatal(err)
		}
		secrets := secretcache.New(mgr.GetClient(), mgr.GetAPIReader())
		if err := Setup(mgr, secrets, Options{Client: newDeliveryClient(), PerSinkConcurrency: 16, MaxConcurrentReconciles: workers}); err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		go func() { defer close(done); _ = mgr.Start(mgrCtx) }()
		// Progress is read from the manager's cache: polling the API server for
		// 2,000 objects would load the very server being measured.
		return mgr.GetClient(), func() { stop(); <-done }
	}
	noSinks := func(c *crmv1alpha1.Customer) bool {
		s := meta.FindStatusCondition(c.Status.Conditions, crmv1alpha1.ConditionSynced)
		return s != nil && s.Reason == crmv1alpha1.ReasonNoSinks
	}

	for iter := range b.N {
		ns, baseNS := fmt.Sprintf("bench-%d", iter), fmt.Sprintf("bench-%d-baseline", iter)
		for _, name := range []string{ns, baseNS} {
			if err := raw.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
				b.Fatal(err)
			}
			parallel(customers, func(i int) error {
				return raw.Create(ctx, &crmv1alpha1.Customer{
					ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: fmt.Sprintf("c-%04d", i), Labels: map[string]string{"bench": "yes"},
						Finalizers: []string{crmv1alpha1.CustomerFinalizer}},
					Spec: crmv1alpha1.CustomerSpec{DisplayName: fmt.Sprintf("Customer %d", i), Email: fmt.Sprintf("c%d@example.com", i),
						Lifecycle: crmv1alpha1.LifecycleActive, Contacts: []crmv1alpha1.Contact{{FirstName: "Ada", LastName: "Lovelace"}}},
				})
			})
		}
		// The controller gives both sets their NoSinks status, then stops: the
		// baseline runs without it.
		cached, stop := startManager()
		waitUntil(b, 5*time.Minute, func() bool {
			return countCustomers(ctx, cached, ns, noSinks) == customers && countCustomers(ctx, cached, baseNS, noSinks) == customers
		})
		stop()

		// Baseline: the controller's Synced status write, raw, to the other set.
		list := &crmv1alpha1.CustomerList{}
		if err := raw.List(ctx, list, client.InNamespace(baseNS)); err != nil {
			b.Fatal(err)
		}
		rawTime := parallel(customers, func(i int) error {
			c := list.Items[i].DeepCopy()
			patch := client.MergeFromWithOptions(c.DeepCopy(), client.MergeFromWithOptimisticLock{})
			now := metav1.NewTime(time.Now().Truncate(time.Second))
			c.Status.ObservedGeneration = c.Generation
			c.Status.Sinks = []crmv1alpha1.SinkSyncStatus{{Name: "sink", SyncedGeneration: c.Generation, SinkGeneration: 1, LastSyncTime: &now}}
			setCondition(&c.Status.Conditions, c.Generation, crmv1alpha1.ConditionSynced, metav1.ConditionTrue, crmv1alpha1.ReasonSynced,
				fmt.Sprintf("generation %d delivered to 1 sink(s)", c.Generation))
			return raw.Status().Patch(ctx, c, patch, client.FieldOwner(fieldOwner))
		})

		// The operator, with a sink that acknowledges every delivery.
		var delivered atomic.Int64
		sinkServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			delivered.Add(1)
			w.WriteHeader(http.StatusNoContent)
		}))
		cached, stop = startManager()
		// Started on a settled cluster, it looks at every Customer once and has
		// nothing to write; let that pass before the sink comes.
		time.Sleep(3 * time.Second)

		secret := "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		if err := raw.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sink"}, StringData: map[string]string{"secret": secret}}); err != nil {
			b.Fatal(err)
		}
		reconcilesBefore := reconcileCount()
		writes.reset()
		start := time.Now()
		if err := raw.Create(ctx, &crmv1alpha1.CustomerSink{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sink"},
			Spec: crmv1alpha1.CustomerSinkSpec{URL: sinkServer.URL, Format: crmv1alpha1.FormatStandardWebhooks,
				SecretRef: &crmv1alpha1.SecretReference{Name: "sink"}},
		}); err != nil {
			b.Fatal(err)
		}
		waitUntil(b, 10*time.Minute, func() bool {
			return countCustomers(ctx, cached, ns, func(c *crmv1alpha1.Customer) bool {
				s := meta.FindStatusCondition(c.Status.Conditions, crmv1alpha1.ConditionSynced)
				return s != nil && s.Status == metav1.ConditionTrue && s.Reason == crmv1alpha1.ReasonSynced &&
					len(c.Status.Sinks) == 1 && c.Status.Sinks[0].SyncedGeneration == c.Generation
			}) == customers
		})
		propTime := time.Since(start)
		reconciles := reconcileCount() - reconcilesBefore
		customerWrites, otherWrites := writes.totals()
		stop()
		sinkServer.Close()

		rawRate := customers / rawTime.Seconds()
		propRate := customers / propTime.Seconds()
		b.ReportMetric(propTime.Seconds(), "s-until-synced")
		b.ReportMetric(propRate, "customers-synced/s")
		b.ReportMetric(float64(delivered.Load())/propTime.Seconds(), "deliveries/s")
		b.ReportMetric(rawRate, "raw-status-writes/s")
		b.ReportMetric(propRate/rawRate, "ratio")
		b.ReportMetric(reconciles/customers, "reconciles/customer")
		b.ReportMetric(float64(customerWrites)/customers, "customer-writes/customer")
		b.Logf("%d Customers, %d workers: all Synced in %.1fs (%.0f/s, %d deliveries, %.1f reconciles each, %d Customer writes, %d other writes); raw status writes %.1fs (%.0f/s); ratio %.2f",
			customers, workers, propTime.Seconds(), propRate, delivered.Load(), reconciles/customers, customerWrites, otherWrites,
			rawTime.Seconds(), rawRate, propRate/rawRate)
	}
}

// Each iteration starts a manager with the same controller names.
var skipNameValidation = true

// reconcileCount reads controller-runtime's own counter of Customer reconciles.
func reconcileCount() float64 {
	families, err := metrics.Registry.Gather()
	if err != nil {
		return 0
	}
	total := 0.0
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == "customer" {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}

func countCustomers(ctx context.Context, c client.Reader, ns string, ok func(*crmv1alpha1.Customer) bool) int {
	list := &crmv1alpha1.CustomerList{}
	// Read-only: the cache's objects need no copies.
	if err := c.List(ctx, list, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
		return -1
	}
	n := 0
	for i := range list.Items {
		if ok(&list.Items[i]) {
			n++
		}
	}
	return n
}

func waitUntil(b *testing.B, limit time.Duration, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("condition not reached within %s", limit)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
