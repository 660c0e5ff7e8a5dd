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
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/delivery"
	"github.com/customer-operator/customer-operator/controllers/engine"
	"github.com/customer-operator/customer-operator/internal/cachetransform"
	"github.com/customer-operator/customer-operator/internal/secretcache"
	"github.com/customer-operator/customer-operator/test/argocd"
	"github.com/customer-operator/customer-operator/webhookserver"
)

// Timing of the suite: deliveries back off from testBaseDelay to testMaxDelay, so
// retries take a fraction of a second, and a delete waits at most testDeleteGrace
// for a failing sink.
const (
	testBaseDelay   = 50 * time.Millisecond
	testMaxDelay    = 2 * time.Second
	testDeleteGrace = 20 * time.Second
	// testSweepInterval is how often what is kept for deleted objects is pruned.
	testSweepInterval = 250 * time.Millisecond

	eventuallyTimeout = 45 * time.Second
	pollInterval      = 100 * time.Millisecond
)

// testAddressPolicy is the suite's sink address policy: the default deny list,
// with loopback IPv4 allowed as `make dev` allows it, since the test receivers
// listen on 127.0.0.1. ::1 stays refused, for the test of the policy itself.
var testAddressPolicy = delivery.AddressPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}

var (
	cfg       *rest.Config
	k8sClient client.Client // uncached: reads what a user of the API server sees
	testEnv   *envtest.Environment
	ctx       context.Context
	cancel    context.CancelFunc
	mgrDone   chan struct{}
	dlvClient *delivery.Client
	scheme    = runtime.NewScheme()
	// suiteSecrets is the Secret cache of the suite's manager, which a webhook
	// server shares in the process as in --mode=all.
	suiteSecrets *secretcache.Store
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controllers Suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	SetDefaultEventuallyTimeout(eventuallyTimeout)
	SetDefaultEventuallyPollingInterval(pollInterval)
	SetDefaultConsistentlyPollingInterval(pollInterval)

	ctx, cancel = context.WithCancel(context.TODO())

	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(crmv1alpha1.AddToScheme(scheme))

	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	// `go test` without KUBEBUILDER_ASSETS uses the control plane that
	// `make controlplane` builds into bin/k8s.
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		if dir := filepath.Join("..", "bin", "k8s"); dirExists(dir) {
			testEnv.BinaryAssetsDirectory = dir
		}
	}

	var err error
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	Expect(cfg).NotTo(BeNil())

	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	// The manager is wired as main.go wires it in controllers mode, with quick
	// backoffs so that retries fit in a test.
	// Customers and sinks labelled for a test's own manager are left to it.
	notIsolated, err := labels.Parse("!" + isolatedLabel)
	Expect(err).NotTo(HaveOccurred())
	// The suite's manager writes through a counter, so that tests can say how
	// many requests it sent for one object.
	mgrCfg := rest.CopyConfig(cfg)
	mgrCfg.WrapTransport = managerWrites.wrap
	mgr, err := ctrl.NewManager(mgrCfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// As main.go builds it for --mode=controllers.
		Cache: cache.Options{DefaultTransform: cachetransform.New().DropAnnotations(webhookserver.OwnAnnotations...).DropMirroredLastEvent().TransformFunc(), ByObject: map[client.Object]cache.ByObject{
			&crmv1alpha1.Customer{}:     {Label: notIsolated},
			&crmv1alpha1.CustomerSink{}: {Label: notIsolated},
		}},
	})
	Expect(err).NotTo(HaveOccurred())
	dlvClient = newDeliveryClient()
	suiteSecrets, err = setupControllers(mgr, dlvClient)
	Expect(err).NotTo(HaveOccurred())

	mgrDone = make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(mgrDone)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	// Every spec starts with the suite's manager running, its delivery engine
	// included: a spec that counts the process's goroutines must not see it
	// start half-way.
	Eventually(func() int {
		n, _ := goroutines("controllers/engine.(*Engine).Start")
		return n
	}).Should(BeNumerically(">=", 1), "the suite's delivery engine did not start")
})

// managerWrites counts the suite manager's requests other than reads, by
// method and path.
var managerWrites = &requestCounter{}

