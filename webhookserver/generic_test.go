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
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stripe/stripe-go/v82/webhook"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
	"github.com/customer-operator/customer-operator/webhookserver/providers/generic"
)

// createRecipe creates a recipe of config/samples/generic, its Secret and its
// CustomerSource, in ns as they are written, and waits until it is served.
// It returns the Secret's signing value.
func createRecipe(ns, recipe string) (*crmv1alpha1.CustomerSource, string) {
	GinkgoHelper()
	raw, err := os.ReadFile(filepath.Join("..", "config", "samples", "generic", recipe+".yaml"))
	Expect(err).NotTo(HaveOccurred())
	var src *crmv1alpha1.CustomerSource
	var secret string
	for _, doc := range bytes.Split(raw, []byte("\n---\n")) {
		var meta metav1.TypeMeta
		Expect(yaml.Unmarshal(doc, &meta)).To(Succeed())
		switch meta.Kind {
		case "Secret":
			s := &corev1.Secret{}
			Expect(yaml.UnmarshalStrict(doc, s)).To(Succeed())
			s.Namespace = ns
			secret = s.StringData["secret"]
			Expect(k8sClient.Create(ctx, s)).To(Succeed())
		case "CustomerSource":
			src = &crmv1alpha1.CustomerSource{}
			Expect(yaml.UnmarshalStrict(doc, src)).To(Succeed())
			src.Namespace = ns
		}
	}
	Expect(src).NotTo(BeNil())
	Expect(k8sClient.Create(ctx, src)).To(Succeed())
	Eventually(func() int {
		code, _ := post(ns, src.Name, []byte("{"), http.Header{})
		return code
	}, 20*time.Second, 50*time.Millisecond).Should(Equal(http.StatusUnauthorized), "the server never served %s/%s", ns, src.Name)
	return src, secret
}

func genericCustomer(ns, externalID string) *crmv1alpha1.Customer {
	GinkgoHelper()
	c := &crmv1alpha1.Customer{}
	Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: CustomerName(crmv1alpha1.ProviderGeneric, externalID)}, c)).To(Succeed())
	return c
}

func expectApplied(code int, body []byte) {
	GinkgoHelper()
	Expect(code).To(Equal(http.StatusOK), string(body))
	var counts Counts
	Expect(json.Unmarshal(body, &counts)).To(Succeed())
	Expect(counts.Applied).To(Equal(1), string(body))
}

func utc(t time.Time) *metav1.Time { return &metav1.Time{Time: t.UTC().Truncate(time.Second)} }

