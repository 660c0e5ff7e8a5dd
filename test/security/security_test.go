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

package security_test

import (
	"bytes"
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/internal/secretcache"
	"github.com/customer-operator/customer-operator/webhookserver/providers/gettrx"
)

func objectMeta(ns, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name}
}

func newNamespace() string {
	GinkgoHelper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "tenant-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// allowed asks the API server whether the ServiceAccount may do verb on the
// resource (group/resource[/subresource]) in namespace ns ("" for all namespaces).
func allowed(saNamespace, sa, verb, group, resource, subresource, ns string) bool {
	GinkgoHelper()
	user, groups := serviceAccountUser(saNamespace, sa)
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: user, Groups: groups,
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: ns, Verb: verb, Group: group, Resource: resource, Subresource: subresource,
		},
	}}
	Expect(k8sClient.Create(ctx, sar)).To(Succeed())
	return sar.Status.Allowed
}

func createGETTRXSource(ns, signingKey string) {
	GinkgoHelper()
	Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: objectMeta(ns, "gettrx-creds"),
		StringData: map[string]string{"secret": signingKey}})).To(Succeed())
	Expect(k8sClient.Create(ctx, &crmv1alpha1.CustomerSource{
		ObjectMeta: objectMeta(ns, "gettrx"),
		Spec: crmv1alpha1.CustomerSourceSpec{
			Provider:  crmv1alpha1.ProviderGETTRX,
			SecretRef: crmv1alpha1.SecretReference{Name: "gettrx-creds"},
		},
	})).To(Succeed())
}

// postGETTRX signs the GETTRX sample event with key, as GETTRX does, posts it to
// the webhook server and returns the status code.
func postGETTRX(g Gomega, addr, ns, key string) int {
	plaintext, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", "events", "gettrx", "customer-created.json"))
	g.Expect(err).NotTo(HaveOccurred())
	body, header, err := gettrx.New().Prepare(plaintext, map[string][]byte{"secret": []byte(key)}, time.Now())
	g.Expect(err).NotTo(HaveOccurred())
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/hooks/"+ns+"/gettrx", bytes.NewReader(body))
	g.Expect(err).NotTo(HaveOccurred())
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// scrape gets /metrics from the manager's secure endpoint with the bearer token
// (none when empty). The certificate is self-signed, as in a default install.
func scrape(g Gomega, addr, token string) (int, string) {
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the manager's self-signed certificate
	}}
	req, err := http.NewRequest(http.MethodGet, "https://"+addr+"/metrics", nil)
	g.Expect(err).NotTo(HaveOccurred())
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	return resp.StatusCode, string(b)
}

// serviceAccountToken creates a ServiceAccount and returns a token for it, as a
// Prometheus pod would have mounted.
func serviceAccountToken(ns, name string) string {
	GinkgoHelper()
	Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, &corev1.ServiceAccount{ObjectMeta: objectMeta(ns, name)}))).To(Succeed())
	cs, err := kubernetes.NewForConfig(cfg)
	Expect(err).NotTo(HaveOccurred())
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptrTo(int64(600))},
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	return tr.Status.Token
}

func ptrTo[T any](v T) *T { return &v }

