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
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
)

// answer is a 2xx or error body as a provider reads it, decoded without the
// server's own types, so that these tests say what is on the wire.
type answer struct {
	Applied        int `json:"applied"`
	Duplicate      int `json:"duplicate"`
	Stale          int `json:"stale"`
	Ignored        int `json:"ignored"`
	Rejected       int `json:"rejected"`
	RejectedEvents []struct {
		ID     string `json:"id"`
		Reason string `json:"reason"`
		Field  string `json:"field"`
	} `json:"rejectedEvents"`
	Error  string `json:"error"`
	Reason string `json:"reason"`
	Field  string `json:"field"`
}

func decodeAnswer(b []byte) answer {
	var a answer
	ExpectWithOffset(1, json.Unmarshal(b, &a)).To(Succeed(), string(b))
	return a
}

// withFields returns a JSON fixture with some top-level fields replaced.
func withFields(fixtureJSON []byte, fields map[string]any) []byte {
	var m map[string]any
	ExpectWithOffset(1, json.Unmarshal(fixtureJSON, &m)).To(Succeed())
	for k, v := range fields {
		m[k] = v
	}
	b, err := json.Marshal(m)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return b
}

// smarterpayAccount is one SmarterPay customer_account event.
func smarterpayAccount(id, reference, company string, created time.Time) map[string]any {
	return map[string]any{
		"id": id, "created_at": created.UTC().Format("2006-01-02T15:04:05.000Z"), "resource_type": "customer_account",
		"reference": reference, "Email": strings.ToLower(reference) + "@example.com", "company_name": company,
		"first_name": "Lizzy", "last_name": "Hale", "status": "active",
	}
}

func smarterpayBatch(events ...map[string]any) []byte {
	b, err := json.Marshal(map[string]any{"events": events})
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return b
}

func customersOf(ns string, labels client.MatchingLabels) []crmv1alpha1.Customer {
	list := &crmv1alpha1.CustomerList{}
	ExpectWithOffset(1, k8sClient.List(ctx, list, client.InNamespace(ns), labels)).To(Succeed())
	return list.Items
}

