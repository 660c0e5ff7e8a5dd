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
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
)

var _ = Describe("Generic CustomerSource", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	genericSpec := func() *crmv1alpha1.GenericSource {
		return &crmv1alpha1.GenericSource{
			Authentication: crmv1alpha1.GenericAuthentication{HMAC: &crmv1alpha1.HMACAuthentication{
				Header: "X-Hub-Signature-256", Prefix: "sha256="}},
			Events:  crmv1alpha1.GenericEvents{ID: "headers['x-github-delivery']", Type: "body.action"},
			Mapping: crmv1alpha1.GenericMapping{ExternalID: "string(body.customer.id)", Email: "body.customer.email"},
		}
	}
	source := func(name string, provider crmv1alpha1.Provider, g *crmv1alpha1.GenericSource) *crmv1alpha1.CustomerSource {
		return &crmv1alpha1.CustomerSource{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: crmv1alpha1.CustomerSourceSpec{Provider: provider, Generic: g,
				SecretRef: crmv1alpha1.SecretReference{Name: "generic-creds"}},
		}
	}
	expectReady := func(name string, status metav1.ConditionStatus, reason string, inMessage ...string) {
		GinkgoHelper()
		expectSourceReady(ns, name, status, reason, inMessage...)
	}

	It("is refused by the API server without spec.generic, with it for another provider, or with two authentication modes", func() {
		err := k8sClient.Create(ctx, source("bare", crmv1alpha1.ProviderGeneric, nil))
		Expect(err).To(MatchError(ContainSubstring("generic is set exactly when provider is generic")))

		err = k8sClient.Create(ctx, source("mixed", crmv1alpha1.ProviderGETTRX, genericSpec()))
		Expect(err).To(MatchError(ContainSubstring("generic is set exactly when provider is generic")))

		two := genericSpec()
		two.Authentication.Bearer = &crmv1alpha1.HeaderAuthentication{}
		err = k8sClient.Create(ctx, source("two", crmv1alpha1.ProviderGeneric, two))
		Expect(err).To(MatchError(ContainSubstring("exactly one of standardWebhooks, hmac, basic or bearer")))

		untimed := genericSpec()
		untimed.Authentication.HMAC.SignedContent = "{timestamp}.{body}"
		err = k8sClient.Create(ctx, source("untimed", crmv1alpha1.ProviderGeneric, untimed))
		Expect(err).To(MatchError(ContainSubstring("signedContent contains {timestamp}")))
	})

	It("is InvalidExpression with the field and CEL's message until the expression is fixed", func() {
		createSecret(ns, "generic-creds", map[string]string{"secret": "github-secret"})
		bad := genericSpec()
		bad.Mapping.Email = "body.customer.email +"
		Expect(k8sClient.Create(ctx, source("github", crmv1alpha1.ProviderGeneric, bad))).To(Succeed())
		expectReady("github", metav1.ConditionFalse, crmv1alpha1.ReasonInvalidExpression, "spec.generic.mapping.email", "Syntax error")

		updateObject(ns, "github", func(src *crmv1alpha1.CustomerSource) {
			src.Spec.Generic.Mapping.Email = "body.customer.email"
			src.Spec.Generic.Events.Deleted = "size(body.action)"
		})
		expectReady("github", metav1.ConditionFalse, crmv1alpha1.ReasonInvalidExpression, "spec.generic.events.deleted", "not a bool")

		updateObject(ns, "github", func(src *crmv1alpha1.CustomerSource) {
			src.Spec.Generic.Events.Deleted = "body.action == 'deleted'"
		})
		expectReady("github", metav1.ConditionTrue, crmv1alpha1.ReasonValid, "accepting generic webhooks")
	})
})
