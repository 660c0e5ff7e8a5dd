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
	"bytes"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/delivery"
	"github.com/customer-operator/customer-operator/internal/cachetransform"
	"github.com/customer-operator/customer-operator/test/envtestutil"
	"github.com/customer-operator/customer-operator/test/testcert"
	"github.com/customer-operator/customer-operator/webhookserver"
)

// caBundle is a PEM bundle of about size bytes: one self-signed CA, repeated.
func caBundle(size int) []byte {
	GinkgoHelper()
	one, err := testcert.SelfSignedCA("churn CA")
	Expect(err).NotTo(HaveOccurred())
	return bytes.Repeat(one, max(size/len(one), 1))
}

// churnSecretBytes is the size of each source's Secret: just under 1 MiB, so
// that the Secret with its JSON encoding stays under etcd's request limit.
const churnSecretBytes = 1<<20 - 16<<10

// churnServer runs a webhook server in the process, on a manager of its own
// but with the suite's Secret cache, as --mode=all shares one, and returns its
// base URL.
func churnServer(sweep time.Duration) string {
	GinkgoHelper()
	mgr, err := ctrl.NewManager(rest.CopyConfig(cfg), ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultTransform: cachetransform.New().TransformFunc()},
	})
	Expect(err).NotTo(HaveOccurred())
	create, err := webhookserver.NewMetadataCreate(mgr.GetConfig(), mgr.GetHTTPClient())
	Expect(err).NotTo(HaveOccurred())
	srv := webhookserver.New(webhookserver.Options{
		BindAddress:           "127.0.0.1:0",
		AuthFailuresPerMinute: -1,
		SweepInterval:         sweep,
		CreateCustomer:        create,
	}, mgr.GetClient(), mgr.GetAPIReader(), suiteSecrets, nil)
	addr, err := srv.Listen()
	Expect(err).NotTo(HaveOccurred())
	Expect(mgr.Add(srv)).To(Succeed())
	envtestutil.RunManager(ctx, mgr)
	return "http://" + addr.String()
}

// churn creates n GETTRX CustomerSources in srcNS, each with a Secret of
// churnSecretBytes, and n CustomerSinks in sinkNS, each with a Secret of its
// own holding ca (which the sink's resolved target keeps a copy of); sends
// each source a signed event and waits until each sink has been delivered to.
func churn(sources envtestutil.SourceChurn, rc *pathReceiver, srcNS, sinkNS string, padding, ca []byte) {
	GinkgoHelper()
	sources.Create(ctx, srcNS, padding, func(i int) {
		sink := fmt.Sprintf("sink-%d", i)
		whsec := newWebhookSecret()
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: sinkNS, Name: sink},
			StringData: map[string]string{delivery.KeySecret: whsec, delivery.KeyCA: string(ca)}})).To(Succeed())
		Expect(k8sClient.Create(ctx, &crmv1alpha1.CustomerSink{
			ObjectMeta: metav1.ObjectMeta{Namespace: sinkNS, Name: sink},
			Spec: crmv1alpha1.CustomerSinkSpec{URL: rc.url(sink), Format: crmv1alpha1.FormatStandardWebhooks,
				SecretRef: &crmv1alpha1.SecretReference{Name: sink}},
		})).To(Succeed())
	})
	Eventually(rc.paths).WithTimeout(60*time.Second).Should(BeNumerically(">=", sources.N), "not every sink was delivered to")
}

// unchurn deletes what churn created, and the Secrets of every other source:
// the rest stay, referenced by nothing.
func unchurn(sources envtestutil.SourceChurn, srcNS, sinkNS string) {
	GinkgoHelper()
	sources.Delete(ctx, srcNS, func(i int) {
		sink := fmt.Sprintf("sink-%d", i)
		Expect(k8sClient.Delete(ctx, &crmv1alpha1.CustomerSink{ObjectMeta: metav1.ObjectMeta{Namespace: sinkNS, Name: sink}})).To(Succeed())
		Expect(k8sClient.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: sinkNS, Name: sink}})).To(Succeed())
	})
}

// pathReceiver acknowledges every delivery and counts the paths delivered to:
// one per sink.
type pathReceiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen map[string]bool
}

