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
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/engine"
	"github.com/customer-operator/customer-operator/test/argocd"
	"github.com/customer-operator/customer-operator/webhookserver"
)

var _ = Describe("Customer controller", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("makes a valid Customer Ready and Synced (NoSinks), adds the finalizer, mirrors the last event, and is Current", func() {
		c := newCustomer(ns, "gettrx-cus-1", crmv1alpha1.CustomerSpec{
			Provider:    crmv1alpha1.ProviderGETTRX,
			ExternalID:  "cus_1",
			DisplayName: "Acme Ltd",
			Email:       "billing@acme.example",
			Contacts:    []crmv1alpha1.Contact{{FirstName: "Ada", Email: "ada@acme.example"}},
		})
		c.Annotations = map[string]string{
			crmv1alpha1.AnnotationLastEventID:       "evt_1",
			crmv1alpha1.AnnotationLastEventType:     "customer.created",
			crmv1alpha1.AnnotationLastEventTime:     "2026-03-01T10:00:00Z",
			crmv1alpha1.AnnotationLastEventReceived: "2026-03-01T10:00:02.5Z",
			// The webhook server's own state, which the suite's cache (as a
			// controllers-only manager's) leaves out: the finalizer and status
			// writes must leave it as it is.
			webhookserver.AnnotationRecentEventIDs: `["evt_0","evt_1"]`,
			webhookserver.AnnotationSourceLabels:   "team",
		}
		Expect(k8sClient.Create(ctx, c)).To(Succeed())

		Eventually(func(g Gomega) {
			got := getCustomer(g, ns, c.Name)
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
			expectCondition(g, got.Status.Conditions, got.Generation, crmv1alpha1.ConditionReady, metav1.ConditionTrue, crmv1alpha1.ReasonValid)
			expectCondition(g, got.Status.Conditions, got.Generation, crmv1alpha1.ConditionSynced, metav1.ConditionTrue, crmv1alpha1.ReasonNoSinks)
			g.Expect(got.Finalizers).To(ContainElement(crmv1alpha1.CustomerFinalizer))
			g.Expect(got.Annotations).To(HaveKeyWithValue(webhookserver.AnnotationRecentEventIDs, `["evt_0","evt_1"]`))
			g.Expect(got.Annotations).To(HaveKeyWithValue(webhookserver.AnnotationSourceLabels, "team"))
			// The suite's cache leaves these out once the status mirrors them;
			// the API keeps them.
			g.Expect(got.Annotations).To(HaveKeyWithValue(crmv1alpha1.AnnotationLastEventID, "evt_1"))
			g.Expect(got.Annotations).To(HaveKeyWithValue(crmv1alpha1.AnnotationLastEventReceived, "2026-03-01T10:00:02.5Z"))
			g.Expect(got.Status.Sinks).To(BeEmpty())

			le := got.Status.LastEvent
			g.Expect(le).NotTo(BeNil())
			g.Expect(le.ID).To(Equal("evt_1"))
			g.Expect(le.Type).To(Equal("customer.created"))
			g.Expect(le.Time).NotTo(BeNil())
			g.Expect(le.Time.Time.Equal(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))).To(BeTrue(), "lastEvent.time %v", le.Time)
			g.Expect(le.ReceivedAt).NotTo(BeNil())
			g.Expect(le.ReceivedAt.Time.Unix()).To(Equal(time.Date(2026, 3, 1, 10, 0, 2, 0, time.UTC).Unix()))

			g.Expect(kstatusOf(g, "Customer", ns, c.Name)).To(Equal(kstatus.CurrentStatus))
			g.Expect(argoHealthOf(g, "Customer", ns, c.Name).Status).To(Equal("Healthy"))

			// Spec and status are tracked whole by server-side apply: the managed
			// fields name them, not each of their fields.
			units := map[string]string{}
			for _, mf := range got.ManagedFields {
				var fields map[string]json.RawMessage
				g.Expect(json.Unmarshal(mf.FieldsV1.GetRawBytes(), &fields)).To(Succeed())
				for _, unit := range []string{"f:spec", "f:status"} {
					if raw, ok := fields[unit]; ok {
						units[unit] += string(raw)
					}
				}
			}
			g.Expect(units).To(Equal(map[string]string{"f:spec": "{}", "f:status": "{}"}))
		}).Should(Succeed())

		By("following a newer event written to the annotations")
		updateCustomer(ns, c.Name, func(c *crmv1alpha1.Customer) {
			c.Annotations[crmv1alpha1.AnnotationLastEventID] = "evt_2"
			c.Annotations[crmv1alpha1.AnnotationLastEventType] = "customer.updated"
			c.Annotations[crmv1alpha1.AnnotationLastEventTime] = "2026-03-02T08:30:00Z"
			c.Annotations[crmv1alpha1.AnnotationLastEventReceived] = "2026-03-02T08:30:01Z"
		})
		Eventually(func(g Gomega) {
			le := getCustomer(g, ns, c.Name).Status.LastEvent
			g.Expect(le).NotTo(BeNil())
			g.Expect(le.ID).To(Equal("evt_2"))
			g.Expect(le.Type).To(Equal("customer.updated"))
			g.Expect(le.Time).NotTo(BeNil())
			g.Expect(le.Time.Time.Equal(time.Date(2026, 3, 2, 8, 30, 0, 0, time.UTC))).To(BeTrue(), "lastEvent.time %v", le.Time)
		}).Should(Succeed())
	})

	It("writes no status when a reconcile finds nothing new, even with a sub-second event time", func() {
		c := newCustomer(ns, "gettrx-quiet", crmv1alpha1.CustomerSpec{
			Provider: crmv1alpha1.ProviderGETTRX, ExternalID: "quiet", DisplayName: "Quiet Ltd",
		})
		// As the webhook server writes it: with the finalizer, and the receive
		// time in nanoseconds, which the status holds to the second.
		c.Finalizers = []string{crmv1alpha1.CustomerFinalizer}
		c.Annotations = map[string]string{
			crmv1alpha1.AnnotationLastEventID:       "evt_q",
			crmv1alpha1.AnnotationLastEventType:     "customer.created",
			crmv1alpha1.AnnotationLastEventTime:     "2026-03-01T10:00:00.25Z",
			crmv1alpha1.AnnotationLastEventReceived: "2026-03-01T10:00:02.123456789Z",
		}
		Expect(k8sClient.Create(ctx, c)).To(Succeed())
		Eventually(func(g Gomega) {
			got := getCustomer(g, ns, c.Name)
			expectCondition(g, got.Status.Conditions, got.Generation, crmv1alpha1.ConditionSynced, metav1.ConditionTrue, crmv1alpha1.ReasonNoSinks)
		}).Should(Succeed())

		statusPath := "/apis/crm.customer-operator.io/v1alpha1/namespaces/" + ns + "/customers/" + c.Name + "/status"
		Consistently(func() int { return managerWrites.writes(http.MethodPatch, statusPath) }, time.Second, 100*time.Millisecond).
			Should(Equal(1), "one status write for a new Customer")

		By("bringing it back to a reconcile with an unrelated annotation")
		touched := updateCustomer(ns, c.Name, func(c *crmv1alpha1.Customer) { c.Annotations["example.com/touched"] = "yes" })
		// A status patch that changes nothing still costs the API server a
		// decode, a patch and a compare: none may be sent.
		Consistently(func(g Gomega) {
			g.Expect(getCustomer(g, ns, c.Name).ResourceVersion).To(Equal(touched.ResourceVersion), "the status was written again")
			g.Expect(managerWrites.writes(http.MethodPatch, statusPath)).To(Equal(1), "status patches sent for a reconcile with nothing new")
		}, 3*time.Second, 200*time.Millisecond).Should(Succeed())
	})

	It("reports an invalid email as Ready False InvalidSpec naming the field, kstatus Failed, until it is fixed", func() {
		c := newCustomer(ns, "bad-email", crmv1alpha1.CustomerSpec{
			DisplayName: "Bad Email Inc",
			Email:       "not an email",
			Contacts:    []crmv1alpha1.Contact{{Email: "ok@example.com"}, {Email: "also@bad@example"}},
		})
		Expect(k8sClient.Create(ctx, c)).To(Succeed())

		Eventually(func(g Gomega) {
			got := getCustomer(g, ns, c.Name)
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
			ready := expectCondition(g, got.Status.Conditions, got.Generation, crmv1alpha1.ConditionReady, metav1.ConditionFalse, crmv1alpha1.ReasonInvalidSpec)
			g.Expect(ready.Message).To(ContainSubstring("spec.email"))
			g.Expect(ready.Message).To(ContainSubstring("spec.contacts[1].email"))
			g.Expect(ready.Message).NotTo(ContainSubstring("spec.contacts[0].email"))
			expectCondition(g, got.Status.Conditions, got.Generation, crmv1alpha1.ConditionSynced, metav1.ConditionFalse, crmv1alpha1.ReasonInvalidSpec)
			g.Expect(kstatusOf(g, "Customer", ns, c.Name)).To(Equal(kstatus.FailedStatus))
			g.Expect(argoHealthOf(g, "Customer", ns, c.Name)).To(Equal(argocd.Health{Status: "Degraded", Message: ready.Message}))
		}).Should(Succeed())

		By("fixing the emails")
		updateCustomer(ns, c.Name, func(c *crmv1alpha1.Customer) {
			c.Spec.Email = "billing@bad-email.example"
			c.Spec.Contacts[1].Email = "also@example.com"
		})
		Eventually(func(g Gomega) {
			got := getCustomer(g, ns, c.Name)
			g.Expect(got.Generation).To(BeNumerically("==", 2))
			expectCondition(g, got.Status.Conditions, got.Generation, crmv1alpha1.ConditionReady, metav1.ConditionTrue, crmv1alpha1.ReasonValid)
			g.Expect(kstatusOf(g, "Customer", ns, c.Name)).To(Equal(kstatus.CurrentStatus))
		}).Should(Succeed())
	})

	It("deletes a tombstone whose retention ended and keeps one whose retention has not", func() {
		expired := newCustomer(ns, "phasio-gone", crmv1alpha1.CustomerSpec{
			Provider: crmv1alpha1.ProviderPhasio, ExternalID: "gone", Lifecycle: crmv1alpha1.LifecycleDeleted,
		})
		expired.Annotations = map[string]string{crmv1alpha1.AnnotationTombstoneUntil: time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)}
		until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
		kept := newCustomer(ns, "phasio-kept", crmv1alpha1.CustomerSpec{
			Provider: crmv1alpha1.ProviderPhasio, ExternalID: "kept", Lifecycle: crmv1alpha1.LifecycleDeleted,
		})
		kept.Annotations = map[string]string{crmv1alpha1.AnnotationTombstoneUntil: until.Format(time.RFC3339)}
		Expect(k8sClient.Create(ctx, expired)).To(Succeed())
		Expect(k8sClient.Create(ctx, kept)).To(Succeed())

		expectGone(&crmv1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: expired.Name}}, eventuallyTimeout)

		Eventually(func(g Gomega) {
			got := getCustomer(g, ns, kept.Name)
			ready := expectCondition(g, got.Status.Conditions, got.Generation, crmv1alpha1.ConditionReady, metav1.ConditionTrue, crmv1alpha1.ReasonTombstone)
			g.Expect(ready.Message).To(ContainSubstring(until.Format(time.RFC3339)))
			g.Expect(kstatusOf(g, "Customer", ns, kept.Name)).To(Equal(kstatus.CurrentStatus))
		}).Should(Succeed())
		Consistently(func(g Gomega) {
			got := getCustomer(g, ns, kept.Name)
			g.Expect(got.DeletionTimestamp).To(BeNil())
		}).WithTimeout(time.Second).Should(Succeed())
	})

	It("shows a Customer as InProgress with a Warning Event while its sink fails, and Current once it recovers", func() {
		secret := newWebhookSecret()
		rc := newReceiver(secret)
		var failing atomic.Bool
		failing.Store(true)
		rc.setResponder(func(w http.ResponseWriter, _ *http.Request, _ *received, _ int) int {
			if failing.Load() {
				w.Header().Set("Content-Type", "text/plain")
				return http.StatusInternalServerError
			}
			return http.StatusOK
		})
		createSignedSink(ns, "erp", rc, secret, nil)

		c := newCustomer(ns, "flaky-1", crmv1alpha1.CustomerSpec{DisplayName: "Flaky One"})
		Expect(k8sClient.Create(ctx, c)).To(Succeed())

		Eventually(func(g Gomega) {
			got := getCustomer(g, ns, c.Name)
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
			expectCondition(g, got.Status.Conditions, got.Generation, crmv1alpha1.ConditionReady, metav1.ConditionTrue, crmv1alpha1.ReasonValid)
			synced := expectCondition(g, got.Status.Conditions, got.Generation, crmv1alpha1.ConditionSynced, metav1.ConditionFalse, crmv1alpha1.ReasonDeliveryFailed)
			g.Expect(synced.Message).To(ContainSubstring("erp"))
			g.Expect(got.Status.Sinks).To(HaveLen(1))
			e := got.Status.Sinks[0]
			g.Expect(e.Name).To(Equal("erp"))
			g.Expect(e.ConsecutiveFailures).To(BeNumerically(">", 0))
			g.Expect(e.LastError).To(ContainSubstring("500"))
			g.Expect(e.SyncedGeneration).To(BeZero())
			g.Expect(kstatusOf(g, "Customer", ns, c.Name)).To(Equal(kstatus.InProgressStatus))
			g.Expect(argoHealthOf(g, "Customer", ns, c.Name)).To(Equal(argocd.Health{Status: "Progressing", Message: synced.Message}))
		}).Should(Succeed())

		Eventually(func(g Gomega) {
			evs := &eventsv1.EventList{}
			g.Expect(k8sClient.List(ctx, evs, client.InNamespace(ns))).To(Succeed())
			var found []eventsv1.Event
			for _, ev := range evs.Items {
				if ev.Reason == "DeliveryFailed" && ev.Regarding.Kind == "Customer" && ev.Regarding.Name == c.Name {
					found = append(found, ev)
				}
			}
			g.Expect(found).NotTo(BeEmpty(), "no DeliveryFailed Event for the Customer among %d Events", len(evs.Items))
			g.Expect(found[0].Type).To(Equal("Warning"))
			g.Expect(found[0].Note).To(ContainSubstring("erp"))
			g.Expect(found[0].Note).To(ContainSubstring("500"))
		}).Should(Succeed())

		By("letting the sink recover")
		failing.Store(false)
		Eventually(func(g Gomega) {
			got := getCustomer(g, ns, c.Name)
			expectCondition(g, got.Status.Conditions, got.Generation, crmv1alpha1.ConditionSynced, metav1.ConditionTrue, crmv1alpha1.ReasonSynced)
			g.Expect(got.Status.Sinks).To(HaveLen(1))
			e := got.Status.Sinks[0]
			g.Expect(e.SyncedGeneration).To(Equal(got.Generation))
			g.Expect(e.ConsecutiveFailures).To(BeZero())
			g.Expect(e.LastError).To(BeEmpty())
			g.Expect(kstatusOf(g, "Customer", ns, c.Name)).To(Equal(kstatus.CurrentStatus))
		}).Should(Succeed())
		Expect(rc.acked()).To(HaveKey(string(c.UID) + "." + strconv.FormatInt(c.Generation, 10)))
	})

	It("delivers the delete before the Customer goes, and lets a Customer go at once when its sink was deleted", func() {
		secret := newWebhookSecret()
		rc := newReceiver(secret)
		createSignedSink(ns, "crm", rc, secret, func(s *crmv1alpha1.CustomerSinkSpec) {
			s.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"sink": "crm"}}
		})
		// The receiver looks the Customer up (uncached) before it acknowledges a delete.
		rc.setBeforeAck(func(rec *received) {
			var ev swEvent
			if err := json.Unmarshal(rec.Body, &ev); err != nil || ev.Type != "customer.deleted" {
				return
			}
			cur := &crmv1alpha1.Customer{}
			err := k8sClient.Get(ctx, key(ev.Data.Metadata.Namespace, ev.Data.Metadata.Name), cur)
			switch {
			case apierrors.IsNotFound(err):
				rec.Note = "gone"
			case err != nil:
				rec.Note = "error: " + err.Error()
			case string(cur.UID) != ev.Data.Metadata.UID:
				rec.Note = "another object"
			case cur.DeletionTimestamp == nil:
				rec.Note = "present, not deleting"
			default:
				rec.Note = "present, deleting"
			}
		})

		c := newCustomer(ns, "leaving", crmv1alpha1.CustomerSpec{DisplayName: "Leaving Ltd"})
		c.Labels = map[string]string{"sink": "crm"}
		Expect(k8sClient.Create(ctx, c)).To(Succeed())
		var syncedGen int64
		Eventually(func(g Gomega) {
			got := getCustomer(g, ns, c.Name)
			expectCondition(g, got.Status.Conditions, got.Generation, crmv1alpha1.ConditionSynced, metav1.ConditionTrue, crmv1alpha1.ReasonSynced)
			syncedGen = got.Generation
		}).Should(Succeed())

		Expect(k8sClient.Delete(ctx, c)).To(Succeed())
		expectGone(&crmv1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: c.Name}}, eventuallyTimeout)

		var deletes []received
		for _, r := range rc.all() {
			if r.acked() && r.standardWebhook().Type == "customer.deleted" {
				deletes = append(deletes, r)
			}
		}
		Expect(deletes).NotTo(BeEmpty(), "the receiver got no customer.deleted")
		d := deletes[0]
		Expect(d.Note).To(Equal("present, deleting"), "the Customer must still exist when the receiver acknowledges its delete")
		Expect(d.Valid[secret]).To(BeTrue(), "the delete is not signed")
		ev := d.standardWebhook()
		Expect(ev.Data.Metadata.UID).To(Equal(string(c.UID)))
		Expect(ev.Data.Metadata.Name).To(Equal(c.Name))
		Expect(ev.Data.Spec.DisplayName).To(Equal("Leaving Ltd"))
		uid, gen, ok := strings.Cut(d.ID, ".")
		Expect(ok).To(BeTrue(), "webhook-id %q", d.ID)
		Expect(uid).To(Equal(string(c.UID)))
		Expect(strconv.ParseInt(gen, 10, 64)).To(BeNumerically(">", syncedGen),
			"the delete must not reuse the webhook-id of the last upsert, or receivers drop it as a duplicate")

		By("deleting a Customer whose sink is gone")
		rc2 := newReceiver(secret)
		createSignedSink(ns, "old-crm", rc2, secret, func(s *crmv1alpha1.CustomerSinkSpec) {
			s.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"sink": "old-crm"}}
		})
		orphan := newCustomer(ns, "orphan", crmv1alpha1.CustomerSpec{DisplayName: "Orphan"})
		orphan.Labels = map[string]string{"sink": "old-crm"}
		Expect(k8sClient.Create(ctx, orphan)).To(Succeed())
		Eventually(func(g Gomega) {
			got := getCustomer(g, ns, orphan.Name)
			expectCondition(g, got.Status.Conditions, got.Generation, crmv1alpha1.ConditionSynced, metav1.ConditionTrue, crmv1alpha1.ReasonSynced)
		}).Should(Succeed())
		// The system behind the sink is decommissioned: its endpoint is down and the
		// sink deleted, then the Customer is deleted.
		rc2.srv.Close()
		Expect(k8sClient.Delete(ctx, &crmv1alpha1.CustomerSink{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "old-crm"}})).To(Succeed())
		Expect(k8sClient.Delete(ctx, orphan)).To(Succeed())
		// Well within the delete grace period: nothing waits for a sink that is gone.
		expectGone(&crmv1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: orphan.Name}}, testDeleteGrace/2)
	})
})