// requestCounter counts the requests other than reads that a rest.Config sends,
// by method and path.
type requestCounter struct {
	mu    sync.Mutex
	count map[string]int
}

// writes is how many requests of method reached path so far.
func (c *requestCounter) writes(method, path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count[method+" "+path]
}

// totals splits the count so far into writes to Customers (and their status)
// and writes to anything else (sinks, Events).
func (c *requestCounter) totals() (customers, other int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, n := range c.count {
		if strings.Contains(k, "/customers/") {
			customers += n
		} else {
			other += n
		}
	}
	return customers, other
}

func (c *requestCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.count)
}

func (c *requestCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		if r.Method != http.MethodGet {
			c.mu.Lock()
			if c.count == nil {
				c.count = map[string]int{}
			}
			c.count[r.Method+" "+r.URL.Path]++
			c.mu.Unlock()
		}
		return rt.RoundTrip(r)
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// newDeliveryClient is the one place the suite builds its delivery client.
func newDeliveryClient() *delivery.Client {
	return &delivery.Client{Policy: testAddressPolicy, Log: ctrl.Log.WithName("delivery")}
}

// setupControllers wires the engine and the reconcilers into mgr with the
// manager's own Setup, with quick backoffs so that retries fit in a test.
func setupControllers(mgr ctrl.Manager, c *delivery.Client) (*secretcache.Store, error) {
	secrets := secretcache.New(mgr.GetClient(), mgr.GetAPIReader())
	if err := SetupSecretCache(ctx, mgr, secrets, testSweepInterval); err != nil {
		return nil, err
	}
	return secrets, Setup(mgr, secrets, Options{
		Client:                  c,
		PerSinkConcurrency:      16,
		MaxInFlight:             engine.DefaultMaxInFlight,
		BaseDelay:               testBaseDelay,
		MaxDelay:                testMaxDelay,
		DeleteGracePeriod:       testDeleteGrace,
		MaxConcurrentReconciles: 8,
		CountInterval:           200 * time.Millisecond,
	})
}

var _ = AfterSuite(func() {
	if cancel != nil {
		cancel()
	}
	if mgrDone != nil {
		Eventually(mgrDone).WithTimeout(30 * time.Second).Should(BeClosed())
	}
	if dlvClient != nil {
		dlvClient.CloseIdleConnections()
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// newNamespace creates a namespace with a generated name, so every test is a tenant
// of its own. CustomerSinks left in it are deleted after the test, so nothing keeps
// delivering to a receiver the test has closed.
func newNamespace() string {
	GinkgoHelper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "crm-test-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	DeferCleanup(func() {
		// DeleteAllOf is not served for every resource everywhere; delete one by one.
		sinks := &crmv1alpha1.CustomerSinkList{}
		if err := k8sClient.List(context.Background(), sinks, client.InNamespace(ns.Name)); err == nil {
			for i := range sinks.Items {
				_ = k8sClient.Delete(context.Background(), &sinks.Items[i])
			}
		}
	})
	return ns.Name
}

// newWebhookSecret returns a fresh Standard Webhooks secret: whsec_ and 32 random
// bytes in base64.
func newWebhookSecret() string {
	GinkgoHelper()
	b := make([]byte, 32)
	_, err := rand.Read(b)
	Expect(err).NotTo(HaveOccurred())
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

func createSecret(ns, name string, data map[string]string) *corev1.Secret {
	GinkgoHelper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data}
	Expect(k8sClient.Create(ctx, s)).To(Succeed())
	return s
}

func key(ns, name string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: name} }

// getCustomer reads a Customer from the API server.
func getCustomer(g Gomega, ns, name string) *crmv1alpha1.Customer {
	c := &crmv1alpha1.Customer{}
	g.Expect(k8sClient.Get(ctx, key(ns, name), c)).To(Succeed())
	return c
}

func getSink(g Gomega, ns, name string) *crmv1alpha1.CustomerSink {
	s := &crmv1alpha1.CustomerSink{}
	g.Expect(k8sClient.Get(ctx, key(ns, name), s)).To(Succeed())
	return s
}

// condition returns a condition of a status, or fails the assertion.
func condition(g Gomega, conds []metav1.Condition, typ string) metav1.Condition {
	c := meta.FindStatusCondition(conds, typ)
	g.Expect(c).NotTo(BeNil(), "condition %s is not set; conditions: %+v", typ, conds)
	return *c
}

// expectReadyOf waits until the object get reads has observed its generation
// and is Ready with status and reason, its message holding each of inMessage.
func expectReadyOf(get func(g Gomega) (generation, observed int64, conditions []metav1.Condition), status metav1.ConditionStatus, reason string, inMessage ...string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		generation, observed, conditions := get(g)
		g.Expect(observed).To(Equal(generation))
		ready := expectCondition(g, conditions, generation, crmv1alpha1.ConditionReady, status, reason)
		for _, m := range inMessage {
			g.Expect(ready.Message).To(ContainSubstring(m))
		}
	}).Should(Succeed())
}