var _ = Describe("The webhook server's identity", func() {
	crm := crmv1alpha1.GroupVersion.Group

	It("may get Secrets but never list or watch them, and may delete nothing", func() {
		ns := newNamespace()
		can := func(verb, group, resource, subresource, ns string) bool {
			return allowed(systemNamespace, webhookSA, verb, group, resource, subresource, ns)
		}
		Expect(can("get", "", "secrets", "", ns)).To(BeTrue())
		for _, scope := range []string{ns, ""} {
			Expect(can("list", "", "secrets", "", scope)).To(BeFalse(), "list Secrets in %q", scope)
			Expect(can("watch", "", "secrets", "", scope)).To(BeFalse(), "watch Secrets in %q", scope)
		}
		for _, verb := range []string{"create", "update", "patch", "delete"} {
			Expect(can(verb, "", "secrets", "", ns)).To(BeFalse(), "%s Secrets", verb)
		}

		for _, verb := range []string{"get", "list", "watch", "create", "update"} {
			Expect(can(verb, crm, "customers", "", ns)).To(BeTrue(), "%s Customers", verb)
		}
		for _, verb := range []string{"get", "list", "watch"} {
			Expect(can(verb, crm, "customersources", "", ns)).To(BeTrue(), "%s CustomerSources", verb)
		}
		Expect(can("patch", crm, "customersources", "status", ns)).To(BeTrue())
		Expect(can("create", "events.k8s.io", "events", "", ns)).To(BeTrue())
		Expect(can("create", "", "events", "", ns)).To(BeTrue())

		Expect(can("list", crm, "customersinks", "", ns)).To(BeFalse(), "sinks are none of its business")
		Expect(can("update", crm, "customersources", "", ns)).To(BeFalse())
		Expect(can("update", crm, "customers", "finalizers", ns)).To(BeFalse())
		for _, r := range []struct{ group, resource string }{
			{crm, "customers"}, {crm, "customersources"}, {crm, "customersinks"},
			{"", "secrets"}, {"", "events"}, {"events.k8s.io", "events"}, {"", "pods"}, {"", "namespaces"},
		} {
			for _, verb := range []string{"delete", "deletecollection"} {
				Expect(can(verb, r.group, r.resource, "", ns)).To(BeFalse(), "%s %s.%s", verb, r.resource, r.group)
			}
		}

		By("and no rule of its role says otherwise")
		role := &rbacv1.ClusterRole{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Name: webhookRole}, role)).To(Succeed())
		for _, rule := range role.Rules {
			Expect(rule.Verbs).NotTo(ContainElements(ContainSubstring("delete")), "%v", rule)
			Expect(rule.Verbs).NotTo(ContainElement("*"), "%v", rule)
		}
	})

	It("reads a Secret through the secret cache by name, and is refused a list", func() {
		ns := newNamespace()
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: objectMeta(ns, "creds"),
			StringData: map[string]string{"secret": "first"}})).To(Succeed())

		asWebhook, err := client.New(asServiceAccount(systemNamespace, webhookSA), client.Options{Scheme: scheme})
		Expect(err).NotTo(HaveOccurred())
		err = asWebhook.List(ctx, &corev1.SecretList{}, client.InNamespace(ns))
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "listing Secrets: %v", err)

		const ttl = 500 * time.Millisecond
		store := secretcache.NewByName(asWebhook, ttl, ns)
		key := types.NamespacedName{Namespace: ns, Name: "creds"}
		data, err := store.Get(ctx, key)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(data["secret"])).To(Equal("first"))

		_, err = store.Get(ctx, types.NamespacedName{Namespace: ns, Name: "absent"})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%v", err)
		_, err = store.Get(ctx, types.NamespacedName{Namespace: systemNamespace, Name: "creds"})
		Expect(err).To(MatchError(ContainSubstring("not watched")))

		By("a rotated Secret is read again once the TTL is over")
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			s := &corev1.Secret{}
			if err := k8sClient.Get(ctx, key, s); err != nil {
				return err
			}
			s.Data = map[string][]byte{"secret": []byte("second")}
			return k8sClient.Update(ctx, s)
		})).To(Succeed())
		Eventually(func(g Gomega) {
			data, err := store.Get(ctx, key)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(string(data["secret"])).To(Equal("second"))
		}).WithTimeout(10 * ttl).Should(Succeed())
	})

	It("runs the webhook server with nothing more than its role, and a key rotation takes effect", func() {
		ns := newNamespace()
		createGETTRXSource(ns, "first-signing-key")
		m := startManager(kubeconfigAs(systemNamespace, webhookSA), "--mode=webhook")

		Eventually(func(g Gomega) {
			g.Expect(postGETTRX(g, m.webhookAddr, ns, "first-signing-key")).To(Equal(http.StatusOK))
		}).Should(Succeed())
		customers := &crmv1alpha1.CustomerList{}
		Expect(k8sClient.List(ctx, customers, client.InNamespace(ns))).To(Succeed())
		Expect(customers.Items).To(HaveLen(1))

		By("rotating the signing key: the new key is accepted within the secret cache's TTL")
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			s := &corev1.Secret{}
			if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "gettrx-creds"}, s); err != nil {
				return err
			}
			s.Data = map[string][]byte{"secret": []byte("second-signing-key")}
			return k8sClient.Update(ctx, s)
		})).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(postGETTRX(g, m.webhookAddr, ns, "second-signing-key")).To(Equal(http.StatusOK))
		}).WithTimeout(3 * secretcache.DefaultTTL).Should(Succeed())
		Expect(postGETTRX(Default, m.webhookAddr, ns, "first-signing-key")).To(Equal(http.StatusUnauthorized))

		Expect(forbidden(m.out.String())).To(BeEmpty(), "the API server refused the webhook server something")
	})
})