var _ = Describe("customerChanged", func() {
	// As the controllers-only cache holds Customers: the last-event annotations
	// leave it once status.lastEvent mirrors them.
	mirrored := func() *crmv1alpha1.Customer {
		at := metav1.NewTime(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))
		return &crmv1alpha1.Customer{
			ObjectMeta: metav1.ObjectMeta{Name: "c", Generation: 1, Annotations: map[string]string{"example.com/team": "a"}},
			Status:     crmv1alpha1.CustomerStatus{LastEvent: &crmv1alpha1.LastEvent{ID: "evt_1", Type: "customer.created", Time: &at, ReceivedAt: &at}},
		}
	}
	withAnnotations := func(c *crmv1alpha1.Customer, id string) *crmv1alpha1.Customer {
		c = c.DeepCopy()
		c.Annotations[crmv1alpha1.AnnotationLastEventID] = id
		c.Annotations[crmv1alpha1.AnnotationLastEventType] = "customer.created"
		c.Annotations[crmv1alpha1.AnnotationLastEventTime] = "2026-03-01T10:00:00Z"
		c.Annotations[crmv1alpha1.AnnotationLastEventReceived] = "2026-03-01T10:00:00.4Z"
		return c
	}
	changed := func(o, n *crmv1alpha1.Customer) bool {
		return customerChanged.Update(event.UpdateEvent{ObjectOld: o, ObjectNew: n})
	}

	It("passes a newer event, an annotation change and a removal", func() {
		Expect(changed(mirrored(), withAnnotations(mirrored(), "evt_2"))).To(BeTrue(), "a newer event")
		touched := mirrored()
		touched.Annotations["example.com/team"] = "b"
		Expect(changed(mirrored(), touched)).To(BeTrue(), "another annotation changed")
		gone := mirrored()
		delete(gone.Annotations, "example.com/team")
		Expect(changed(mirrored(), gone)).To(BeTrue(), "another annotation removed")
	})

	It("ignores the mirrored event leaving the cache, and its own status write", func() {
		behind := withAnnotations(mirrored(), "evt_1")
		behind.Status.LastEvent = nil
		Expect(changed(behind, mirrored())).To(BeFalse(), "the status write that mirrored the event")
		Expect(changed(withAnnotations(mirrored(), "evt_1"), mirrored())).To(BeFalse(), "the annotations left the cache")
		Expect(changed(mirrored(), mirrored())).To(BeFalse())
	})
})

