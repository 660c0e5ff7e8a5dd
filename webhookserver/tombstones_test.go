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
	"io"
	"net/http"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
)

var _ = Describe("Deletes and tombstones", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("answers 503 with Retry-After for a Customer being deleted, and applies the event once it is gone", func() {
		createSource(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret)
		code, body := send(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret, gettrxEvent("evt_d1", "customer.created", 1000, "cus_leaving", "leaving"))
		Expect(code).To(Equal(http.StatusOK), string(body))
		c := getCustomer(ns, crmv1alpha1.ProviderGETTRX, "cus_leaving")
		c.Finalizers = append(c.Finalizers, "test.customer-operator.io/hold")
		Expect(k8sClient.Update(ctx, c)).To(Succeed())
		Expect(k8sClient.Delete(ctx, c)).To(Succeed())

		ev := gettrxEvent("evt_d2", "customer.updated", 2000, "cus_leaving", "back")
		Eventually(func() int {
			code, _ := send(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret, ev)
			return code
		}, 10*time.Second, 50*time.Millisecond).Should(Equal(http.StatusServiceUnavailable))
		body, header := signed(crmv1alpha1.ProviderGETTRX, gettrxSecret, ev)
		req, _ := http.NewRequest(http.MethodPost, baseURL+"/hooks/"+ns+"/gettrx", bytes.NewReader(body))
		req.Header = header
		resp, err := http.DefaultClient.Do(req)
		Expect(err).NotTo(HaveOccurred())
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		Expect(resp.StatusCode).To(Equal(http.StatusServiceUnavailable))
		Expect(resp.Header.Get("Retry-After")).NotTo(BeEmpty())
		Expect(decodeAnswer(b).Reason).To(Equal("customer_deleting"))

		c = getCustomer(ns, crmv1alpha1.ProviderGETTRX, "cus_leaving")
		c.Finalizers = nil
		Expect(k8sClient.Update(ctx, c)).To(Succeed())
		Eventually(func() bool {
			err := k8sClient.Get(ctx, client.ObjectKeyFromObject(c), &crmv1alpha1.Customer{})
			return apierrors.IsNotFound(err)
		}, 10*time.Second, 50*time.Millisecond).Should(BeTrue())
		Eventually(func() int {
			code, _ := send(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret, ev)
			return code
		}, 10*time.Second, 50*time.Millisecond).Should(Equal(http.StatusOK))
		Expect(getCustomer(ns, crmv1alpha1.ProviderGETTRX, "cus_leaving").Spec.DisplayName).To(Equal("back"))
	})

	It("keeps tombstones at least 1h, and 7 days by default", func() {
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "s"}, Data: gettrxSecret})).To(Succeed())
		short := &crmv1alpha1.CustomerSource{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "short"},
			Spec: crmv1alpha1.CustomerSourceSpec{Provider: crmv1alpha1.ProviderGETTRX, SecretRef: crmv1alpha1.SecretReference{Name: "s"},
				TombstoneRetention: &metav1.Duration{Duration: 30 * time.Minute}},
		}
		err := k8sClient.Create(ctx, short)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring("tombstoneRetention must be at least 1h"))

		src := createSource(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret)
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(src), src)).To(Succeed())
		Expect(src.Spec.TombstoneRetention.Duration).To(Equal(7 * 24 * time.Hour))
		Expect(DefaultTombstoneRetention).To(Equal(src.Spec.TombstoneRetention.Duration), "the server's default is the CRD's")

		code, body := send(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret, fixture("gettrx/customer-deleted.json"))
		Expect(code).To(Equal(http.StatusOK), string(body))
		d := getCustomer(ns, crmv1alpha1.ProviderGETTRX, "cus_6793deef08af0b41b6d3b612")
		until, err := time.Parse(time.RFC3339, d.Annotations[crmv1alpha1.AnnotationTombstoneUntil])
		Expect(err).NotTo(HaveOccurred())
		Expect(until).To(BeTemporally("~", time.Now().Add(7*24*time.Hour), time.Minute))
	})
})