var _ = Describe("The controllers' identity", func() {
	It("keeps what the controllers need: a source becomes Ready, with no request refused", func() {
		can := func(verb, group, resource, ns string) bool {
			return allowed(systemNamespace, controllerSA, verb, group, resource, "", ns)
		}
		Expect(can("list", "", "secrets", "")).To(BeTrue(), "the controllers watch Secrets' metadata")
		Expect(can("delete", crmv1alpha1.GroupVersion.Group, "customers", "default")).To(BeTrue(), "tombstones are removed")
		Expect(can("create", crmv1alpha1.GroupVersion.Group, "customers", "default")).To(BeFalse(), "only the webhook server creates Customers")
		Expect(can("update", "", "secrets", "default")).To(BeFalse())

		ns := newNamespace()
		createGETTRXSource(ns, "signing-key")
		m := startManager(kubeconfigAs(systemNamespace, controllerSA), "--mode=controllers")
		expectSourceReady(ns)
		Expect(forbidden(m.out.String())).To(BeEmpty(), "the API server refused the controllers something")
	})

	It("with --watch-namespaces, works with Roles bound in those namespaces only", func() {
		ns := newNamespace()
		other := newNamespace()
		// A ServiceAccount with no cluster-wide grant: the manager and leader
		// election roles bound in the watched namespace, as the chart does then.
		Expect(k8sClient.Create(ctx, &corev1.ServiceAccount{ObjectMeta: objectMeta(systemNamespace, "scoped-controller")})).To(Succeed())
		bindInNamespace(ns, managerRole, systemNamespace, "scoped-controller")
		Expect(allowed(systemNamespace, "scoped-controller", "list", "", "secrets", "", "")).To(BeFalse())

		createGETTRXSource(ns, "signing-key")
		createGETTRXSource(other, "signing-key")
		m := startManager(kubeconfigAs(systemNamespace, "scoped-controller"), "--mode=controllers", "--watch-namespaces="+ns)
		expectSourceReady(ns)
		Consistently(func(g Gomega) {
			src := &crmv1alpha1.CustomerSource{}
			g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: other, Name: "gettrx"}, src)).To(Succeed())
			g.Expect(src.Status.Conditions).To(BeEmpty(), "a source outside the watched namespaces is left alone")
		}, 2*time.Second).Should(Succeed())
		Expect(forbidden(m.out.String())).To(BeEmpty(), "the manager asked for more than its namespaces")
	})
})

func expectSourceReady(ns string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		src := &crmv1alpha1.CustomerSource{}
		g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "gettrx"}, src)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(src.Status.Conditions, crmv1alpha1.ConditionReady)).To(BeTrue(), "%v", src.Status.Conditions)
	}).Should(Succeed())
}

var _ = Describe("The metrics endpoint", func() {
	It("refuses a scrape without a token or with one not allowed to read metrics, and serves one bound to metrics-reader", func() {
		const monitoring = "monitoring"
		Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: monitoring}}))).To(Succeed())
		prometheus := serviceAccountToken(monitoring, "prometheus")
		nosy := serviceAccountToken(monitoring, "nosy")
		Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "prometheus-" + metricsReader},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: metricsReader},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: monitoring, Name: "prometheus"}},
		}))).To(Succeed())

		// Both identities check scrapers' tokens (metrics-auth-role); the
		// metrics endpoint is secure by default.
		for _, run := range []struct{ sa, mode, metric string }{
			{controllerSA, "--mode=controllers", "controller_runtime_reconcile_total"},
			{webhookSA, "--mode=webhook", "go_goroutines"},
		} {
			By(run.sa)
			m := startManager(kubeconfigAs(systemNamespace, run.sa), run.mode)
			Eventually(func(g Gomega) {
				code, _ := scrape(g, m.metricsAddr, "")
				g.Expect(code).To(Equal(http.StatusUnauthorized))
			}).Should(Succeed())
			Eventually(func(g Gomega) {
				code, _ := scrape(g, m.metricsAddr, nosy)
				g.Expect(code).To(Equal(http.StatusForbidden))
			}).Should(Succeed())
			Eventually(func(g Gomega) {
				code, body := scrape(g, m.metricsAddr, prometheus)
				g.Expect(code).To(Equal(http.StatusOK))
				g.Expect(body).To(ContainSubstring(run.metric))
			}).Should(Succeed())
			// The start-up's lower GC percent (--startup-gc-percent) is over once
			// the Customer cache has synced and its queue emptied: the process
			// under load collects at the runtime's own setting.
			Eventually(func(g Gomega) {
				_, body := scrape(g, m.metricsAddr, prometheus)
				g.Expect(body).To(MatchRegexp(`(?m)^go_gc_gogc_percent %s$`, gogc()))
			}).Should(Succeed())
			if os.Getenv("GOGC") == "" {
				// Logged once the start-up's free heap is returned, just after
				// the percent is restored.
				Eventually(m.out.String).Should(ContainSubstring("start-up settled: GC percent restored"))
			}
			Expect(forbidden(m.out.String())).To(BeEmpty())
		}
	})
})

// gogc is the GC percent the managers run at once started: the runtime's
// default, or the GOGC this test runs with.
func gogc() string {
	if v := os.Getenv("GOGC"); v != "" {
		return v
	}
	return "100"
}

var _ = Describe("--version", func() {
	It("prints the version and commit set at build time, and exits 0", func() {
		out, err := exec.Command(managerBin, "--version").CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "%s", out)
		Expect(string(out)).To(Equal("customer-operator " + testVersion + " (commit " + testCommit + ")\n"))
	})
})
