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
	"crypto/rand"
	"encoding/base64"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/test/argocd"
)

// phasioKey returns a Phasio webhook secret as Phasio shows it: URL-safe base64
// of an n-byte key (Phasio's are 32 bytes, AES-256).
func phasioKey(n int) string {
	GinkgoHelper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	Expect(err).NotTo(HaveOccurred())
	return base64.URLEncoding.EncodeToString(b)
}

// expectSourceReady waits for a source's Ready condition at its current
// generation.
func expectSourceReady(ns, name string, status metav1.ConditionStatus, reason string, inMessage ...string) {
	GinkgoHelper()
	expectReadyOf(func(g Gomega) (int64, int64, []metav1.Condition) {
		src := &crmv1alpha1.CustomerSource{}
		g.Expect(k8sClient.Get(ctx, key(ns, name), src)).To(Succeed())
		return src.Generation, src.Status.ObservedGeneration, src.Status.Conditions
	}, status, reason, inMessage...)
}

var _ = Describe("CustomerSource controller", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	newSource := func(name string, provider crmv1alpha1.Provider, secretName string) *crmv1alpha1.CustomerSource {
		GinkgoHelper()
		src := &crmv1alpha1.CustomerSource{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: crmv1alpha1.CustomerSourceSpec{
				Provider:  provider,
				SecretRef: crmv1alpha1.SecretReference{Name: secretName},
			},
		}
		Expect(k8sClient.Create(ctx, src)).To(Succeed())
		return src
	}
	getSource := func(g Gomega, name string) *crmv1alpha1.CustomerSource {
		src := &crmv1alpha1.CustomerSource{}
		g.Expect(k8sClient.Get(ctx, key(ns, name), src)).To(Succeed())
		return src
	}
	expectReady := func(name string, status metav1.ConditionStatus, reason string, inMessage ...string) {
		GinkgoHelper()
		expectSourceReady(ns, name, status, reason, inMessage...)
	}

	It("is Ready with a valid Secret and publishes its webhook path", func() {
		createSecret(ns, "phasio-creds", map[string]string{"secret": phasioKey(32)})
		newSource("phasio", crmv1alpha1.ProviderPhasio, "phasio-creds")
		expectReady("phasio", metav1.ConditionTrue, crmv1alpha1.ReasonValid)
		Eventually(func(g Gomega) {
			src := getSource(g, "phasio")
			g.Expect(src.Status.WebhookPath).To(Equal("/hooks/" + ns + "/phasio"))
			g.Expect(src.Spec.TimestampTolerance).NotTo(BeNil(), "timestampTolerance is defaulted")
			g.Expect(src.Spec.TimestampTolerance.Duration.String()).To(Equal("5m0s"))
			g.Expect(kstatusOf(g, "CustomerSource", ns, "phasio")).To(Equal(kstatus.CurrentStatus))
			g.Expect(argoHealthOf(g, "CustomerSource", ns, "phasio")).To(Equal(argocd.Health{
				Status: "Healthy", Message: "accepting phasio webhooks at /hooks/" + ns + "/phasio"}))
		}).Should(Succeed())

		createSecret(ns, "gettrx-creds", map[string]string{"secret": "gettrx-signing-secret"})
		newSource("gettrx", crmv1alpha1.ProviderGETTRX, "gettrx-creds")
		expectReady("gettrx", metav1.ConditionTrue, crmv1alpha1.ReasonValid)
	})

	It("is SecretNotFound without its Secret, and Ready once the Secret is created, without a restart", func() {
		newSource("waiting", crmv1alpha1.ProviderPhasio, "later")
		expectReady("waiting", metav1.ConditionFalse, crmv1alpha1.ReasonSecretNotFound, "later")
		Eventually(func(g Gomega) {
			g.Expect(getSource(g, "waiting").Status.WebhookPath).To(Equal("/hooks/" + ns + "/waiting"))
		}).Should(Succeed())

		createSecret(ns, "later", map[string]string{"secret": phasioKey(32)})
		expectReady("waiting", metav1.ConditionTrue, crmv1alpha1.ReasonValid)
	})

	It("is SecretInvalid when the Phasio key is not 32 bytes, and Ready once the Secret is fixed", func() {
		createSecret(ns, "short", map[string]string{"secret": phasioKey(16)})
		newSource("short-key", crmv1alpha1.ProviderPhasio, "short")
		expectReady("short-key", metav1.ConditionFalse, crmv1alpha1.ReasonSecretInvalid, `"short"`, "32")
		Eventually(func(g Gomega) {
			g.Expect(kstatusOf(g, "CustomerSource", ns, "short-key")).To(Equal(kstatus.FailedStatus))
			h := argoHealthOf(g, "CustomerSource", ns, "short-key")
			g.Expect(h.Status).To(Equal("Degraded"))
			g.Expect(h.Message).To(ContainSubstring(`"short"`))
		}).Should(Succeed())

		updateObject(ns, "short", func(s *corev1.Secret) {
			s.Data = map[string][]byte{"secret": []byte(phasioKey(32))}
		})
		expectReady("short-key", metav1.ConditionTrue, crmv1alpha1.ReasonValid)
	})

	It("is Current for kstatus and Suspended for Argo CD while suspended, and Ready again when resumed", func() {
		createSecret(ns, "creds", map[string]string{"secret": phasioKey(32)})
		newSource("pausable", crmv1alpha1.ProviderPhasio, "creds")
		expectReady("pausable", metav1.ConditionTrue, crmv1alpha1.ReasonValid)

		setSuspend := func(v bool) {
			GinkgoHelper()
			updateObject(ns, "pausable", func(src *crmv1alpha1.CustomerSource) {
				src.Spec.Suspend = v
			})
		}
		setSuspend(true)
		// What its owner asked for holds: a wait on it (helm --wait, a Flux
		// Kustomization) must not fail because it is paused on purpose.
		expectReady("pausable", metav1.ConditionTrue, crmv1alpha1.ReasonSuspended, "503")
		Eventually(func(g Gomega) {
			g.Expect(kstatusOf(g, "CustomerSource", ns, "pausable")).To(Equal(kstatus.CurrentStatus))
			g.Expect(argoHealthOf(g, "CustomerSource", ns, "pausable").Status).To(Equal("Suspended"))
			// It accepts no webhook, so an alert on the gauge still sees it.
			g.Expect(registryGauges("customer_operator_source_ready", "source", ns+"/pausable")).To(Equal([]float64{0}))
		}).Should(Succeed())
		setSuspend(false)
		expectReady("pausable", metav1.ConditionTrue, crmv1alpha1.ReasonValid)
	})

	It("is Current, never Failed, while suspended with its Secret missing, and Failed once resumed", func() {
		src := &crmv1alpha1.CustomerSource{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "paused-early"},
			Spec: crmv1alpha1.CustomerSourceSpec{
				Provider:  crmv1alpha1.ProviderPhasio,
				SecretRef: crmv1alpha1.SecretReference{Name: "not-yet"},
				Suspend:   true,
			},
		}
		Expect(k8sClient.Create(ctx, src)).To(Succeed())
		expectReady("paused-early", metav1.ConditionTrue, crmv1alpha1.ReasonSuspended, `Secret "not-yet" not found`)
		Eventually(func(g Gomega) {
			g.Expect(kstatusOf(g, "CustomerSource", ns, "paused-early")).To(Equal(kstatus.CurrentStatus))
			g.Expect(argoHealthOf(g, "CustomerSource", ns, "paused-early").Status).To(Equal("Suspended"))
		}).Should(Succeed())

		updateObject(ns, "paused-early", func(got *crmv1alpha1.CustomerSource) {
			got.Spec.Suspend = false
		})
		expectReady("paused-early", metav1.ConditionFalse, crmv1alpha1.ReasonSecretNotFound, "not-yet")
		Eventually(func(g Gomega) {
			g.Expect(kstatusOf(g, "CustomerSource", ns, "paused-early")).To(Equal(kstatus.FailedStatus))
		}).Should(Succeed())
	})
})
