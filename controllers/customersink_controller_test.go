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
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/test/argocd"
)

// createSignedSink creates a Secret holding secret and a standard-webhooks
// CustomerSink delivering to rc, and waits until the sink is Ready.
func createSignedSink(ns, name string, rc *receiver, secret string, mutate func(*crmv1alpha1.CustomerSinkSpec)) *crmv1alpha1.CustomerSink {
	GinkgoHelper()
	createSecret(ns, name+"-secret", map[string]string{"secret": secret})
	sink := &crmv1alpha1.CustomerSink{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: crmv1alpha1.CustomerSinkSpec{
			URL:       rc.URL(),
			Format:    crmv1alpha1.FormatStandardWebhooks,
			SecretRef: &crmv1alpha1.SecretReference{Name: name + "-secret"},
			Timeout:   &metav1.Duration{Duration: 5 * time.Second},
		},
	}
	if mutate != nil {
		mutate(&sink.Spec)
	}
	Expect(k8sClient.Create(ctx, sink)).To(Succeed())
	expectSinkReady(ns, name, metav1.ConditionTrue, crmv1alpha1.ReasonValid)
	return sink
}

// createSinkTo creates a CustomerSink delivering to url, signed with the
// Secret secretName, and does not wait for it.
func createSinkTo(ns, name, url, secretName string) *crmv1alpha1.CustomerSink {
	GinkgoHelper()
	sink := &crmv1alpha1.CustomerSink{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       crmv1alpha1.CustomerSinkSpec{URL: url, SecretRef: &crmv1alpha1.SecretReference{Name: secretName}},
	}
	Expect(k8sClient.Create(ctx, sink)).To(Succeed())
	return sink
}

// expectSinkReady waits for a sink's Ready condition at its current generation.
func expectSinkReady(ns, name string, status metav1.ConditionStatus, reason string, inMessage ...string) {
	GinkgoHelper()
	expectReadyOf(func(g Gomega) (int64, int64, []metav1.Condition) {
		s := getSink(g, ns, name)
		return s.Generation, s.Status.ObservedGeneration, s.Status.Conditions
	}, status, reason, inMessage...)
}

// expectSynced waits until a Customer's current generation is delivered to
// exactly the named sinks, and returns the Customer.
func expectSynced(ns, name string, sinks ...string) *crmv1alpha1.Customer {
	GinkgoHelper()
	var c *crmv1alpha1.Customer
	Eventually(func(g Gomega) {
		c = getCustomer(g, ns, name)
		g.Expect(c.Status.ObservedGeneration).To(Equal(c.Generation))
		expectCondition(g, c.Status.Conditions, c.Generation, crmv1alpha1.ConditionReady, metav1.ConditionTrue, crmv1alpha1.ReasonValid)
		reason := crmv1alpha1.ReasonSynced
		if len(sinks) == 0 {
			reason = crmv1alpha1.ReasonNoSinks
		}
		expectCondition(g, c.Status.Conditions, c.Generation, crmv1alpha1.ConditionSynced, metav1.ConditionTrue, reason)
		var names []string
		for _, e := range c.Status.Sinks {
			names = append(names, e.Name)
			g.Expect(e.SyncedGeneration).To(Equal(c.Generation), "sink %s", e.Name)
			g.Expect(e.LastSyncTime).NotTo(BeNil(), "sink %s", e.Name)
			g.Expect(e.ConsecutiveFailures).To(BeZero(), "sink %s", e.Name)
			g.Expect(e.LastError).To(BeEmpty(), "sink %s", e.Name)
		}
		if len(sinks) == 0 {
			g.Expect(names).To(BeEmpty())
		} else {
			g.Expect(names).To(ConsistOf(sinks))
		}
	}).Should(Succeed(), func() string {
		if c == nil {
			return "Customer " + name
		}
		st, _ := json.Marshal(c.Status)
		return fmt.Sprintf("Customer %s (uid %s, generation %d): status %s", name, c.UID, c.Generation, st)
	})
	return c
}

