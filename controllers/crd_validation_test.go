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
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
)

var _ = Describe("CRD validation", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	// expectInvalid creates obj and expects the API server to refuse it as Invalid,
	// with a message that names what a user must fix.
	expectInvalid := func(obj client.Object, wantInMessage ...string) {
		GinkgoHelper()
		err := k8sClient.Create(ctx, obj)
		Expect(err).To(HaveOccurred(), "the API server accepted %T %s", obj, obj.GetName())
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want an Invalid error, got %v", err)
		for _, s := range wantInMessage {
			Expect(err.Error()).To(ContainSubstring(s))
		}
	}

	It("accepts a valid Customer and defaults its lifecycle and address type", func() {
		c := newCustomer(ns, "valid", crmv1alpha1.CustomerSpec{
			Provider:   crmv1alpha1.ProviderGETTRX,
			ExternalID: "cus_1",
			Addresses:  []crmv1alpha1.Address{{City: "Lyon"}},
		})
		Expect(k8sClient.Create(ctx, c)).To(Succeed())
		got := getCustomer(Default, ns, "valid")
		Expect(got.Spec.Lifecycle).To(Equal(crmv1alpha1.LifecycleActive))
		Expect(got.Spec.Addresses[0].Type).To(Equal(crmv1alpha1.AddressOther))
	})

	It("refuses a Customer with an unknown lifecycle, naming spec.lifecycle", func() {
		expectInvalid(newCustomer(ns, "bad-lifecycle", crmv1alpha1.CustomerSpec{Lifecycle: "Gone"}),
			"spec.lifecycle", `"Gone"`)
	})

	It("refuses a Customer with an unknown address type, naming the address", func() {
		expectInvalid(newCustomer(ns, "bad-address", crmv1alpha1.CustomerSpec{
			Addresses: []crmv1alpha1.Address{{Type: "billing"}, {Type: "home"}},
		}), "spec.addresses[1].type", `"home"`)
	})

	It("refuses a Customer with a provider but no externalID (CEL rule)", func() {
		expectInvalid(newCustomer(ns, "no-external-id", crmv1alpha1.CustomerSpec{Provider: crmv1alpha1.ProviderPhasio}),
			"spec", "externalID is required when provider is set")
	})

	It("refuses a Customer with an unknown provider, naming spec.provider", func() {
		expectInvalid(newCustomer(ns, "bad-provider", crmv1alpha1.CustomerSpec{Provider: "stripe", ExternalID: "x"}),
			"spec.provider", `"stripe"`)
	})

	It("refuses a CustomerSink with an ftp:// url, naming spec.url", func() {
		expectInvalid(&crmv1alpha1.CustomerSink{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ftp"},
			Spec: crmv1alpha1.CustomerSinkSpec{
				URL:       "ftp://example.com/customers",
				Format:    crmv1alpha1.FormatCloudEvents,
				SecretRef: &crmv1alpha1.SecretReference{Name: "s"},
			},
		}, "spec.url", "url must be an absolute http or https URL")
	})

	It("refuses a standard-webhooks CustomerSink without secretRef, also when the format is defaulted", func() {
		expectInvalid(&crmv1alpha1.CustomerSink{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "unsigned"},
			Spec:       crmv1alpha1.CustomerSinkSpec{URL: "https://example.com/hook", Format: crmv1alpha1.FormatStandardWebhooks},
		}, "spec", "secretRef is required for the standard-webhooks format")
		expectInvalid(&crmv1alpha1.CustomerSink{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "unsigned-default"},
			Spec:       crmv1alpha1.CustomerSinkSpec{URL: "https://example.com/hook"},
		}, "spec", "secretRef is required for the standard-webhooks format")
	})

	It("refuses a CustomerSink with an unknown format, naming spec.format", func() {
		expectInvalid(&crmv1alpha1.CustomerSink{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad-format"},
			Spec: crmv1alpha1.CustomerSinkSpec{
				URL:       "https://example.com/hook",
				Format:    "xml",
				SecretRef: &crmv1alpha1.SecretReference{Name: "s"},
			},
		}, "spec.format", `"xml"`)
	})

	It("refuses a CustomerSink whose timeout is over 60s, naming spec.timeout, and accepts 60s", func() {
		sink := func(name, timeout string) *crmv1alpha1.CustomerSink {
			d, err := time.ParseDuration(timeout)
			Expect(err).NotTo(HaveOccurred())
			return &crmv1alpha1.CustomerSink{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Spec: crmv1alpha1.CustomerSinkSpec{
					URL:       "https://example.com/hook",
					Format:    crmv1alpha1.FormatCloudEvents,
					SecretRef: &crmv1alpha1.SecretReference{Name: "s"},
					Timeout:   &metav1.Duration{Duration: d},
				},
			}
		}
		expectInvalid(sink("a-year", "8760h"), "spec.timeout", "timeout must be at most 60s")
		expectInvalid(sink("just-over", "60.001s"), "spec.timeout", "timeout must be at most 60s")
		Expect(k8sClient.Create(ctx, sink("a-minute", "60s"))).To(Succeed())
	})

	It("refuses a CustomerSource with an unknown provider, naming spec.provider", func() {
		expectInvalid(&crmv1alpha1.CustomerSource{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad-provider"},
			Spec: crmv1alpha1.CustomerSourceSpec{
				Provider:  "stripe",
				SecretRef: crmv1alpha1.SecretReference{Name: "s"},
			},
		}, "spec.provider", `"stripe"`)
	})
})