func newPathReceiver() *pathReceiver {
	rc := &pathReceiver{seen: map[string]bool{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.mu.Lock()
		rc.seen[r.URL.Path] = true
		rc.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	DeferCleanup(rc.srv.Close)
	return rc
}

func (rc *pathReceiver) url(sink string) string { return rc.srv.URL + "/" + sink }

func (rc *pathReceiver) paths() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.seen)
}

func (rc *pathReceiver) reset() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	clear(rc.seen)
}

var _ = Describe("what is kept for deleted objects", Serial, func() {
	It("goes with them: after 200 CustomerSources with 1 MiB Secrets and 200 CustomerSinks come and go, the heap is back within 10% and no metric series names them", func() {
		const n = 200
		padding := make([]byte, churnSecretBytes)
		_, _ = rand.Read(padding)
		rc := newPathReceiver()
		// Every source's event names the same Customer: a source namespace
		// keeps one Customer, not one a source for the heap to hold.
		event := `{"id":"evt_churn","type":"customer.updated","created":"%d","data":{"object":{"id":"cus_churn","object":"customer","name":%q,"email":"churn@example.com"}}}`
		sources := envtestutil.SourceChurn{Client: k8sClient, Hooks: churnServer(testSweepInterval), N: n,
			Event: func(_, customer string) []byte { return fmt.Appendf(nil, event, time.Now().Unix(), customer) }}

		ca := caBundle(64 << 10)
		round := func(padding []byte) (srcNS, sinkNS string) {
			srcNS, sinkNS = newNamespace(), newNamespace()
			rc.reset()
			// One Customer for the sinks to deliver.
			Expect(k8sClient.Create(ctx, newCustomer(sinkNS, "churn", crmv1alpha1.CustomerSpec{DisplayName: "Churn"}))).To(Succeed())
			churn(sources, rc, srcNS, sinkNS, padding, ca)
			return srcNS, sinkNS
		}

		// A first round, with small Secrets, warms up the caches, informers and
		// connections, and grows the maps that never shrink (the metric vectors',
		// the informers' indexes) to the churn's size.
		warmSrc, warmSink := round(padding[:1<<10])
		unchurn(sources, warmSrc, warmSink)
		// The baseline is taken once the sweeps had their chance; what they leave
		// of the warm-up is the measured round's to show.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(testSweepInterval) {
			if left, _ := envtestutil.SeriesNaming(warmSrc, warmSink); left == 0 {
				break
			}
		}
		time.Sleep(4 * testSweepInterval)
		inUseBefore, allocBefore := envtestutil.Heap()

		srcNS, sinkNS := round(padding)
		series, examples := envtestutil.SeriesNaming(srcNS, sinkNS)
		Expect(series).To(BeNumerically(">=", 2*n), "the churned objects have series, e.g. %v", examples)
		inUsePeak, allocPeak := envtestutil.Heap()
		unchurn(sources, srcNS, sinkNS)

		start := time.Now()
		var inUse, alloc uint64
		Eventually(func(g Gomega) {
			inUse, alloc = envtestutil.Heap()
			left, examples := envtestutil.SeriesNaming(srcNS, sinkNS)
			state := fmt.Sprintf("%d series left (e.g. %v); heap allocated %.1f MiB, %.1f MiB before and %.1f MiB with the objects (in use %.1f, %.1f, %.1f MiB)",
				left, examples, envtestutil.MiB(alloc), envtestutil.MiB(allocBefore), envtestutil.MiB(allocPeak), envtestutil.MiB(inUse), envtestutil.MiB(inUseBefore), envtestutil.MiB(inUsePeak))
			g.Expect(left).To(BeZero(), state)
			g.Expect(float64(alloc)).To(BeNumerically("<=", 1.1*float64(allocBefore)), state)
		}).WithTimeout(30 * time.Second).WithPolling(time.Second).Should(Succeed())
		AddReportEntry("heap", fmt.Sprintf("allocated %.1f MiB before, %.1f MiB with %d sources and sinks, %.1f MiB after their delete (%s later); in use %.1f, %.1f, %.1f MiB",
			envtestutil.MiB(allocBefore), envtestutil.MiB(allocPeak), n, envtestutil.MiB(alloc), time.Since(start).Round(time.Second), envtestutil.MiB(inUseBefore), envtestutil.MiB(inUsePeak), envtestutil.MiB(inUse)))
	})
})