// Ingest tried as an attacker and as a provider that retries: each scenario is
// one that a naive receiver gets wrong.
var _ = Describe("Ingest under attack and provider retries", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("a retry of an event applied in the same second does not roll the record back", func() {
		createSource(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret)
		const second = 1733267345 // GETTRX's created is in whole seconds

		code, body := send(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret, gettrxEvent("evt_A", "customer.created", second, "cus_same", "old"))
		Expect(code).To(Equal(http.StatusOK), string(body))
		code, body = send(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret, gettrxEvent("evt_B", "customer.updated", second, "cus_same", "new"))
		Expect(code).To(Equal(http.StatusOK), string(body))
		Expect(decodeAnswer(body).Applied).To(Equal(1), "equal timestamps, different events: the later arrival wins")
		Expect(getCustomer(ns, crmv1alpha1.ProviderGETTRX, "cus_same").Spec.Email).To(Equal("new@example.com"))

		By("the provider retrying evt_A (a new attemptId, the same event id)")
		code, body = send(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret, gettrxEvent("evt_A", "customer.created", second, "cus_same", "old"))
		Expect(code).To(Equal(http.StatusOK), string(body))
		a := decodeAnswer(body)
		Expect([]int{a.Applied, a.Duplicate}).To(Equal([]int{0, 1}), string(body))
		c := getCustomer(ns, crmv1alpha1.ProviderGETTRX, "cus_same")
		Expect(c.Spec.Email).To(Equal("new@example.com"), "the retry rolled the record back")
		Expect(c.Annotations).To(HaveKeyWithValue(crmv1alpha1.AnnotationLastEventID, "evt_B"))
	})

	It("two sources with the same provider id each keep their own Customer and only their own labels", func() {
		eu, us := phasioSecret(), phasioSecret()
		createSource(ns, "phasio-eu", crmv1alpha1.ProviderPhasio, eu, func(s *crmv1alpha1.CustomerSource) {
			s.Spec.CustomerLabels = map[string]string{"account": "eu", "region-eu": "true"}
		})
		createSource(ns, "phasio-us", crmv1alpha1.ProviderPhasio, us, func(s *crmv1alpha1.CustomerSource) {
			s.Spec.CustomerLabels = map[string]string{"account": "us"}
		})
		org := fixture("phasio/customer-organisation-created.json")

		code, body := send(ns, "phasio-eu", crmv1alpha1.ProviderPhasio, eu, org)
		Expect(code).To(Equal(http.StatusOK), string(body))
		code, body = send(ns, "phasio-us", crmv1alpha1.ProviderPhasio, us, withFields(org, map[string]any{"name": "Acme US"}))
		Expect(code).To(Equal(http.StatusOK), string(body))

		euOnly := customersOf(ns, client.MatchingLabels{"account": "eu"})
		Expect(euOnly).To(HaveLen(1), "a sink selecting account=eu sees the EU customer only")
		Expect(euOnly[0].Name).To(Equal("phasio-678"), "the first writer keeps the plain name")
		Expect(euOnly[0].Spec.DisplayName).To(Equal("Acme Manufacturing"), "the US account overwrote the EU account's customer")
		Expect(euOnly[0].Labels).To(HaveKeyWithValue(crmv1alpha1.LabelSource, "phasio-eu"))

		usOnly := customersOf(ns, client.MatchingLabels{"account": "us"})
		Expect(usOnly).To(HaveLen(1))
		Expect(usOnly[0].Name).To(And(HavePrefix("phasio-678-phasio-us-"), Not(Equal(euOnly[0].Name))), "the source is in the name when ids collide")
		Expect(usOnly[0].Spec.DisplayName).To(Equal("Acme US"))
		Expect(usOnly[0].Spec.ExternalID).To(Equal("678"))
		Expect(usOnly[0].Labels).To(HaveKeyWithValue(crmv1alpha1.LabelSource, "phasio-us"))
		Expect(usOnly[0].Labels).NotTo(HaveKey("region-eu"), "labels merged across sources")

		By("the US account's next event finding its own Customer again")
		code, body = send(ns, "phasio-us", crmv1alpha1.ProviderPhasio, us, withFields(org, map[string]any{"name": "Acme US 2", "lastUpdatedOn": "2025-01-11T08:00:00"}))
		Expect(code).To(Equal(http.StatusOK), string(body))
		Expect(customersOf(ns, client.MatchingLabels{crmv1alpha1.LabelProvider: "phasio"})).To(HaveLen(2))
		Expect(customersOf(ns, client.MatchingLabels{"account": "us"})[0].Spec.DisplayName).To(Equal("Acme US 2"))

		By("the EU source dropping a label from customerLabels: its next write removes it")
		src := &crmv1alpha1.CustomerSource{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "phasio-eu"}, src)).To(Succeed())
		src.Spec.CustomerLabels = map[string]string{"account": "eu"}
		Expect(k8sClient.Update(ctx, src)).To(Succeed())
		minute := 0
		Eventually(func() map[string]string {
			minute++
			updated := withFields(org, map[string]any{"lastUpdatedOn": fmt.Sprintf("2025-01-12T08:%02d:00", minute)})
			code, body := send(ns, "phasio-eu", crmv1alpha1.ProviderPhasio, eu, updated)
			Expect(code).To(Equal(http.StatusOK), string(body))
			return getCustomer(ns, crmv1alpha1.ProviderPhasio, "678").Labels
		}, 10*time.Second, 100*time.Millisecond).ShouldNot(HaveKey("region-eu"), "customerLabels are replaced, not merged")
		Expect(getCustomer(ns, crmv1alpha1.ProviderPhasio, "678").Labels).To(HaveKeyWithValue("account", "eu"))
	})

	It("a hand-written record for the same provider id is still adopted, and keeps its own labels", func() {
		secret := phasioSecret()
		createSource(ns, "phasio", crmv1alpha1.ProviderPhasio, secret, func(s *crmv1alpha1.CustomerSource) {
			s.Spec.CustomerLabels = map[string]string{"account": "eu"}
		})
		Expect(k8sClient.Create(ctx, &crmv1alpha1.Customer{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "phasio-678", Labels: map[string]string{"owner": "alice"}},
			Spec:       crmv1alpha1.CustomerSpec{Provider: crmv1alpha1.ProviderPhasio, ExternalID: "678", DisplayName: "typed by hand"},
		})).To(Succeed())
		code, body := send(ns, "phasio", crmv1alpha1.ProviderPhasio, secret, fixture("phasio/customer-organisation-created.json"))
		Expect(code).To(Equal(http.StatusOK), string(body))
		c := getCustomer(ns, crmv1alpha1.ProviderPhasio, "678")
		Expect(c.Spec.DisplayName).To(Equal("Acme Manufacturing"))
		Expect(c.Labels).To(HaveKeyWithValue("owner", "alice"))
		Expect(c.Labels).To(HaveKeyWithValue("account", "eu"))
		Expect(c.Labels).To(HaveKeyWithValue(crmv1alpha1.LabelSource, "phasio"))
		Expect(customersOf(ns, nil)).To(HaveLen(1))
	})

	It("a poison event in a batch does not block the others, on the first delivery or a retry", func() {
		createSource(ns, "smarterpay", crmv1alpha1.ProviderSmarterPay, smarterpaySecret)
		now := time.Now()
		batch := smarterpayBatch(
			smarterpayAccount("FTBEV_1", "CUST1", "First Ltd", now),
			smarterpayAccount("FTBEV_2", "CUST2", strings.Repeat("x", 600), now),
			smarterpayAccount("FTBEV_3", "CUST3", "Third Ltd", now),
		)
		code, body := send(ns, "smarterpay", crmv1alpha1.ProviderSmarterPay, smarterpaySecret, batch)
		Expect(code).To(Equal(http.StatusOK), string(body))
		a := decodeAnswer(body)
		Expect([]int{a.Applied, a.Rejected}).To(Equal([]int{2, 1}), string(body))
		Expect(a.RejectedEvents).To(HaveLen(1))
		Expect(a.RejectedEvents[0].ID).To(Equal("FTBEV_2"))
		Expect(a.RejectedEvents[0].Reason).To(Equal("invalid_customer"))
		Expect(a.RejectedEvents[0].Field).To(MatchRegexp(`^spec\.(displayName|companyName)$`))
		Expect(getCustomer(ns, crmv1alpha1.ProviderSmarterPay, "CUST1").Spec.CompanyName).To(Equal("First Ltd"))
		Expect(getCustomer(ns, crmv1alpha1.ProviderSmarterPay, "CUST3").Spec.CompanyName).To(Equal("Third Ltd"))
		Expect(customersOf(ns, nil)).To(HaveLen(2))
		Expect(testutil.ToFloat64(eventsTotal.WithLabelValues("smarterpay", ns+"/smarterpay", OutcomeRejected))).To(Equal(1.0))
		Eventually(func() []eventsv1.Event {
			return sourceEvents(ns, "smarterpay", EventReasonInvalidEvent)
		}, 10*time.Second, 100*time.Millisecond).Should(ContainElement(And(
			HaveField("Type", corev1.EventTypeWarning),
			HaveField("Note", And(ContainSubstring(`"FTBEV_2"`), MatchRegexp(`field spec\.(displayName|companyName)`))),
		)), "the people who can fix it are told which event")

		By("the provider retrying the same batch")
		code, body = send(ns, "smarterpay", crmv1alpha1.ProviderSmarterPay, smarterpaySecret, batch)
		Expect(code).To(Equal(http.StatusOK), string(body))
		a = decodeAnswer(body)
		Expect([]int{a.Applied, a.Duplicate, a.Rejected}).To(Equal([]int{0, 2, 1}), string(body))

		By("a request whose only event is invalid")
		code, body = send(ns, "smarterpay", crmv1alpha1.ProviderSmarterPay, smarterpaySecret,
			smarterpayBatch(smarterpayAccount("FTBEV_4", "CUST4", strings.Repeat("y", 600), now)))
		Expect(code).To(Equal(http.StatusUnprocessableEntity), string(body))
		a = decodeAnswer(body)
		Expect(a.Reason).To(Equal("invalid_customer"))
		Expect(a.Field).To(MatchRegexp(`^spec\.(displayName|companyName)$`))
	})

	It("unauthenticated requests do not spend the source's rate limit", func() {
		createSource(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret, func(s *crmv1alpha1.CustomerSource) {
			s.Spec.RateLimit = &crmv1alpha1.RateLimit{EventsPerSecond: 1, Burst: 2}
		})
		unsigned := gettrxEvent("evt_stranger", "customer.created", 1000, "cus_stranger", "stranger")
		for i := range 6 {
			code, body := post(ns, "gettrx", unsigned, http.Header{"Content-Type": {"application/json"}})
			Expect(code).To(Equal(http.StatusUnauthorized), "request %d: %s", i, body)
		}
		code, body := send(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret, gettrxEvent("evt_provider", "customer.created", 1000, "cus_provider", "provider"))
		Expect(code).To(Equal(http.StatusOK), "the provider's signed request: %s", body)
	})
})