// expectCondition asserts a condition's status and reason, and that it describes
// the object's current generation.
func expectCondition(g Gomega, conds []metav1.Condition, generation int64, typ string, status metav1.ConditionStatus, reason string) metav1.Condition {
	c := condition(g, conds, typ)
	g.Expect(c.Status).To(Equal(status), "condition %s: %+v", typ, c)
	g.Expect(c.Reason).To(Equal(reason), "condition %s: %+v", typ, c)
	g.Expect(c.ObservedGeneration).To(Equal(generation), "condition %s: %+v", typ, c)
	return c
}

// fetch reads an object of one of the API's kinds from the API server, as a
// tool that knows no Go types reads it.
func fetch(g Gomega, kind, ns, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(crmv1alpha1.GroupVersion.WithKind(kind))
	g.Expect(k8sClient.Get(ctx, key(ns, name), u)).To(Succeed())
	return u
}

// kstatusOf computes the kstatus (as Argo CD, Flux and kpt do) of an object, as
// fetched from the API server.
func kstatusOf(g Gomega, kind, ns, name string) kstatus.Status {
	res, err := kstatus.Compute(fetch(g, kind, ns, name))
	g.Expect(err).NotTo(HaveOccurred())
	return res.Status
}

// argoHealthOf runs the object's Argo CD health check (config/argocd) over it as
// fetched from the API server, as Argo CD runs a check from argocd-cm.
func argoHealthOf(g Gomega, kind, ns, name string) argocd.Health {
	script, err := argocd.Script(kind)
	g.Expect(err).NotTo(HaveOccurred())
	h, err := argocd.Run(script, fetch(g, kind, ns, name).Object)
	g.Expect(err).NotTo(HaveOccurred())
	return h
}

// updateObject changes the object ns/name as a user would: read afresh and
// changed for every attempt, retried on conflicts with the controller's own
// writes. It returns the object as written.
func updateObject[T any, PT interface {
	*T
	client.Object
}](ns, name string, change func(PT)) PT {
	GinkgoHelper()
	var obj PT
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		obj = new(T)
		if err := k8sClient.Get(ctx, key(ns, name), obj); err != nil {
			return err
		}
		change(obj)
		return k8sClient.Update(ctx, obj)
	})).To(Succeed())
	return obj
}

// updateCustomer changes a Customer as a user would (see updateObject).
func updateCustomer(ns, name string, change func(*crmv1alpha1.Customer)) *crmv1alpha1.Customer {
	GinkgoHelper()
	return updateObject(ns, name, change)
}

func updateSink(ns, name string, change func(*crmv1alpha1.CustomerSink)) *crmv1alpha1.CustomerSink {
	GinkgoHelper()
	return updateObject(ns, name, change)
}

// expectGone waits until an object no longer exists in the API server.
func expectGone(obj client.Object, timeout time.Duration) {
	GinkgoHelper()
	Eventually(func() bool {
		err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj)
		return apierrors.IsNotFound(err)
	}).WithTimeout(timeout).Should(BeTrue(), "%s still exists", client.ObjectKeyFromObject(obj))
}

func newCustomer(ns, name string, spec crmv1alpha1.CustomerSpec) *crmv1alpha1.Customer {
	return &crmv1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
}
