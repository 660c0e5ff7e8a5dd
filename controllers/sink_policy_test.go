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
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
)

// newReceiverOnIPv6Loopback is newReceiver listening on [::1], which the suite's
// policy (the default deny list, with only 127.0.0.0/8 allowed) refuses.
func newReceiverOnIPv6Loopback(required ...string) *receiver {
	GinkgoHelper()
	ln, err := net.Listen("tcp", "[::1]:0")
	Expect(err).NotTo(HaveOccurred())
	rc := &receiver{known: append([]string(nil), required...), required: append([]string(nil), required...)}
	rc.srv = httptest.NewUnstartedServer(http.HandlerFunc(rc.serve))
	_ = rc.srv.Listener.Close()
	rc.srv.Listener = ln
	rc.srv.Start()
	DeferCleanup(rc.srv.Close)
	return rc
}

// eventNotes returns the notes of every Event in a namespace, as `kubectl get
// events` shows them, from both Event APIs.
func eventNotes(g Gomega, ns string) []string {
	var notes []string
	evs := &eventsv1.EventList{}
	g.Expect(k8sClient.List(ctx, evs, client.InNamespace(ns))).To(Succeed())
	for _, e := range evs.Items {
		notes = append(notes, e.Reason+": "+e.Note)
	}
	core := &corev1.EventList{}
	g.Expect(k8sClient.List(ctx, core, client.InNamespace(ns))).To(Succeed())
	for _, e := range core.Items {
		notes = append(notes, e.Reason+": "+e.Message)
	}
	return notes
}

