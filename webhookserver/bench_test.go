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
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/internal/cachetransform"
	"github.com/customer-operator/customer-operator/internal/secretcache"
	"github.com/customer-operator/customer-operator/test/benchutil"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
	"github.com/customer-operator/customer-operator/webhookserver/providers/gettrx"
	"github.com/customer-operator/customer-operator/webhookserver/providers/registry"
)

// BenchmarkIngestThroughput measures end-to-end ingest (signed GETTRX webhooks
// posted by 16 concurrent senders, verified, decoded and written as Customers)
// beside raw client-go Creates of the same Customers at the same concurrency,
// against the same envtest API server, in the same run. Each iteration runs
// benchRounds rounds of each, alternating, and reports the medians and their ratio.
//
//	KUBEBUILDER_ASSETS=$PWD/bin/k8s go test ./webhookserver -run '^$' -bench IngestThroughput -benchtime 1x
func BenchmarkIngestThroughput(b *testing.B) {
	const (
		senders     = 16
		perRound    = 400
		benchRounds = 5
	)
	env := &envtest.Environment{CRDDirectoryPaths: []string{filepath.Join("..", "config", "crd", "bases")}, ErrorIfCRDPathMissing: true}
	restCfg, err := env.Start()
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	// Neither side may be throttled by client-go's default 5 QPS.
	restCfg.QPS, restCfg.Burst = 5000, 5000

	sch := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(sch))
	utilruntime.Must(crmv1alpha1.AddToScheme(sch))
	raw, err := client.New(restCfg, client.Options{Scheme: sch})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{Scheme: sch, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Cache: cache.Options{DefaultTransform: cachetransform.New().TransformFunc()}}) // as main.go
	if err != nil {
		b.Fatal(err)
	}
	create, err := NewMetadataCreate(mgr.GetConfig(), mgr.GetHTTPClient()) // as main.go
	if err != nil {
		b.Fatal(err)
	}
	srv := New(Options{BindAddress: "127.0.0.1:0", CreateCustomer: create}, mgr.GetClient(), mgr.GetAPIReader(), secretcache.New(mgr.GetClient(), mgr.GetAPIReader()), mgr.GetEventRecorder("webhook-server"))
	addr, err := srv.Listen()
	if err != nil {
		b.Fatal(err)
	}
	if err := mgr.Add(srv); err != nil {
		b.Fatal(err)
	}
	go func() { _ = mgr.Start(ctx) }()

	ns := "bench"
	secret := map[string][]byte{"secret": []byte("bench-signing-key-0123456789")}
	must(b, raw.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	must(b, raw.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gettrx"}, Data: secret}))
	must(b, raw.Create(ctx, &crmv1alpha1.CustomerSource{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gettrx"},
		Spec:       crmv1alpha1.CustomerSourceSpec{Provider: crmv1alpha1.ProviderGETTRX, SecretRef: crmv1alpha1.SecretReference{Name: "gettrx"}},
	}))
	url := fmt.Sprintf("http://%s/hooks/%s/gettrx", addr, ns)
	httpClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
	sim := gettrx.New()
	provider := registry.Lookup(crmv1alpha1.ProviderGETTRX)

	post := func(plaintext []byte) error {
		body, header, err := sim.Prepare(plaintext, secret, time.Now())
		if err != nil {
			return err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		req.Header = header
		resp, err := httpClient.Do(req)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	// Wait for the server's cache to know the source.
	for i := 0; ; i++ {
		if err := post(gettrxEvent("evt_warm", "customer.created", 1, "cus_warm", "warm")); err == nil {
			break
		} else if i > 200 {
			b.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	src := &crmv1alpha1.CustomerSource{}
	must(b, raw.Get(ctx, client.ObjectKey{Namespace: ns, Name: "gettrx"}, src))

	// run spreads n jobs over the senders and returns jobs per second.
	run := func(n int, job func(i int) error) float64 {
		d, err := benchutil.Parallel(n, senders, job)
		if err != nil {
			b.Fatal(err)
		}
		return float64(n) / d.Seconds()
	}

	round := 0
	var rawRates, hookRates []float64
	b.ResetTimer()
	for range b.N {
		for range benchRounds {
			round++
			events := make([][]byte, perRound)
			objects := make([]*crmv1alpha1.Customer, perRound)
			for i := range perRound {
				events[i] = gettrxEvent(fmt.Sprintf("evt_h%d_%d", round, i), "customer.created", int64(1000+i), fmt.Sprintf("cus_h%d_%d", round, i), fmt.Sprintf("hook%d", i))
				// The raw side writes exactly the Customer the webhook would.
				plain := gettrxEvent(fmt.Sprintf("evt_r%d_%d", round, i), "customer.created", int64(1000+i), fmt.Sprintf("cus_r%d_%d", round, i), fmt.Sprintf("raw%d", i))
				body, header, _ := sim.Prepare(plain, secret, time.Now())
				res, err := provider.Parse(&providers.Request{Header: header, Body: body, Secret: secret, Now: time.Now(), Tolerance: time.Minute})
				if err != nil {
					b.Fatal(err)
				}
				ev := res.Events[0]
				obj := &crmv1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: CustomerName(ev.Customer.Provider, ev.Customer.ExternalID)}}
				(&Ingester{}).mutate(obj, nil, src, &ev, time.Now())
				objects[i] = obj
			}
			rawRates = append(rawRates, run(perRound, func(i int) error { return raw.Create(ctx, objects[i].DeepCopy()) }))
			hookRates = append(hookRates, run(perRound, func(i int) error { return post(events[i]) }))
		}
	}
	b.StopTimer()
	rawMed, hookMed := benchutil.Median(rawRates), benchutil.Median(hookRates)
	b.ReportMetric(rawMed, "raw-creates/s")
	b.ReportMetric(hookMed, "webhook-events/s")
	b.ReportMetric(hookMed/rawMed, "ratio")
	b.Logf("%d senders, %d rounds of %d: raw client-go creates median %.0f/s %v; webhook ingest median %.0f/s %v; ratio %.2f",
		senders, len(rawRates), perRound, rawMed, benchutil.Rounded(rawRates), hookMed, benchutil.Rounded(hookRates), hookMed/rawMed)
}

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}