var _ = Describe("the Customer controller's queue order", func() {
	It("serves a Customer's own change first, then delivery outcomes, then a sink change's Customers", func() {
		ns := newNamespace()
		for _, name := range []string{"queued-by-sink-1", "queued-by-sink-2"} {
			Expect(k8sClient.Create(ctx, newCustomer(ns, name, crmv1alpha1.CustomerSpec{Provider: crmv1alpha1.ProviderGETTRX, ExternalID: name, Email: name + "@example.com"}))).To(Succeed())
		}
		q := priorityqueue.New[reconcile.Request]("queue-order-test")
		DeferCleanup(q.ShutDown)
		req := func(name string) reconcile.Request {
			return reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}
		}

		// In the order a busy manager meets them: a new sink, a delivery
		// outcome, then a webhook's new Customer.
		sink := &crmv1alpha1.CustomerSink{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "new-sink"}}
		sinkChangeHandler(k8sClient).Create(ctx, event.CreateEvent{Object: sink}, q)
		q.AddWithOpts(priorityqueue.AddOpts{Priority: new(engine.OutcomePriority)}, req("delivered"))
		handler.WithLowPriorityWhenUnchanged(&handler.EnqueueRequestForObject{}).Create(ctx,
			event.CreateEvent{Object: &crmv1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "new-from-webhook"}}}, q)

		var order []string
		for q.Len() > 0 {
			r, _ := q.Get()
			order = append(order, r.Name)
			q.Done(r)
		}
		Expect(order).To(HaveLen(4))
		Expect(order[:2]).To(Equal([]string{"new-from-webhook", "delivered"}))
		Expect(order[2:]).To(ConsistOf("queued-by-sink-1", "queued-by-sink-2"))
	})

	It("queues the sinks of the initial list behind everything else", func() {
		ns := newNamespace()
		Expect(k8sClient.Create(ctx, newCustomer(ns, "listed", crmv1alpha1.CustomerSpec{Provider: crmv1alpha1.ProviderGETTRX, ExternalID: "listed", Email: "listed@example.com"}))).To(Succeed())
		q := priorityqueue.New[reconcile.Request]("initial-list-test")
		DeferCleanup(q.ShutDown)
		sink := &crmv1alpha1.CustomerSink{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "listed-sink"}}
		sinkChangeHandler(k8sClient).Create(ctx, event.CreateEvent{Object: sink, IsInInitialList: true}, q)
		q.AddWithOpts(priorityqueue.AddOpts{Priority: new(engine.OutcomePriority)}, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "delivered"}})
		first, _ := q.Get()
		Expect(first.Name).To(Equal("delivered"))
	})
})
