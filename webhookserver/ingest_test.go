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
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers/registry"
)

// Test credentials, one set per provider, as an operator would put them in the
// sources' Secrets.
func phasioSecret() map[string][]byte {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return map[string][]byte{"secret": []byte(base64.RawURLEncoding.EncodeToString(key))}
}

var (
	smarterpaySecret = map[string][]byte{"secret": []byte("sp-webhook-key-0123456789")}
	gettrxSecret     = map[string][]byte{"secret": []byte("gettrx-signing-key-0123456789")}
	paywaySecret     = map[string][]byte{"username": []byte("payway"), "password": []byte("correct horse battery staple")}
)

func ptr[T any](v T) *T { return &v }

func decodeCounts(b []byte) Counts {
	var c Counts
	ExpectWithOffset(1, json.Unmarshal(b, &c)).To(Succeed(), string(b))
	return c
}

var _ = Describe("Ingesting each provider's fixtures", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("turns Phasio's encrypted organisation into a Customer", func() {
		secret := phasioSecret()
		createSource(ns, "phasio", crmv1alpha1.ProviderPhasio, secret, func(s *crmv1alpha1.CustomerSource) {
			s.Spec.CustomerLabels = map[string]string{"team": "manufacturing"}
		})
		code, body := send(ns, "phasio", crmv1alpha1.ProviderPhasio, secret, fixture("phasio/customer-organisation-created.json"))
		Expect(code).To(Equal(http.StatusOK), string(body))
		Expect(decodeCounts(body)).To(Equal(Counts{Applied: 1}))

		c := getCustomer(ns, crmv1alpha1.ProviderPhasio, "678")
		Expect(c.Name).To(Equal("phasio-678"))
		// No controller runs in this suite: the finalizer came with the create.
		Expect(c.Finalizers).To(Equal([]string{crmv1alpha1.CustomerFinalizer}))
		Expect(c.Labels).To(HaveKeyWithValue(crmv1alpha1.LabelProvider, "phasio"))
		Expect(c.Labels).To(HaveKeyWithValue(crmv1alpha1.LabelSource, "phasio"))
		Expect(c.Labels).To(HaveKeyWithValue("team", "manufacturing"))
		s := c.Spec
		Expect(s.Provider).To(Equal(crmv1alpha1.ProviderPhasio))
		Expect(s.ExternalID).To(Equal("678"))
		Expect(s.DisplayName).To(Equal("Acme Manufacturing"))
		Expect(s.CompanyName).To(Equal("Acme Manufacturing"))
		Expect(s.TaxID).To(Equal("US123456789"))
		Expect(s.Language).To(Equal("en"))
		Expect(s.TaxExempt).To(Equal(ptr(false)))
		Expect(s.Approved).To(Equal(ptr(true)))
		Expect(s.Email).To(Equal("john@acme.com"))
		Expect(s.Phone).To(Equal("+1-555-0100"))
		Expect(s.Lifecycle).To(Equal(crmv1alpha1.LifecycleActive))
		Expect(s.Contacts).To(Equal([]crmv1alpha1.Contact{{
			ID: "1", FirstName: "John", LastName: "Doe", Email: "john@acme.com", Phone: "+1-555-0100", NotificationPreference: "EMAIL",
		}}))
		Expect(s.Addresses).To(HaveLen(1))
		a := s.Addresses[0]
		Expect(a.Type).To(Equal(crmv1alpha1.AddressOther))
		Expect([]string{a.Name, a.Line1, a.Line2, a.City, a.State, a.PostalCode, a.Country, a.Phone, a.Email}).To(Equal(
			[]string{"Headquarters", "123 Industrial Ave", "", "Austin", "TX", "73301", "US", "+1-555-0100", "info@acme.com"}))
		Expect(a.Residential).To(Equal(ptr(false)))
		Expect(s.ProviderUpdatedAt.Time.Equal(time.Date(2025, 1, 10, 8, 0, 0, 0, time.UTC))).To(BeTrue())
		Expect(c.Annotations).To(HaveKeyWithValue(crmv1alpha1.AnnotationLastEventID, "phasio:678:2025-01-10T08:00:00"))
	})

	It("turns SmarterPay's customer account into a Customer", func() {
		createSource(ns, "smarterpay", crmv1alpha1.ProviderSmarterPay, smarterpaySecret)
		code, body := send(ns, "smarterpay", crmv1alpha1.ProviderSmarterPay, smarterpaySecret, fixture("smarterpay/customer-account-inserted.json"))
		Expect(code).To(Equal(http.StatusOK), string(body))
		Expect(decodeCounts(body)).To(Equal(Counts{Applied: 1}))

		c := getCustomer(ns, crmv1alpha1.ProviderSmarterPay, "FTBCUST00034750")
		Expect(c.Name).To(HavePrefix("smarterpay-ftbcust00034750-"), "upper case is lossy: a hash suffix keeps ids apart")
		s := c.Spec
		Expect(s.ExternalID).To(Equal("FTBCUST00034750"))
		Expect(s.DisplayName).To(Equal("Halestorm"))
		Expect(s.CompanyName).To(Equal("Halestorm"))
		Expect(s.Email).To(Equal("lhale@email.com"))
		Expect(s.Lifecycle).To(Equal(crmv1alpha1.LifecycleActive))
		Expect(s.Contacts).To(ContainElement(And(
			HaveField("FirstName", "Lizzy"), HaveField("LastName", "Hale"), HaveField("Title", ""))))
		Expect(s.Addresses).To(HaveLen(1), "the delivery address has only a country: no delivery address")
		Expect(s.Addresses[0]).To(And(HaveField("Type", crmv1alpha1.AddressBilling), HaveField("Line1", "32-36 Prospect Street"),
			HaveField("Line2", ""), HaveField("City", "Hull"), HaveField("PostalCode", "HU2 8PX"), HaveField("Country", "GB")))
		Expect(s.Attributes).To(HaveKeyWithValue("event_source", "20022091"))
		Expect(s.Attributes).To(HaveKeyWithValue("description", "API - Customer Account inserted"))
		Expect(s.Attributes).NotTo(HaveKey("custom_reference"), "empty strings are absent values")
		Expect(c.Annotations).To(HaveKeyWithValue(crmv1alpha1.AnnotationLastEventID, "FTBEV01781287"))
	})

	It("turns GETTRX's customer events into a Customer and a tombstone", func() {
		createSource(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret, func(s *crmv1alpha1.CustomerSource) {
			s.Spec.TombstoneRetention = &metav1.Duration{Duration: time.Hour}
		})
		code, body := send(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret, fixture("gettrx/customer-created.json"))
		Expect(code).To(Equal(http.StatusOK), string(body))

		c := getCustomer(ns, crmv1alpha1.ProviderGETTRX, "cus_674f8ebeb6d07a3f7b6cf555")
		s := c.Spec
		Expect(s.DisplayName).To(Equal("Alejandra"))
		Expect(s.Email).To(Equal("alejandra@example.com"))
		Expect(s.Phone).To(Equal("GW 1663954111"))
		Expect(s.Attributes).To(HaveKeyWithValue("invoicePrefix", "D817FED4"))
		Expect(s.Attributes).To(HaveKeyWithValue("account", "acm_65f48b068b8d6912fe07f555"))
		Expect(s.Addresses).To(ConsistOf(
			And(HaveField("Type", crmv1alpha1.AddressBilling), HaveField("Line1", "57556 Paxton Keys Suite 337"),
				HaveField("City", "West Eladiofurt"), HaveField("State", "Michigan"), HaveField("PostalCode", "12782"), HaveField("Country", "SA")),
			And(HaveField("Type", crmv1alpha1.AddressShipping), HaveField("Name", "Hannah Shanahan"), HaveField("Phone", "GL 1587872490"),
				HaveField("Line1", "8892 Gutmann Gateway Apt. 488"), HaveField("City", "Eliasville"), HaveField("Country", "US")),
		))
		Expect(c.Annotations).To(HaveKeyWithValue(crmv1alpha1.AnnotationLastEventID, "evt_674f8f91778c0c7274a6636c"))
		Expect(c.Annotations).To(HaveKeyWithValue(crmv1alpha1.AnnotationLastEventTime, "2024-12-03T23:09:05Z"))

		code, body = send(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret, fixture("gettrx/customer-updated.json"))
		Expect(code).To(Equal(http.StatusOK), string(body))
		u := getCustomer(ns, crmv1alpha1.ProviderGETTRX, "cus_66ad2efc93cccf50d08ac5ac")
		Expect(u.Spec.Attributes).To(HaveKeyWithValue("invoiceSettings.defaultPaymentMethod", "pm_66ad2f8e60f2a24375837619"))

		// A delete of a customer never seen makes a tombstone, so a late create is stale.
		code, body = send(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret, fixture("gettrx/customer-deleted.json"))
		Expect(code).To(Equal(http.StatusOK), string(body))
		d := getCustomer(ns, crmv1alpha1.ProviderGETTRX, "cus_6793deef08af0b41b6d3b612")
		Expect(d.Spec.Lifecycle).To(Equal(crmv1alpha1.LifecycleDeleted))
		until, err := time.Parse(time.RFC3339, d.Annotations[crmv1alpha1.AnnotationTombstoneUntil])
		Expect(err).NotTo(HaveOccurred())
		Expect(until).To(BeTemporally("~", time.Now().Add(time.Hour), time.Minute))
	})

	It("turns Payway's account events, both forms, into Customers and never stores identity numbers", func() {
		createSource(ns, "payway", crmv1alpha1.ProviderPayway, paywaySecret)
		code, body := send(ns, "payway", crmv1alpha1.ProviderPayway, paywaySecret, fixture("payway/account-changed-webhook.json"))
		Expect(code).To(Equal(http.StatusOK), string(body))
		c := getCustomer(ns, crmv1alpha1.ProviderPayway, "6058a32309c04c0221d7a9c0")
		s := c.Spec
		Expect(s.DisplayName).To(Equal("Kalle Anka"))
		Expect(s.Email).To(Equal("user@email.com"))
		Expect(s.Phone).To(Equal("50460531"))
		Expect(s.Lifecycle).To(Equal(crmv1alpha1.LifecycleActive))
		Expect(s.Attributes).To(HaveKeyWithValue("organisation_id", "organisation"))
		Expect(s.Addresses).To(HaveLen(1))
		Expect(s.Addresses[0]).To(And(HaveField("Type", crmv1alpha1.AddressBilling), HaveField("Line1", "The Streets 12"),
			HaveField("PostalCode", "83242"), HaveField("City", "Stockholm"), HaveField("Country", "SE")))
		Expect(s.Addresses[0].Line2).To(And(ContainSubstring("A"), ContainSubstring("3"), ContainSubstring("13")))
		Expect(c.Annotations).To(HaveKeyWithValue(crmv1alpha1.AnnotationLastEventID, "payway:account_changed:6058a32309c04c0221d7a9c0:2021-03-22T14:01:07.737Z"))

		code, body = send(ns, "payway", crmv1alpha1.ProviderPayway, paywaySecret, fixture("payway/account-changed-ssi.json"))
		Expect(code).To(Equal(http.StatusOK), string(body))
		ssi := getCustomer(ns, crmv1alpha1.ProviderPayway, "6058a29509c04c011084899c")
		Expect(ssi.Spec.DisplayName).To(Equal("john doe"))
		Expect(ssi.Spec.Attributes).To(HaveKeyWithValue("customer_number", "123456"))
		stored, err := json.Marshal(ssi)
		Expect(err).NotTo(HaveOccurred())
		for _, secret := range []string{"12341234-0000", "321321-0000", "2001-03-22", "ssn", "crn", "birth_date"} {
			Expect(string(stored)).NotTo(ContainSubstring(secret))
		}
	})
})

