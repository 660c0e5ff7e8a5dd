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
	"strconv"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
)

var _ = Describe("customer_operator_source_ready", func() {
	// readiness is the source's series as the manager's /metrics serves it (the
	// controller-runtime registry): its value, or "absent" when there is none.
	// Reading it through the registry rather than sourceReady.WithLabelValues keeps
	// the read from creating the series it looks for.
	readiness := func(g Gomega, source string) string {
		values, err := registryGauges("customer_operator_source_ready", "source", source)
		g.Expect(err).NotTo(HaveOccurred())
		if len(values) == 0 {
			return "absent"
		}
		g.Expect(values).To(HaveLen(1))
		return strconv.FormatFloat(values[0], 'g', -1, 64)
	}

	It("is 1 while the source is Ready, 0 once its Secret is broken, and gone with the source", func() {
		ns := newNamespace()
		source := ns + "/phasio"
		createSecret(ns, "phasio-creds", map[string]string{"secret": phasioKey(32)})
		src := &crmv1alpha1.CustomerSource{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "phasio"},
			Spec: crmv1alpha1.CustomerSourceSpec{
				Provider:  crmv1alpha1.ProviderPhasio,
				SecretRef: crmv1alpha1.SecretReference{Name: "phasio-creds"},
			},
		}
		Expect(k8sClient.Create(ctx, src)).To(Succeed())

		By("Ready: 1")
		Eventually(func(g Gomega) { g.Expect(readiness(g, source)).To(Equal("1")) }).Should(Succeed())

		By("a 16-byte key, which phasio refuses: 0, with the Ready condition False")
		updateObject(ns, "phasio-creds", func(s *corev1.Secret) {
			s.Data = map[string][]byte{"secret": []byte(phasioKey(16))}
		})
		Eventually(func(g Gomega) {
			g.Expect(readiness(g, source)).To(Equal("0"))
			got := &crmv1alpha1.CustomerSource{}
			g.Expect(k8sClient.Get(ctx, key(ns, "phasio"), got)).To(Succeed())
			g.Expect(got.Status.Conditions).To(ContainElement(And(
				HaveField("Type", "Ready"), HaveField("Status", metav1.ConditionFalse),
				HaveField("Reason", crmv1alpha1.ReasonSecretInvalid))))
		}).Should(Succeed())

		By("deleting the source: no series left")
		Expect(k8sClient.Delete(ctx, src)).To(Succeed())
		Eventually(func(g Gomega) { g.Expect(readiness(g, source)).To(Equal("absent")) }).Should(Succeed())
	})
})
