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
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/internal/cachetransform"
	"github.com/customer-operator/customer-operator/internal/secretcache"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
	"github.com/customer-operator/customer-operator/webhookserver/providers/registry"
)

var (
	testEnv   *envtest.Environment
	cfg       *rest.Config
	k8sClient client.Client
	scheme    = runtime.NewScheme()
	baseURL   string
	server    *Server
	ctx       context.Context
	cancel    context.CancelFunc
)

func TestWebhookServer(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Webhook server Suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	ctx, cancel = context.WithCancel(context.Background())
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(crmv1alpha1.AddToScheme(scheme))

	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	var err error
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	// The ingest benchmark and the concurrency tests write fast; client-go's
	// default of 5 QPS would measure the client, not the server.
	cfg.QPS, cfg.Burst = 500, 1000

	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	// Every test posts from 127.0.0.1, and createSource's probe fails to
	// authenticate or finds no source yet: the shared server allows many
	// failures per address. The failure budgets have servers of their own in
	// their tests.
	server, baseURL = startTestServer(cfg, Options{BindAddress: "127.0.0.1:0", AuthFailuresPerMinute: 100000, AddressFailuresPerMinute: 100000})
})

var _ = AfterSuite(func() {
	cancel()
	Expect(testEnv.Stop()).To(Succeed())
})

// startServer runs a manager with only the webhook server, as --mode=webhook does,
// and returns the server's base URL.
func startServer(cfg *rest.Config, opts Options) string {
	_, url := startTestServer(cfg, opts)
	return url
}

// startTestServer is startServer that also returns the Server, for the tests
// that look at its state.
func startTestServer(cfg *rest.Config, opts Options) (*Server, string) {
	// As main.go's cache: in --mode=all the controllers' transform shapes the
	// Customers the webhook server reads and updates.
	mgr := newServerManager(cfg, cache.Options{DefaultTransform: cachetransform.New().TransformFunc()})
	s, url := serveOn(mgr, opts, secretcache.New(mgr.GetClient(), mgr.GetAPIReader()), mgr.GetEventRecorder("webhook-server"))
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	return s, url
}

// newServerManager is a manager for a webhook server alone, as --mode=webhook
// runs it, with the cache c.
func newServerManager(cfg *rest.Config, c cache.Options) ctrl.Manager {
	GinkgoHelper()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  c,
	})
	Expect(err).NotTo(HaveOccurred())
	return mgr
}

// serveOn adds a webhook server with opts, secrets and recorder to mgr,
// listening already, and returns it with its base URL. Customers are created
// as main.go creates them, unless opts says how.
func serveOn(mgr ctrl.Manager, opts Options, secrets *secretcache.Store, recorder events.EventRecorder) (*Server, string) {
	GinkgoHelper()
	if opts.CreateCustomer == nil {
		var err error
		opts.CreateCustomer, err = NewMetadataCreate(mgr.GetConfig(), mgr.GetHTTPClient())
		Expect(err).NotTo(HaveOccurred())
	}
	s := New(opts, mgr.GetClient(), mgr.GetAPIReader(), secrets, recorder)
	addr, err := s.Listen()
	Expect(err).NotTo(HaveOccurred())
	Expect(mgr.Add(s)).To(Succeed())
	return s, "http://" + addr.String()
}

// waitServed waits until the server at srvURL knows the source: its cache
// has synced it, so the answer is no longer 404.
func waitServed(srvURL, ns, name string) {
	EventuallyWithOffset(1, func() int {
		code, _ := do(http.MethodPost, srvURL+"/hooks/"+ns+"/"+name, []byte("{"), http.Header{})
		return code
	}, 20*time.Second, 50*time.Millisecond).ShouldNot(Equal(http.StatusNotFound))
}

// newNamespace makes a namespace for one test: sources and Customers of tests
// never meet.
func newNamespace() string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "hooks-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// createSource creates a CustomerSource and its Secret, and waits until the
// server answers for it (its cache has seen it).
func createSource(ns, name string, provider crmv1alpha1.Provider, secret map[string][]byte, mutate ...func(*crmv1alpha1.CustomerSource)) *crmv1alpha1.CustomerSource {
	Expect(k8sClient.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-credentials"},
		Data:       secret,
	})).To(Succeed())
	src := &crmv1alpha1.CustomerSource{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: crmv1alpha1.CustomerSourceSpec{
			Provider:  provider,
			SecretRef: crmv1alpha1.SecretReference{Name: name + "-credentials"},
		},
	}
	for _, m := range mutate {
		m(src)
	}
	Expect(k8sClient.Create(ctx, src)).To(Succeed())
	// Wait until the server's caches hold the source and, for a source that can
	// serve, its Secret too: until then it answers 404, then 503.
	p, err := registry.ForSource(src)
	ready := !src.Spec.Suspend && err == nil && p.ValidateSecret(secret) == nil
	Eventually(func() bool {
		code, _ := post(ns, name, []byte("{"), http.Header{})
		return code != http.StatusNotFound && (!ready || code != http.StatusServiceUnavailable)
	}, 20*time.Second, 50*time.Millisecond).Should(BeTrue(), "the server never served source %s/%s", ns, name)
	return src
}

func post(ns, name string, body []byte, header http.Header) (int, []byte) {
	return do(http.MethodPost, baseURL+"/hooks/"+ns+"/"+name, body, header)
}

func do(method, url string, body []byte, header http.Header) (int, []byte) {
	code, _, b := doWith(http.DefaultClient, method, url, body, header)
	return code, b
}

// doWith sends a request with c and returns the answer's status, headers and body.
func doWith(c *http.Client, method, url string, body []byte, header http.Header) (int, http.Header, []byte) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	ExpectWithOffset(2, err).NotTo(HaveOccurred())
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	ExpectWithOffset(2, err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	ExpectWithOffset(2, err).NotTo(HaveOccurred())
	return resp.StatusCode, resp.Header, b
}

// send signs (and for Phasio encrypts) a plaintext exactly as its provider does,
// with the provider package's simulator, and posts it.
func send(ns, name string, provider crmv1alpha1.Provider, secret map[string][]byte, plaintext []byte) (int, []byte) {
	sim, ok := registry.Lookup(provider).(providers.Simulator)
	Expect(ok).To(BeTrue(), "provider %s has no simulator", provider)
	body, header, err := sim.Prepare(plaintext, secret, time.Now())
	Expect(err).NotTo(HaveOccurred())
	return post(ns, name, body, header)
}

// fixture reads a sample event of config/samples/events, the one copy the
// tests, the samples and hack/sendevent share.
func fixture(path string) []byte {
	b, err := os.ReadFile(filepath.Join("..", "config", "samples", "events", path))
	Expect(err).NotTo(HaveOccurred())
	return b
}

func getCustomer(ns string, provider crmv1alpha1.Provider, externalID string) *crmv1alpha1.Customer {
	c := &crmv1alpha1.Customer{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: CustomerName(provider, externalID)}, c)).To(Succeed())
	return c
}

func mustJSON(format string, args ...any) []byte { return []byte(fmt.Sprintf(format, args...)) }