var _ = Describe("Rejections", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	expectRejected := func(code int, body []byte, wantCode int, wantReason string) {
		GinkgoHelper()
		Expect(code).To(Equal(wantCode), string(body))
		var e errorBody
		Expect(json.Unmarshal(body, &e)).To(Succeed(), string(body))
		Expect(e.Error).NotTo(BeEmpty())
		Expect(e.Reason).To(Equal(wantReason))
	}

	It("answers each failure with its code, a message and a metric, and writes nothing", func() {
		phasio := phasioSecret()
		createSource(ns, "phasio", crmv1alpha1.ProviderPhasio, phasio)
		createSource(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret)
		createSource(ns, "smarterpay", crmv1alpha1.ProviderSmarterPay, smarterpaySecret)
		createSource(ns, "payway", crmv1alpha1.ProviderPayway, paywaySecret)
		sim := func(p crmv1alpha1.Provider, secret map[string][]byte, plaintext []byte, now time.Time) ([]byte, http.Header) {
			b, h, err := registry.Lookup(p).(interface {
				Prepare([]byte, map[string][]byte, time.Time) ([]byte, http.Header, error)
			}).Prepare(plaintext, secret, now)
			Expect(err).NotTo(HaveOccurred())
			return b, h
		}
		before := rejections("gettrx", ns+"/gettrx", "unauthorized")

		By("a bad signature")
		body, header := sim(crmv1alpha1.ProviderGETTRX, map[string][]byte{"secret": []byte("not-the-key")}, fixture("gettrx/customer-created.json"), time.Now())
		code, resp := post(ns, "gettrx", body, header)
		expectRejected(code, resp, http.StatusUnauthorized, "unauthorized")
		Expect(rejections("gettrx", ns+"/gettrx", "unauthorized")).To(Equal(before + 1))

		By("a missing signature")
		code, resp = post(ns, "gettrx", fixture("gettrx/customer-created.json"), http.Header{"Content-Type": {"application/json"}})
		expectRejected(code, resp, http.StatusUnauthorized, "unauthorized")

		By("an expired signed timestamp")
		body, header = sim(crmv1alpha1.ProviderGETTRX, gettrxSecret, fixture("gettrx/customer-created.json"), time.Now().Add(-10*time.Minute))
		code, resp = post(ns, "gettrx", body, header)
		expectRejected(code, resp, http.StatusUnauthorized, "timestamp")

		By("SmarterPay's own code for a bad signature")
		body, header = sim(crmv1alpha1.ProviderSmarterPay, map[string][]byte{"secret": []byte("wrong")}, fixture("smarterpay/customer-account-inserted.json"), time.Now())
		code, resp = post(ns, "smarterpay", body, header)
		expectRejected(code, resp, 498, "unauthorized")

		By("a wrong Basic password")
		body, header = sim(crmv1alpha1.ProviderPayway, map[string][]byte{"username": []byte("payway"), "password": []byte("guess")}, fixture("payway/account-changed-webhook.json"), time.Now())
		code, resp = post(ns, "payway", body, header)
		expectRejected(code, resp, http.StatusUnauthorized, "unauthorized")

		By("a Phasio payload encrypted and signed with another key")
		body, header = sim(crmv1alpha1.ProviderPhasio, phasioSecret(), fixture("phasio/customer-organisation-created.json"), time.Now())
		code, resp = post(ns, "phasio", body, header)
		expectRejected(code, resp, http.StatusUnauthorized, "unauthorized")

		By("a tampered Phasio ciphertext, re-signed so that only the GCM tag can tell")
		body, _ = sim(crmv1alpha1.ProviderPhasio, phasio, fixture("phasio/customer-organisation-created.json"), time.Now())
		var e string
		Expect(json.Unmarshal(body, &e)).To(Succeed())
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(e, "="))
		Expect(err).NotTo(HaveOccurred())
		raw[20] ^= 0x01
		tampered := base64.RawURLEncoding.EncodeToString(raw)
		code, resp = post(ns, "phasio", mustJSON("%q", tampered), http.Header{
			"Content-Type":       {"application/json"},
			"X-Phasio-Signature": {hmacHex(phasio["secret"], []byte(tampered))},
		})
		expectRejected(code, resp, http.StatusUnauthorized, "decrypt")

		By("a body over the limit")
		big := append([]byte(`{"events":[],"pad":"`), make([]byte, 1<<20)...)
		code, resp = post(ns, "smarterpay", big, http.Header{"Webhook-Signature": {hmacHex(smarterpaySecret["secret"], big)}})
		expectRejected(code, resp, http.StatusRequestEntityTooLarge, "body_too_large")

		By("malformed JSON, correctly signed")
		malformed := []byte(`{"events": [`)
		code, resp = post(ns, "smarterpay", malformed, http.Header{"Webhook-Signature": {hmacHex(smarterpaySecret["secret"], malformed)}})
		expectRejected(code, resp, http.StatusBadRequest, "malformed")

		By("a customer event without the provider's customer id")
		noID := []byte(`{"id":"evt_1","type":"customer.updated","created":"1733267345","data":{"object":{"name":"x"}}}`)
		body, header = sim(crmv1alpha1.ProviderGETTRX, gettrxSecret, noID, time.Now())
		code, resp = post(ns, "gettrx", body, header)
		expectRejected(code, resp, http.StatusBadRequest, "missing_field")
		Expect(string(resp)).To(ContainSubstring("data.object.id"))

		By("an unknown source")
		code, resp = post(ns, "nope", []byte("{}"), nil)
		expectRejected(code, resp, http.StatusNotFound, "unknown_source")

		By("a method other than POST")
		code, _ = do(http.MethodGet, baseURL+"/hooks/"+ns+"/gettrx", nil, nil)
		Expect(code).To(Equal(http.StatusMethodNotAllowed))

		list := &crmv1alpha1.CustomerList{}
		Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
		Expect(list.Items).To(BeEmpty(), "no rejected request wrote anything")
	})

	It("answers 503 for a suspended source or one whose Secret is missing, and 429 over the rate limit", func() {
		createSource(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret, func(s *crmv1alpha1.CustomerSource) {
			s.Spec.RateLimit = &crmv1alpha1.RateLimit{EventsPerSecond: 1, Burst: 2}
		})
		plaintext := mustJSON(`{"id":"evt_other","type":"payment.created","created":"1733267345","data":{"object":{"id":"pay_1"}}}`)
		var codes []int
		var retryAfter string
		for range 6 {
			body, header, err := registry.Lookup(crmv1alpha1.ProviderGETTRX).(interface {
				Prepare([]byte, map[string][]byte, time.Time) ([]byte, http.Header, error)
			}).Prepare(plaintext, gettrxSecret, time.Now())
			Expect(err).NotTo(HaveOccurred())
			req, _ := http.NewRequest(http.MethodPost, baseURL+"/hooks/"+ns+"/gettrx", bytes.NewReader(body))
			req.Header = header
			resp, err := http.DefaultClient.Do(req)
			Expect(err).NotTo(HaveOccurred())
			_ = resp.Body.Close()
			codes = append(codes, resp.StatusCode)
			if resp.StatusCode == http.StatusTooManyRequests {
				retryAfter = resp.Header.Get("Retry-After")
			}
		}
		Expect(codes).To(ContainElement(http.StatusNoContent), "another event type is valid but writes nothing")
		Expect(codes).To(ContainElement(http.StatusTooManyRequests))
		Expect(retryAfter).NotTo(BeEmpty())

		createSource(ns, "suspended", crmv1alpha1.ProviderGETTRX, gettrxSecret, func(s *crmv1alpha1.CustomerSource) { s.Spec.Suspend = true })
		code, resp := send(ns, "suspended", crmv1alpha1.ProviderGETTRX, gettrxSecret, fixture("gettrx/customer-created.json"))
		expectRejected(code, resp, http.StatusServiceUnavailable, "source_suspended")

		src := &crmv1alpha1.CustomerSource{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nosecret"},
			Spec:       crmv1alpha1.CustomerSourceSpec{Provider: crmv1alpha1.ProviderGETTRX, SecretRef: crmv1alpha1.SecretReference{Name: "absent"}},
		}
		Expect(k8sClient.Create(ctx, src)).To(Succeed())
		Eventually(func() int {
			code, _ := send(ns, "nosecret", crmv1alpha1.ProviderGETTRX, gettrxSecret, fixture("gettrx/customer-created.json"))
			return code
		}, 10*time.Second, 50*time.Millisecond).Should(Equal(http.StatusServiceUnavailable))
	})

	It("accepts the previous secret during a rotation, and a rotated Secret at once", func() {
		createSource(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret)
		rotated := map[string][]byte{"secret": []byte("gettrx-new-key-9876543210"), "previousSecret": gettrxSecret["secret"]}
		secret := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "gettrx-credentials"}, secret)).To(Succeed())
		secret.Data = rotated
		Expect(k8sClient.Update(ctx, secret)).To(Succeed())

		Eventually(func() int {
			code, _ := send(ns, "gettrx", crmv1alpha1.ProviderGETTRX, map[string][]byte{"secret": rotated["secret"]}, fixture("gettrx/customer-created.json"))
			return code
		}, 10*time.Second, 50*time.Millisecond).Should(Equal(http.StatusOK))
		code, body := send(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret, fixture("gettrx/customer-updated.json"))
		Expect(code).To(Equal(http.StatusOK), "the previous key still verifies: %s", body)

		secret.Data = map[string][]byte{"secret": rotated["secret"]}
		Expect(k8sClient.Update(ctx, secret)).To(Succeed())
		Eventually(func() int {
			code, _ := send(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret, fixture("gettrx/customer-updated.json"))
			return code
		}, 10*time.Second, 50*time.Millisecond).Should(Equal(http.StatusUnauthorized))
	})
})