var _ = Describe("Where deliveries may go", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("refuses a sink on a denied address, sending it nothing, and delivers once it is on an allowed one", func() {
		secret := newWebhookSecret()
		refused := newReceiverOnIPv6Loopback(secret)
		createSecret(ns, "lo-secret", map[string]string{"secret": secret})
		createSinkTo(ns, "lo", refused.URL(), "lo-secret")
		expectSinkReady(ns, "lo", metav1.ConditionFalse, crmv1alpha1.ReasonAddressNotAllowed, "::1", "--sink-allow-cidrs")

		c := newCustomer(ns, "gettrx-cus-1", crmv1alpha1.CustomerSpec{Provider: crmv1alpha1.ProviderGETTRX, ExternalID: "cus_1", DisplayName: "Acme"})
		Expect(k8sClient.Create(ctx, c)).To(Succeed())
		Eventually(func(g Gomega) {
			got := getCustomer(g, ns, c.Name)
			expectCondition(g, got.Status.Conditions, got.Generation, crmv1alpha1.ConditionSynced, metav1.ConditionFalse, crmv1alpha1.ReasonDeliveryFailed)
			g.Expect(got.Status.Sinks).To(HaveLen(1))
			g.Expect(got.Status.Sinks[0].LastError).To(ContainSubstring("address ::1 is not allowed"))
		}).Should(Succeed())
		Consistently(func() []received { return refused.all() }).WithTimeout(2*time.Second).Should(BeEmpty(),
			"a refused sink receives nothing")

		By("moving the sink to 127.0.0.1, which --sink-allow-cidrs=127.0.0.0/8 allows")
		allowed := newReceiver(secret)
		updateSink(ns, "lo", func(s *crmv1alpha1.CustomerSink) { s.Spec.URL = allowed.URL() })
		expectSinkReady(ns, "lo", metav1.ConditionTrue, crmv1alpha1.ReasonValid)
		got := expectSynced(ns, c.Name, "lo")
		Expect(allowed.acked()).To(HaveKey(eventID(got)))
		Expect(refused.all()).To(BeEmpty())
	})

	It("never quotes a sink's answer in status or Events", func() {
		const leak = "db-password=hunter2"
		// An internal service that answers with what it should not.
		answering := func(status int, header ...string) *receiver {
			secret := newWebhookSecret()
			rc := newReceiver(secret)
			rc.setResponder(func(w http.ResponseWriter, r *http.Request, rec *received, n int) int {
				w.Header().Set("Content-Type", "application/json")
				for i := 0; i+1 < len(header); i += 2 {
					w.Header().Set(header[i], header[i+1])
				}
				w.WriteHeader(status)
				_, _ = w.Write([]byte(`{"internal":"` + leak + `"}`))
				return status // already written; the receiver's own WriteHeader is a no-op
			})
			name := "answers-" + strings.ToLower(http.StatusText(status)[:3])
			createSignedSink(ns, name, rc, secret, func(s *crmv1alpha1.CustomerSinkSpec) {
				s.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"sink": name}}
			})
			c := newCustomer(ns, "to-"+name, crmv1alpha1.CustomerSpec{DisplayName: "Acme"})
			c.Labels = map[string]string{"sink": name}
			Expect(k8sClient.Create(ctx, c)).To(Succeed())
			return rc
		}
		bad := answering(http.StatusBadRequest)
		busy := answering(http.StatusTooManyRequests, "Retry-After", "60")

		Eventually(func(g Gomega) {
			got := getCustomer(g, ns, "to-answers-bad")
			g.Expect(got.Status.Sinks).To(HaveLen(1))
			g.Expect(got.Status.Sinks[0].LastError).To(Equal("POST " + bad.URL() + ": HTTP 400 Bad Request"))
			got = getCustomer(g, ns, "to-answers-too")
			g.Expect(got.Status.Sinks).To(HaveLen(1))
			g.Expect(got.Status.Sinks[0].LastError).To(Equal("POST " + busy.URL() + ": HTTP 429 Too Many Requests, Retry-After 60s"))
			notes := eventNotes(g, ns)
			g.Expect(notes).To(ContainElement(ContainSubstring("HTTP 400 Bad Request")))
			g.Expect(notes).To(ContainElement(ContainSubstring("HTTP 429 Too Many Requests, Retry-After 60s")))
		}).Should(Succeed())
		Expect(bad.all()).NotTo(BeEmpty(), "the sink did answer")
		Expect(busy.all()).NotTo(BeEmpty(), "the sink did answer")

		for _, name := range []string{"to-answers-bad", "to-answers-too"} {
			got := &crmv1alpha1.Customer{}
			Expect(k8sClient.Get(ctx, key(ns, name), got)).To(Succeed())
			status, err := json.Marshal(got.Status)
			Expect(err).NotTo(HaveOccurred())
			Expect(string(status)).NotTo(ContainSubstring("hunter2"))
		}
		sinks := &crmv1alpha1.CustomerSinkList{}
		Expect(k8sClient.List(ctx, sinks, client.InNamespace(ns))).To(Succeed())
		for _, s := range sinks.Items {
			status, err := json.Marshal(s.Status)
			Expect(err).NotTo(HaveOccurred())
			Expect(string(status)).NotTo(ContainSubstring("hunter2"))
		}
		Expect(eventNotes(Default, ns)).NotTo(ContainElement(ContainSubstring("hunter2")))
	})

	It("fails a delivery whose answer has megabytes of headers, saying so and counting it as a failure", func() {
		secret := newWebhookSecret()
		rc := newReceiver(secret)
		filler := strings.Repeat("a", 1<<10)
		rc.setResponder(func(w http.ResponseWriter, _ *http.Request, _ *received, _ int) int {
			for i := range 8 << 10 { // 8 MiB of headers
				w.Header()["X-Filler-"+strconv.Itoa(i)] = []string{filler}
			}
			return http.StatusOK
		})
		createSignedSink(ns, "header-bomb", rc, secret, nil)
		failuresBefore := sinkDeliveries(ns+"/header-bomb", "failure")
		Expect(k8sClient.Create(ctx, newCustomer(ns, "bombed", crmv1alpha1.CustomerSpec{DisplayName: "Acme"}))).To(Succeed())

		Eventually(func(g Gomega) {
			got := getCustomer(g, ns, "bombed")
			g.Expect(got.Status.Sinks).To(HaveLen(1))
			g.Expect(got.Status.Sinks[0].LastError).To(Equal("POST " + rc.URL() + ": the sink's answer headers exceed 64 KiB"))
			g.Expect(got.Status.Sinks[0].ConsecutiveFailures).To(BeNumerically(">=", 1))
			g.Expect(got.Status.Sinks[0].SyncedGeneration).To(BeZero())
			g.Expect(sinkDeliveries(ns+"/header-bomb", "failure")).To(BeNumerically(">", failuresBefore))
		}).Should(Succeed())
		Expect(sinkDeliveries(ns+"/header-bomb", "success")).To(BeZero())
	})

	It("sends a sink with spec.fields only those fields and the customer's identity", func() {
		secret := newWebhookSecret()
		rc := newReceiver(secret)
		createSignedSink(ns, "marketing", rc, secret, func(s *crmv1alpha1.CustomerSinkSpec) {
			s.Fields = []crmv1alpha1.CustomerField{"displayName", "email", "addresses"}
		})
		c := newCustomer(ns, "gettrx-cus-7", crmv1alpha1.CustomerSpec{
			Provider:    crmv1alpha1.ProviderGETTRX,
			ExternalID:  "cus_7",
			DisplayName: "Hofer KG",
			Email:       "office@hofer.example",
			Phone:       "+43 316 4711",
			TaxID:       "ATU98765432",
			Lifecycle:   crmv1alpha1.LifecycleActive,
			Contacts:    []crmv1alpha1.Contact{{FirstName: "Eva", LastName: "Hofer", Phone: "+43 664 0815"}},
			Addresses:   []crmv1alpha1.Address{{Type: crmv1alpha1.AddressBilling, City: "Graz", Country: "AT"}},
		})
		Expect(k8sClient.Create(ctx, c)).To(Succeed())
		got := expectSynced(ns, c.Name, "marketing")
		rec := rc.acked()[eventID(got)]
		Expect(rec.Valid[secret]).To(BeTrue())

		var body struct {
			Data struct {
				Spec map[string]json.RawMessage `json:"spec"`
			} `json:"data"`
		}
		Expect(json.Unmarshal(rec.Body, &body)).To(Succeed())
		var fields []string
		for f := range body.Data.Spec {
			fields = append(fields, f)
		}
		Expect(fields).To(ConsistOf("provider", "externalID", "lifecycle", "displayName", "email", "addresses"), "body: %s", rec.Body)
		for _, private := range []string{"ATU98765432", "+43 316 4711", "+43 664 0815", "taxID", "phone", "Eva"} {
			Expect(string(rec.Body)).NotTo(ContainSubstring(private))
		}
		ev := rec.standardWebhook()
		Expect(ev.Data.Spec.Email).To(Equal("office@hofer.example"))
		Expect(ev.Data.Spec.Addresses).To(Equal(got.Spec.Addresses))

		By("refusing a name that is not a Customer spec field")
		bad := &crmv1alpha1.CustomerSink{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad"},
			Spec: crmv1alpha1.CustomerSinkSpec{
				URL: rc.URL(), Format: crmv1alpha1.FormatCloudEvents,
				Fields: []crmv1alpha1.CustomerField{"email", "ssn"},
			},
		}
		err := k8sClient.Create(ctx, bad)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("spec.fields"))
		Expect(err.Error()).To(ContainSubstring("ssn"))
	})
})

// sinkDeliveries reads customer_operator_sink_deliveries_total of one sink
// (namespace/name) and outcome.
func sinkDeliveries(sink, outcome string) float64 {
	families, err := metrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() != "customer_operator_sink_deliveries_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["sink"] == sink && labels["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