var _ = Describe("a generic source", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("applies the Stripe recipe's customer.created, updated and deleted, signed by stripe-go", func() {
		src, secret := createRecipe(ns, "stripe")
		created := time.Now().Add(-time.Minute).Truncate(time.Second)
		send := func(id, typ string, at time.Time, object string) (int, []byte) {
			payload := fmt.Appendf(nil, `{"id":%q,"object":"event","created":%d,"livemode":false,"type":%q,"data":{"object":%s}}`,
				id, at.Unix(), typ, object)
			signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: time.Now()})
			return post(ns, src.Name, signed.Payload, http.Header{"Stripe-Signature": {signed.Header}, "Content-Type": {"application/json"}})
		}
		expectApplied(send("evt_created", "customer.created", created, fmt.Sprintf(`{"id":"cus_R1","object":"customer",
			"address":{"city":"Berlin","country":"DE","line1":"Unter den Linden 1","line2":null,"postal_code":"10117","state":null},
			"created":%d,"currency":"eur","description":"Key account","email":"ada@example.com","name":"Ada Lovelace",
			"phone":"+49 30 1234567","preferred_locales":["de-DE"],"shipping":null,"tax_exempt":"none"}`, created.Unix())))
		c := genericCustomer(ns, "cus_R1")
		Expect(c.Spec).To(BeComparableTo(crmv1alpha1.CustomerSpec{
			Provider: crmv1alpha1.ProviderGeneric, ExternalID: "cus_R1", DisplayName: "Ada Lovelace", Email: "ada@example.com",
			Phone: "+49 30 1234567", Language: "de-DE", TaxExempt: providers.BoolPtr(false), Lifecycle: crmv1alpha1.LifecycleActive,
			Addresses:         []crmv1alpha1.Address{{Type: "billing", Line1: "Unter den Linden 1", City: "Berlin", PostalCode: "10117", Country: "DE"}},
			ProviderCreatedAt: utc(created), ProviderUpdatedAt: utc(created),
			Attributes: map[string]string{"description": "Key account", "currency": "eur", "livemode": "false"},
		}))

		updated := created.Add(30 * time.Second)
		expectApplied(send("evt_updated", "customer.updated", updated, fmt.Sprintf(`{"id":"cus_R1","object":"customer","address":null,
			"created":%d,"email":"ada@lovelace.example","name":"Ada King","tax_exempt":"exempt"}`, created.Unix())))
		c = genericCustomer(ns, "cus_R1")
		Expect(c.Spec.DisplayName).To(Equal("Ada King"))
		Expect(c.Spec.Email).To(Equal("ada@lovelace.example"))
		Expect(c.Spec.TaxExempt).To(Equal(providers.BoolPtr(true)))
		Expect(c.Spec.Addresses).To(BeEmpty())

		expectApplied(send("evt_deleted", "customer.deleted", updated.Add(10*time.Second),
			`{"id":"cus_R1","object":"customer","deleted":true,"email":"ada@lovelace.example","name":"Ada King"}`))
		Expect(genericCustomer(ns, "cus_R1").Spec.Lifecycle).To(Equal(crmv1alpha1.LifecycleDeleted))

		// A signature with another secret is refused.
		payload := []byte(`{"id":"evt_x","type":"customer.created","created":1,"livemode":false,"data":{"object":{"id":"cus_X"}}}`)
		forged := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: "whsec_other", Timestamp: time.Now()})
		code, body := post(ns, src.Name, forged.Payload, http.Header{"Stripe-Signature": {forged.Header}})
		Expect(code).To(Equal(http.StatusUnauthorized), string(body))
	})

	It("applies the Shopify recipe's customers/create, update and delete, signed as Shopify documents", func() {
		src, secret := createRecipe(ns, "shopify")
		// Shopify: X-Shopify-Hmac-Sha256 is the Base64 HMAC-SHA256 of the raw
		// body with the app's client secret.
		send := func(topic, id string, at time.Time, payload string) (int, []byte) {
			m := hmac.New(sha256.New, []byte(secret))
			m.Write([]byte(payload))
			return post(ns, src.Name, []byte(payload), http.Header{
				"X-Shopify-Hmac-Sha256":  {base64.StdEncoding.EncodeToString(m.Sum(nil))},
				"X-Shopify-Topic":        {topic},
				"X-Shopify-Webhook-Id":   {id},
				"X-Shopify-Triggered-At": {at.UTC().Format(time.RFC3339)},
				"X-Shopify-Shop-Domain":  {"acme.myshopify.com"},
				"Content-Type":           {"application/json"},
			})
		}
		created := time.Now().Add(-time.Minute).Truncate(time.Second)
		customer := func(at time.Time, state, email string) string {
			return fmt.Sprintf(`{"id":706405506930370084,"email":%q,"created_at":%q,"updated_at":%q,"first_name":"Bob","last_name":"Norman",
				"state":%q,"locale":"en-CA","tags":"vip","currency":"CAD","tax_exempt":false,"phone":"+16136120707",
				"addresses":[{"id":1,"first_name":"Bob","last_name":"Norman","company":"Acme","address1":"Chestnut Street 92","address2":"",
				  "city":"Louisville","province":"Kentucky","country":"United States","zip":"40202","phone":"555-625-1199","name":"Bob Norman",
				  "province_code":"KY","country_code":"US","default":true}],
				"default_address":{"id":1,"company":"Acme","address1":"Chestnut Street 92","country_code":"US","default":true}}`,
				email, created.Format(time.RFC3339), at.Format(time.RFC3339), state)
		}
		expectApplied(send("customers/create", "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", created, customer(created, "enabled", "bob@example.com")))
		c := genericCustomer(ns, "706405506930370084")
		Expect(c.Spec).To(BeComparableTo(crmv1alpha1.CustomerSpec{
			Provider: crmv1alpha1.ProviderGeneric, ExternalID: "706405506930370084", DisplayName: "Bob Norman", CompanyName: "Acme",
			Email: "bob@example.com", Phone: "+16136120707", Language: "en-CA", Lifecycle: crmv1alpha1.LifecycleActive,
			TaxExempt: providers.BoolPtr(false),
			Addresses: []crmv1alpha1.Address{{Type: "billing", Name: "Bob Norman", Line1: "Chestnut Street 92", City: "Louisville",
				State: "Kentucky", PostalCode: "40202", Country: "US", Phone: "555-625-1199"}},
			ProviderCreatedAt: utc(created), ProviderUpdatedAt: utc(created),
			Attributes: map[string]string{"tags": "vip", "currency": "CAD", "shop": "acme.myshopify.com"},
		}))

		updated := created.Add(20 * time.Second)
		expectApplied(send("customers/update", "1f1e2d3c-0000-4b37-8a5f-bf7d70bcd043", updated, customer(updated, "disabled", "bob@norman.example")))
		c = genericCustomer(ns, "706405506930370084")
		Expect(c.Spec.Email).To(Equal("bob@norman.example"))
		Expect(c.Spec.Lifecycle).To(Equal(crmv1alpha1.LifecycleInactive))

		expectApplied(send("customers/delete", "9a8b7c6d-0000-4b37-8a5f-bf7d70bcd043", updated.Add(10*time.Second), `{"id":706405506930370084}`))
		Expect(genericCustomer(ns, "706405506930370084").Spec.Lifecycle).To(Equal(crmv1alpha1.LifecycleDeleted))
	})

	It("applies the Standard Webhooks recipe, signed by the Standard Webhooks library", func() {
		src, secret := createRecipe(ns, "standard-webhooks")
		wh, err := standardwebhooks.NewWebhook(secret)
		Expect(err).NotTo(HaveOccurred())
		at := time.Now().Add(-time.Minute).Truncate(time.Second)
		payload := fmt.Appendf(nil, `{"type":"customer.created","timestamp":%q,"data":{"id":"acct_77","name":"Globex","company":"Globex Corporation",
			"email":"billing@globex.example","phone":"+1 555 0100","vat_id":"DE123456789","language":"de","status":"active",
			"contacts":[{"first_name":"Hank","last_name":"Scorpio","email":"hank@globex.example"}],"metadata":{"plan":"enterprise"}}}`,
			at.Format(time.RFC3339Nano))
		sent := time.Now()
		sig, err := wh.Sign("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", sent, payload)
		Expect(err).NotTo(HaveOccurred())
		header := http.Header{
			"Webhook-Id":        {"msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"},
			"Webhook-Timestamp": {fmt.Sprint(sent.Unix())},
			"Webhook-Signature": {sig},
		}
		// The library verifies what it signed, so the headers are its own.
		Expect(wh.Verify(payload, header)).To(Succeed())
		expectApplied(post(ns, src.Name, payload, header))
		Expect(genericCustomer(ns, "acct_77").Spec).To(BeComparableTo(crmv1alpha1.CustomerSpec{
			Provider: crmv1alpha1.ProviderGeneric, ExternalID: "acct_77", DisplayName: "Globex", CompanyName: "Globex Corporation",
			Email: "billing@globex.example", Phone: "+1 555 0100", TaxID: "DE123456789", Language: "de", Lifecycle: crmv1alpha1.LifecycleActive,
			Contacts:          []crmv1alpha1.Contact{{FirstName: "Hank", LastName: "Scorpio", Email: "hank@globex.example"}},
			ProviderUpdatedAt: utc(at),
			Attributes:        map[string]string{"plan": "enterprise"},
		}))

		// The same delivery again is a duplicate; a changed body is refused.
		code, body := post(ns, src.Name, payload, header)
		Expect(code).To(Equal(http.StatusOK), string(body))
		Expect(string(body)).To(ContainSubstring(`"duplicate":1`))
		code, body = post(ns, src.Name, append(payload, ' '), header)
		Expect(code).To(Equal(http.StatusUnauthorized), string(body))
	})

	It("applies the GitHub-style recipe, signed as GitHub documents X-Hub-Signature-256", func() {
		src, secret := createRecipe(ns, "github")
		at := time.Now().Add(-time.Minute).Truncate(time.Second)
		payload := fmt.Appendf(nil, `{"action":"purchased","effective_date":%q,"sender":{"login":"octocat"},
			"marketplace_purchase":{"account":{"type":"Organization","id":18404719,"node_id":"MDEyOk9yZ2FuaXphdGlvbjE4NDA0NzE5",
			"login":"octo-org","organization_billing_email":"billing@octo.example"},"billing_cycle":"monthly","unit_count":1,
			"on_free_trial":false,"plan":{"id":435,"name":"Pro","monthly_price_in_cents":1099}}}`, at.Format(time.RFC3339))
		// GitHub: "sha256=" and the hex HMAC-SHA256 of the body with the secret.
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(payload)
		header := http.Header{
			"X-Hub-Signature-256": {"sha256=" + hex.EncodeToString(m.Sum(nil))},
			"X-Github-Event":      {"marketplace_purchase"},
			"X-Github-Delivery":   {"72d3162e-cc78-11e3-81ab-4c9367dc0958"},
		}
		expectApplied(post(ns, src.Name, payload, header))
		Expect(genericCustomer(ns, "18404719").Spec).To(BeComparableTo(crmv1alpha1.CustomerSpec{
			Provider: crmv1alpha1.ProviderGeneric, ExternalID: "18404719", DisplayName: "octo-org", Email: "billing@octo.example",
			Lifecycle: crmv1alpha1.LifecycleActive, ProviderUpdatedAt: utc(at),
			Attributes: map[string]string{"accountType": "Organization", "plan": "Pro", "billingCycle": "monthly"},
		}))
		header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(make([]byte, 32)))
		code, body := post(ns, src.Name, payload, header)
		Expect(code).To(Equal(http.StatusUnauthorized), string(body))
	})

	It("rejects the one event of a batch an expression fails on, and applies the others", func() {
		createSource(ns, "batch", crmv1alpha1.ProviderGeneric, map[string][]byte{"token": []byte("batch-token")}, func(src *crmv1alpha1.CustomerSource) {
			src.Spec.Generic = &crmv1alpha1.GenericSource{
				Authentication: crmv1alpha1.GenericAuthentication{Bearer: &crmv1alpha1.HeaderAuthentication{}},
				Events:         crmv1alpha1.GenericEvents{Items: "body.events", ID: "event.id", Time: "event.at"},
				Mapping: crmv1alpha1.GenericMapping{ExternalID: "event.customer",
					Attributes: "{'share': string(100 / event.parts)}"},
			}
		})
		at := time.Now().Add(-time.Minute).Unix()
		payload := fmt.Appendf(nil, `{"events":[{"id":"e1","customer":"c1","at":%d,"parts":4},{"id":"e2","customer":"c2","at":%d,"parts":0},{"id":"e3","customer":"c3","at":%d,"parts":5}]}`, at, at, at)
		code, body := post(ns, "batch", payload, http.Header{"Authorization": {"Bearer batch-token"}})
		Expect(code).To(Equal(http.StatusOK), string(body))
		var counts Counts
		Expect(json.Unmarshal(body, &counts)).To(Succeed())
		Expect(counts.Applied).To(Equal(2))
		Expect(counts.RejectedEvents).To(HaveLen(1))
		rej := counts.RejectedEvents[0]
		Expect(rej.ID).To(Equal("e2"))
		Expect(rej.Reason).To(Equal(generic.ReasonExpression))
		Expect(rej.Field).To(Equal("spec.generic.mapping.attributes"))
		Expect(rej.Message).To(ContainSubstring("division by zero"))
		Expect(testutil.ToFloat64(eventsTotal.WithLabelValues("generic", ns+"/batch", OutcomeRejected))).To(Equal(1.0))
		Expect(genericCustomer(ns, "c1").Spec.Attributes).To(Equal(map[string]string{"share": "25"}))
		Expect(genericCustomer(ns, "c3").Spec.Attributes).To(Equal(map[string]string{"share": "20"}))
		Eventually(func() []eventsv1.Event {
			return sourceEvents(ns, "batch", EventReasonInvalidEvent)
		}, 10*time.Second, 100*time.Millisecond).Should(ContainElement(And(
			HaveField("Type", corev1.EventTypeWarning),
			HaveField("Note", And(ContainSubstring(`"e2"`), ContainSubstring("field spec.generic.mapping.attributes"), ContainSubstring("division by zero"))),
		)))
	})

	It("serves nothing for a source whose expression does not compile: 503 source_not_ready", func() {
		createSource(ns, "broken", crmv1alpha1.ProviderGeneric, map[string][]byte{"token": []byte("t")}, func(src *crmv1alpha1.CustomerSource) {
			src.Spec.Generic = &crmv1alpha1.GenericSource{
				Authentication: crmv1alpha1.GenericAuthentication{Bearer: &crmv1alpha1.HeaderAuthentication{}},
				Events:         crmv1alpha1.GenericEvents{ID: "body.id"},
				Mapping:        crmv1alpha1.GenericMapping{ExternalID: "body.customer +"},
			}
		})
		code, body := post(ns, "broken", []byte(`{"id":"e1","customer":"c1"}`), http.Header{"Authorization": {"Bearer t"}})
		Expect(code).To(Equal(http.StatusServiceUnavailable), string(body))
		Expect(string(body)).To(ContainSubstring(`"reason":"source_not_ready"`))
	})
})