func expectSinkCounts(ns, name string, selected, synced int32) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		s := getSink(g, ns, name)
		g.Expect(s.Status.Selected).To(Equal(selected), "selected")
		g.Expect(s.Status.Synced).To(Equal(synced), "synced")
	}).Should(Succeed())
}

func eventID(c *crmv1alpha1.Customer) string {
	return string(c.UID) + "." + strconv.FormatInt(c.Generation, 10)
}

var _ = Describe("CustomerSink delivery", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("delivers each generation of a selected Customer, signed, as Standard Webhooks, and counts it", func() {
		secret := newWebhookSecret()
		rc := newReceiver(secret)
		createSignedSink(ns, "erp", rc, secret, func(s *crmv1alpha1.CustomerSinkSpec) {
			s.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"region": "emea"}}
		})

		c := newCustomer(ns, "gettrx-cus-42", crmv1alpha1.CustomerSpec{
			Provider:    crmv1alpha1.ProviderGETTRX,
			ExternalID:  "cus_42",
			DisplayName: "Müller & Söhne <GmbH>",
			Email:       "einkauf@mueller.example",
			Addresses:   []crmv1alpha1.Address{{Type: crmv1alpha1.AddressBilling, City: "Köln", Country: "DE"}},
		})
		c.Labels = map[string]string{"region": "emea"}
		c.Annotations = map[string]string{crmv1alpha1.AnnotationLastEventID: "evt_internal"}
		Expect(k8sClient.Create(ctx, c)).To(Succeed())
		other := newCustomer(ns, "not-selected", crmv1alpha1.CustomerSpec{DisplayName: "Elsewhere"})
		other.Labels = map[string]string{"region": "apac"}
		Expect(k8sClient.Create(ctx, other)).To(Succeed())

		got := expectSynced(ns, c.Name, "erp")
		Expect(got.Generation).To(BeNumerically("==", 1))
		Expect(got.Status.Sinks[0].LastSyncTime.Time).To(BeTemporally("~", time.Now(), time.Minute))
		Eventually(func(g Gomega) {
			g.Expect(kstatusOf(g, "Customer", ns, c.Name)).To(Equal(kstatus.CurrentStatus))
		}).Should(Succeed())
		expectSynced(ns, other.Name)
		expectSinkCounts(ns, "erp", 1, 1)

		acked := rc.acked()
		Expect(acked).To(HaveKey(eventID(got)))
		Expect(rc.ackedUIDs()).To(Equal(map[string]bool{string(got.UID): true}), "only the selected Customer is delivered")
		rec := acked[eventID(got)]
		Expect(rec.Valid[secret]).To(BeTrue(), "signature does not verify")
		Expect(rec.ContentType).To(HavePrefix("application/json"))
		ts, err := strconv.ParseInt(rec.Timestamp, 10, 64)
		Expect(err).NotTo(HaveOccurred())
		Expect(time.Unix(ts, 0)).To(BeTemporally("~", rec.At, 10*time.Second))

		var raw map[string]json.RawMessage
		Expect(json.Unmarshal(rec.Body, &raw)).To(Succeed())
		Expect(raw).To(HaveLen(3), "body: %s", rec.Body)
		var data map[string]json.RawMessage
		Expect(json.Unmarshal(raw["data"], &data)).To(Succeed())
		Expect(data).To(HaveLen(4), "data carries apiVersion, kind, metadata and spec only: %s", raw["data"])
		Expect(string(rec.Body)).NotTo(ContainSubstring("evt_internal"), "annotations must not leak to sinks")
		Expect(string(rec.Body)).NotTo(ContainSubstring("managedFields"))

		ev := rec.standardWebhook()
		Expect(ev.Type).To(Equal("customer.upserted"))
		evTime, err := time.Parse(time.RFC3339, ev.Timestamp)
		Expect(err).NotTo(HaveOccurred(), "timestamp %q", ev.Timestamp)
		Expect(evTime).To(BeTemporally("~", time.Now(), time.Minute))
		Expect(ev.Data.APIVersion).To(Equal("crm.customer-operator.io/v1alpha1"))
		Expect(ev.Data.Kind).To(Equal("Customer"))
		Expect(ev.Data.Metadata.Name).To(Equal(c.Name))
		Expect(ev.Data.Metadata.Namespace).To(Equal(ns))
		Expect(ev.Data.Metadata.UID).To(Equal(string(got.UID)))
		Expect(ev.Data.Metadata.Generation).To(Equal(got.Generation))
		Expect(ev.Data.Metadata.Labels).To(Equal(map[string]string{"region": "emea"}))
		Expect(ev.Data.Spec).To(Equal(got.Spec))
		Expect(string(rec.Body)).To(ContainSubstring("Müller & Söhne <GmbH>"))

		By("changing the spec")
		updated := updateCustomer(ns, c.Name, func(c *crmv1alpha1.Customer) { c.Spec.DisplayName = "Müller AG" })
		Expect(updated.Generation).To(BeNumerically("==", 2))
		got = expectSynced(ns, c.Name, "erp")
		Expect(got.Generation).To(BeNumerically("==", 2))
		acked = rc.acked()
		Expect(acked).To(HaveKey(eventID(got)))
		rec = acked[eventID(got)]
		Expect(rec.Valid[secret]).To(BeTrue())
		ev = rec.standardWebhook()
		Expect(ev.Data.Metadata.Generation).To(BeNumerically("==", 2))
		Expect(ev.Data.Spec.DisplayName).To(Equal("Müller AG"))
		expectSinkCounts(ns, "erp", 1, 1)
	})

	It("reports a sink's Secret problems and suspension, and holds deliveries until the sink can serve", func() {
		secret := newWebhookSecret()
		rc := newReceiver(secret)
		createSinkTo(ns, "pending", rc.URL(), "pending-secret")
		expectSinkReady(ns, "pending", metav1.ConditionFalse, crmv1alpha1.ReasonSecretNotFound, "pending-secret")
		Eventually(func(g Gomega) {
			s := getSink(g, ns, "pending")
			g.Expect(s.Spec.Timeout).NotTo(BeNil(), "timeout is defaulted")
			g.Expect(s.Spec.Timeout.Duration).To(Equal(10 * time.Second))
			g.Expect(s.Spec.Format).To(Equal(crmv1alpha1.FormatStandardWebhooks))
		}).Should(Succeed())

		c := newCustomer(ns, "waiting", crmv1alpha1.CustomerSpec{DisplayName: "Waiting"})
		Expect(k8sClient.Create(ctx, c)).To(Succeed())
		Eventually(func(g Gomega) {
			got := getCustomer(g, ns, c.Name)
			synced := expectCondition(g, got.Status.Conditions, got.Generation, crmv1alpha1.ConditionSynced, metav1.ConditionFalse, crmv1alpha1.ReasonSinkNotReady)
			g.Expect(synced.Message).To(ContainSubstring("pending"))
			// The sink is Failed until a person adds its Secret; nothing about
			// the Customer is under way, so it is not kept InProgress.
			g.Expect(kstatusOf(g, "CustomerSink", ns, "pending")).To(Equal(kstatus.FailedStatus))
			g.Expect(kstatusOf(g, "Customer", ns, c.Name)).To(Equal(kstatus.CurrentStatus))
			g.Expect(argoHealthOf(g, "CustomerSink", ns, "pending")).To(Equal(argocd.Health{
				Status: "Degraded", Message: `Secret "pending-secret" not found`}))
			g.Expect(argoHealthOf(g, "Customer", ns, c.Name)).To(Equal(argocd.Health{
				Status: "Degraded", Message: "sink(s) not ready: pending (SecretNotFound)"}))
		}).Should(Succeed())

		By("creating a Secret whose key is too short")
		short := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pending-secret"},
			StringData: map[string]string{"secret": "whsec_" + "c2hvcnQtc2hvcnQtc2hvcnQ="}, // 17 bytes
		}
		Expect(k8sClient.Create(ctx, short)).To(Succeed())
		expectSinkReady(ns, "pending", metav1.ConditionFalse, crmv1alpha1.ReasonSecretInvalid, `"secret"`, "24")
		Expect(rc.all()).To(BeEmpty())

		By("fixing the Secret")
		updateObject(ns, "pending-secret", func(s *corev1.Secret) {
			s.Data = map[string][]byte{"secret": []byte(secret)}
		})
		expectSinkReady(ns, "pending", metav1.ConditionTrue, crmv1alpha1.ReasonValid)
		got := expectSynced(ns, c.Name, "pending")
		Expect(rc.acked()).To(HaveKey(eventID(got)))

		By("suspending the sink")
		updateSink(ns, "pending", func(s *crmv1alpha1.CustomerSink) { s.Spec.Suspend = true })
		expectSinkReady(ns, "pending", metav1.ConditionTrue, crmv1alpha1.ReasonSuspended)
		Eventually(func(g Gomega) {
			g.Expect(kstatusOf(g, "CustomerSink", ns, "pending")).To(Equal(kstatus.CurrentStatus))
		}).Should(Succeed())
		updated := updateCustomer(ns, c.Name, func(c *crmv1alpha1.Customer) { c.Spec.DisplayName = "Waiting, still" })
		Eventually(func(g Gomega) {
			got := getCustomer(g, ns, c.Name)
			g.Expect(got.Generation).To(Equal(updated.Generation))
			expectCondition(g, got.Status.Conditions, got.Generation, crmv1alpha1.ConditionSynced, metav1.ConditionFalse, crmv1alpha1.ReasonSinkNotReady)
			g.Expect(kstatusOf(g, "Customer", ns, c.Name)).To(Equal(kstatus.CurrentStatus))
			g.Expect(argoHealthOf(g, "CustomerSink", ns, "pending").Status).To(Equal("Suspended"))
		}).Should(Succeed())
		Expect(rc.acked()).NotTo(HaveKey(eventID(updated)), "a suspended sink received a delivery")

		By("resuming the sink")
		updateSink(ns, "pending", func(s *crmv1alpha1.CustomerSink) { s.Spec.Suspend = false })
		expectSinkReady(ns, "pending", metav1.ConditionTrue, crmv1alpha1.ReasonValid)
		got = expectSynced(ns, c.Name, "pending")
		Expect(got.Generation).To(Equal(updated.Generation))
		Expect(rc.acked()).To(HaveKey(eventID(got)))
	})

	It("brings every Customer to its final generation through a flaky, slow sink, each generation as it was written", func() {
		secret := newWebhookSecret()
		rc := newReceiver(secret)
		rc.setResponder(func(w http.ResponseWriter, r *http.Request, _ *received, n int) int {
			switch {
			case n%3 == 0:
				return http.StatusInternalServerError
			case n%7 == 1:
				// Slower than the sink's timeout: the sender gives up first, so
				// this is no acknowledgement.
				select {
				case <-r.Context().Done():
				case <-time.After(3 * time.Second):
				}
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		})
		createSignedSink(ns, "flaky", rc, secret, func(s *crmv1alpha1.CustomerSinkSpec) {
			s.Timeout = &metav1.Duration{Duration: time.Second}
		})

		const count = 30
		written := map[string]map[int64]string{} // Customer name -> generation -> displayName
		names := make([]string, count)
		for i := range count {
			names[i] = fmt.Sprintf("cust-%02d", i)
			c := newCustomer(ns, names[i], crmv1alpha1.CustomerSpec{DisplayName: names[i] + " v1"})
			Expect(k8sClient.Create(ctx, c)).To(Succeed())
			written[names[i]] = map[int64]string{c.Generation: c.Spec.DisplayName}
		}
		for round := 2; round <= 3; round++ {
			for _, name := range names {
				c := updateCustomer(ns, name, func(c *crmv1alpha1.Customer) {
					c.Spec.DisplayName = fmt.Sprintf("%s v%d", name, round)
				})
				written[name][c.Generation] = c.Spec.DisplayName
			}
		}

		final := map[string]*crmv1alpha1.Customer{} // uid -> Customer
		for _, name := range names {
			c := expectSynced(ns, name, "flaky")
			Expect(c.Generation).To(BeNumerically("==", 3))
			Expect(c.Spec.DisplayName).To(Equal(name + " v3"))
			final[string(c.UID)] = c
		}
		expectSinkCounts(ns, "flaky", count, count)

		var failed int
		for _, r := range rc.all() {
			if !r.acked() {
				failed++
			}
		}
		Expect(failed).To(BeNumerically(">", count/3), "the sink was not flaky enough to test anything")

		latest := map[string]int64{} // uid -> highest acknowledged generation
		for id, r := range rc.acked() {
			Expect(r.Valid[secret]).To(BeTrue(), "delivery %s does not verify", id)
			uid, genStr, ok := strings.Cut(id, ".")
			Expect(ok).To(BeTrue(), "webhook-id %q is not {uid}.{generation}", id)
			gen, err := strconv.ParseInt(genStr, 10, 64)
			Expect(err).NotTo(HaveOccurred(), "webhook-id %q", id)
			c, ok := final[uid]
			Expect(ok).To(BeTrue(), "delivery %s is of no Customer of this test", id)
			ev := r.standardWebhook()
			Expect(ev.Data.Metadata.UID).To(Equal(uid))
			Expect(ev.Data.Metadata.Generation).To(Equal(gen), "delivery %s", id)
			want, ok := written[c.Name][gen]
			Expect(ok).To(BeTrue(), "delivery %s carries generation %d, which was never written", id, gen)
			Expect(ev.Data.Spec.DisplayName).To(Equal(want), "delivery %s", id)
			latest[uid] = max(latest[uid], gen)
		}
		want := map[string]int64{}
		for uid, c := range final {
			want[uid] = c.Generation
		}
		Expect(latest).To(Equal(want), "the receiver's latest acknowledged generation of each Customer")
	})

	It("waits as long as a 503's Retry-After asks, then delivers", func() {
		secret := newWebhookSecret()
		rc := newReceiver(secret)
		rc.setResponder(func(w http.ResponseWriter, _ *http.Request, _ *received, n int) int {
			if n == 0 {
				w.Header().Set("Retry-After", "1")
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		})
		createSignedSink(ns, "busy", rc, secret, nil)
		c := newCustomer(ns, "patient", crmv1alpha1.CustomerSpec{DisplayName: "Patient"})
		Expect(k8sClient.Create(ctx, c)).To(Succeed())
		got := expectSynced(ns, c.Name, "busy")

		reqs := rc.all()
		Expect(len(reqs)).To(BeNumerically(">=", 2))
		Expect(reqs[0].Status).To(Equal(http.StatusServiceUnavailable))
		Expect(reqs[1].acked()).To(BeTrue())
		Expect(reqs[1].ID).To(Equal(eventID(got)))
		Expect(reqs[0].ID).To(Equal(reqs[1].ID), "a retry keeps its webhook-id")
		Expect(reqs[1].At.Sub(reqs[0].At)).To(BeNumerically(">=", 950*time.Millisecond),
			"the retry came before Retry-After allowed")
	})

	It("stops delivering to a sink whose endpoint answers 410 Gone, until its url changes", func() {
		secret := newWebhookSecret()
		gone := newReceiver(secret)
		gone.setResponder(func(http.ResponseWriter, *http.Request, *received, int) int { return http.StatusGone })
		createSignedSink(ns, "legacy", gone, secret, nil)

		names := []string{"first", "second"}
		for _, n := range names {
			Expect(k8sClient.Create(ctx, newCustomer(ns, n, crmv1alpha1.CustomerSpec{DisplayName: n}))).To(Succeed())
		}
		expectSinkReady(ns, "legacy", metav1.ConditionFalse, crmv1alpha1.ReasonEndpointGone, "410")
		for _, n := range names {
			Eventually(func(g Gomega) {
				got := getCustomer(g, ns, n)
				synced := expectCondition(g, got.Status.Conditions, got.Generation, crmv1alpha1.ConditionSynced, metav1.ConditionFalse, crmv1alpha1.ReasonSinkNotReady)
				g.Expect(synced.Message).To(ContainSubstring("legacy"))
				g.Expect(synced.Message).To(ContainSubstring(crmv1alpha1.ReasonEndpointGone))
			}).Should(Succeed(), "Customer %s", n)
		}
		seen := len(gone.all())
		Expect(seen).To(BeNumerically(">=", 1))
		// At most a delivery per Customer that was already under way; retries
		// (every 50ms at first) would exceed that.
		Consistently(func() int { return len(gone.all()) }).WithTimeout(time.Second).Should(BeNumerically("<=", seen+len(names)),
			"deliveries went on to an endpoint that answered 410 Gone")

		By("pointing the sink at a new endpoint")
		rc := newReceiver(secret)
		updateSink(ns, "legacy", func(s *crmv1alpha1.CustomerSink) { s.Spec.URL = rc.URL() })
		expectSinkReady(ns, "legacy", metav1.ConditionTrue, crmv1alpha1.ReasonValid)
		for _, n := range names {
			got := expectSynced(ns, n, "legacy")
			Expect(rc.acked()).To(HaveKey(eventID(got)))
		}
		expectSinkCounts(ns, "legacy", 2, 2)
	})

	It("signs with both secrets during a rotation, so receivers holding either one accept", func() {
		oldSecret, newSecret := newWebhookSecret(), newWebhookSecret()
		rc := newReceiver(oldSecret)
		createSignedSink(ns, "rotating", rc, oldSecret, nil)
		c := newCustomer(ns, "rotated", crmv1alpha1.CustomerSpec{DisplayName: "Before rotation"})
		Expect(k8sClient.Create(ctx, c)).To(Succeed())
		got := expectSynced(ns, c.Name, "rotating")
		Expect(rc.acked()[eventID(got)].Valid[oldSecret]).To(BeTrue())

		By("rotating: the new secret becomes current, the old one previous")
		// From now on the receiver refuses what the new secret does not sign, and
		// checks every request against the old secret as well.
		rc.setSecrets([]string{oldSecret, newSecret}, []string{newSecret})
		updateObject(ns, "rotating-secret", func(s *corev1.Secret) {
			s.Data = map[string][]byte{"secret": []byte(newSecret), "previousSecret": []byte(oldSecret)}
		})
		updateCustomer(ns, c.Name, func(c *crmv1alpha1.Customer) { c.Spec.DisplayName = "After rotation" })
		got = expectSynced(ns, c.Name, "rotating")
		Expect(got.Generation).To(BeNumerically("==", 2))

		rec, ok := rc.acked()[eventID(got)]
		Expect(ok).To(BeTrue())
		Expect(rec.Valid[newSecret]).To(BeTrue(), "a receiver knowing only the new secret rejects it")
		Expect(rec.Valid[oldSecret]).To(BeTrue(), "a receiver knowing only the old secret rejects it")
		Expect(strings.Fields(rec.Header.Get("webhook-signature"))).To(HaveLen(2))
	})

	It("delivers to each of two sinks exactly the Customers it selects, by label and by provider", func() {
		goldSecret, gettrxSecret := newWebhookSecret(), newWebhookSecret()
		gold, gettrx := newReceiver(goldSecret), newReceiver(gettrxSecret)
		createSignedSink(ns, "gold", gold, goldSecret, func(s *crmv1alpha1.CustomerSinkSpec) {
			s.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "gold"}}
		})
		createSignedSink(ns, "gettrx-only", gettrx, gettrxSecret, func(s *crmv1alpha1.CustomerSinkSpec) {
			s.Providers = []crmv1alpha1.Provider{crmv1alpha1.ProviderGETTRX}
		})

		mk := func(name string, tier string, provider crmv1alpha1.Provider) *crmv1alpha1.Customer {
			GinkgoHelper()
			c := newCustomer(ns, name, crmv1alpha1.CustomerSpec{DisplayName: name, Provider: provider})
			if provider != "" {
				c.Spec.ExternalID = name
			}
			if tier != "" {
				c.Labels = map[string]string{"tier": tier}
			}
			Expect(k8sClient.Create(ctx, c)).To(Succeed())
			return c
		}
		goldManual := mk("gold-manual", "gold", "")
		gettrxPlain := mk("gettrx-plain", "", crmv1alpha1.ProviderGETTRX)
		goldGettrx := mk("gold-gettrx", "gold", crmv1alpha1.ProviderGETTRX)
		silverPhasio := mk("silver-phasio", "silver", crmv1alpha1.ProviderPhasio)

		expectSynced(ns, goldManual.Name, "gold")
		expectSynced(ns, gettrxPlain.Name, "gettrx-only")
		expectSynced(ns, goldGettrx.Name, "gold", "gettrx-only")
		expectSynced(ns, silverPhasio.Name)
		expectSinkCounts(ns, "gold", 2, 2)
		expectSinkCounts(ns, "gettrx-only", 2, 2)
		Expect(gold.ackedUIDs()).To(Equal(map[string]bool{string(goldManual.UID): true, string(goldGettrx.UID): true}))
		Expect(gettrx.ackedUIDs()).To(Equal(map[string]bool{string(gettrxPlain.UID): true, string(goldGettrx.UID): true}))

		By("relabelling a Customer out of the gold sink's selector")
		updateCustomer(ns, goldGettrx.Name, func(c *crmv1alpha1.Customer) { c.Labels["tier"] = "silver" })
		expectSynced(ns, goldGettrx.Name, "gettrx-only")
		expectSinkCounts(ns, "gold", 1, 1)
		expectSinkCounts(ns, "gettrx-only", 2, 2)
	})

	It("delivers CloudEvents 1.0 in structured JSON", func() {
		rc := newReceiver()
		sink := &crmv1alpha1.CustomerSink{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "events"},
			Spec:       crmv1alpha1.CustomerSinkSpec{URL: rc.URL(), Format: crmv1alpha1.FormatCloudEvents},
		}
		Expect(k8sClient.Create(ctx, sink)).To(Succeed())
		expectSinkReady(ns, "events", metav1.ConditionTrue, crmv1alpha1.ReasonValid)

		c := newCustomer(ns, "payway-77", crmv1alpha1.CustomerSpec{
			Provider: crmv1alpha1.ProviderPayway, ExternalID: "77", DisplayName: "Cloud Seven", Email: "seven@example.com",
		})
		c.Labels = map[string]string{"crm.customer-operator.io/provider": "payway"}
		Expect(k8sClient.Create(ctx, c)).To(Succeed())
		got := expectSynced(ns, c.Name, "events")

		acked := rc.acked()
		Expect(acked).To(HaveKey(eventID(got)))
		rec := acked[eventID(got)]
		Expect(rec.ContentType).To(HavePrefix("application/cloudevents+json"))
		Expect(rec.Header.Get("webhook-signature")).To(BeEmpty(), "a sink without a secret cannot sign")
		var ce ceEvent
		Expect(json.Unmarshal(rec.Body, &ce)).To(Succeed(), "body: %s", rec.Body)
		Expect(ce.SpecVersion).To(Equal("1.0"))
		Expect(ce.ID).To(Equal(eventID(got)))
		Expect(ce.Source).NotTo(BeEmpty())
		Expect(ce.Source).To(ContainSubstring(ns))
		Expect(ce.Type).To(Equal("io.customer-operator.crm.customer.upserted"))
		Expect(ce.Subject).To(Equal(c.Name))
		ceTime, err := time.Parse(time.RFC3339, ce.Time)
		Expect(err).NotTo(HaveOccurred(), "time %q", ce.Time)
		Expect(ceTime).To(BeTemporally("~", time.Now(), time.Minute))
		Expect(ce.DataContentType).To(Equal("application/json"))
		Expect(ce.Data.APIVersion).To(Equal("crm.customer-operator.io/v1alpha1"))
		Expect(ce.Data.Kind).To(Equal("Customer"))
		Expect(ce.Data.Metadata.UID).To(Equal(string(got.UID)))
		Expect(ce.Data.Metadata.Generation).To(Equal(got.Generation))
		Expect(ce.Data.Metadata.Labels).To(Equal(c.Labels))
		Expect(ce.Data.Spec).To(Equal(got.Spec))
	})
})
