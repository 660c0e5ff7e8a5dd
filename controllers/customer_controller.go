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

// Package controllers holds the reconcilers of Customers, CustomerSources and
// CustomerSinks. The deliveries themselves run in package engine.
package controllers

import (
	"context"
	"fmt"
	"maps"
	"net/mail"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/engine"
	"github.com/customer-operator/customer-operator/internal/secretcache"
)

// conflictRetryDelay is how long a reconcile whose status write met a conflict
// waits before it looks again: long enough for the cache to catch up with the
// write it lost to, short enough not to be noticed.
const conflictRetryDelay = 100 * time.Millisecond

// DefaultDeleteGracePeriod is how long a Customer's delete is retried at a sink
// that had received it before the finalizer lets the Customer go anyway.
const DefaultDeleteGracePeriod = time.Hour

// patchOf starts a patch of the Customer as read, which the API server applies
// only to that state of it. A patch is sent by name, and the cache may still
// hold a Customer deleted since while the API server holds a new one of the
// same name. A finalizer added for the old one would land on the new one, and
// the reconcile would go on to deliver the old one, which no delete would ever
// follow; one removed for the old one would let the new one go without its
// delete reaching the sinks.
func patchOf(c *crmv1alpha1.Customer) client.Patch {
	return client.MergeFromWithOptions(c.DeepCopy(), client.MergeFromWithOptimisticLock{})
}

// CustomerReconciler validates Customers, delivers them to the sinks that select
// them, and reports both in their status.
type CustomerReconciler struct {
	client.Client
	Recorder   events.EventRecorder
	Secrets    *secretcache.Store
	Deliveries Deliveries
	// DeleteGracePeriod bounds how long a delete waits for a failing sink.
	DeleteGracePeriod time.Duration
	// MaxConcurrentReconciles is the number of workers.
	MaxConcurrentReconciles int
	// Now is the clock; tests may set it.
	Now func() time.Time
}

// +kubebuilder:rbac:groups=crm.customer-operator.io,resources=customers,verbs=get;list;watch;patch;delete
// +kubebuilder:rbac:groups=crm.customer-operator.io,resources=customers/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=crm.customer-operator.io,resources=customers/finalizers,verbs=update
// +kubebuilder:rbac:groups=crm.customer-operator.io,resources=customersinks,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one Customer's status, deliveries and finalizer up to date.
func (r *CustomerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	c := &crmv1alpha1.Customer{}
	if err := r.Get(ctx, req.NamespacedName, c); err != nil {
		if apierrors.IsNotFound(err) {
			r.Deliveries.Forget(engine.Key{Namespace: req.Namespace, Customer: req.Name})
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}

	if !c.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, c)
	}
	if !controllerutil.ContainsFinalizer(c, crmv1alpha1.CustomerFinalizer) {
		patch := patchOf(c)
		controllerutil.AddFinalizer(c, crmv1alpha1.CustomerFinalizer)
		if err := r.Patch(ctx, c, patch); err != nil {
			if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				return ctrl.Result{RequeueAfter: conflictRetryDelay}, nil
			}
			return ctrl.Result{}, fmt.Errorf("adding finalizer: %w", err)
		}
	}

	var requeue time.Duration
	if c.Spec.Lifecycle == crmv1alpha1.LifecycleDeleted {
		if until, ok := tombstoneUntil(c); ok {
			if left := until.Sub(r.now()); left <= 0 {
				log.FromContext(ctx).Info("tombstone retention ended; deleting the Customer", "until", until)
				if err := r.Delete(ctx, c, client.Preconditions{UID: &c.UID}); err != nil && !apierrors.IsNotFound(err) {
					return ctrl.Result{}, fmt.Errorf("deleting expired tombstone: %w", err)
				}
				return ctrl.Result{}, nil
			} else {
				requeue = left
			}
		}
	}

	sinks := &crmv1alpha1.CustomerSinkList{}
	// Read-only: the cache's sinks need no copies (sorting moves only the
	// list's own shallow copies).
	if err := r.List(ctx, sinks, client.InNamespace(c.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing CustomerSinks: %w", err)
	}
	sort.Slice(sinks.Items, func(i, j int) bool { return sinks.Items[i].Name < sinks.Items[j].Name })

	status := c.Status.DeepCopy()
	status.ObservedGeneration = c.Generation
	status.LastEvent = lastEvent(c)

	if msg := validateCustomer(c); msg != "" {
		setReady(&status.Conditions, c.Generation, false, crmv1alpha1.ReasonInvalidSpec, msg)
		setCondition(&status.Conditions, c.Generation, crmv1alpha1.ConditionSynced, metav1.ConditionFalse,
			crmv1alpha1.ReasonInvalidSpec, "an invalid Customer is not delivered")
		meta.RemoveStatusCondition(&status.Conditions, conditionReconciling)
	} else {
		if c.Spec.Lifecycle == crmv1alpha1.LifecycleDeleted {
			setReady(&status.Conditions, c.Generation, true, crmv1alpha1.ReasonTombstone, tombstoneMessage(c))
		} else {
			SetCustomerValid(status, c.Generation)
		}
		p, err := r.deliver(ctx, c, sinks.Items, status)
		if err != nil {
			return ctrl.Result{}, err
		}
		if p.requeue > 0 && (requeue == 0 || p.requeue < requeue) {
			requeue = p.requeue
		}
		if p.hold {
			return ctrl.Result{RequeueAfter: requeue}, nil
		}
	}

	return r.writeStatus(ctx, c, status, requeue)
}

// deliveryPlan is what deliver decided beyond the status: when to look again,
// and whether to hold the status write for deliveries about to end.
type deliveryPlan struct {
	requeue time.Duration
	hold    bool
}

// deliver records finished deliveries into status, asks the engine for the ones
// the current generation still needs, and sets Synced.
func (r *CustomerReconciler) deliver(ctx context.Context, c *crmv1alpha1.Customer, sinks []crmv1alpha1.CustomerSink, status *crmv1alpha1.CustomerStatus) (deliveryPlan, error) {
	previous := map[string]crmv1alpha1.SinkSyncStatus{}
	for _, e := range status.Sinks {
		previous[e.Name] = e
	}
	now := r.now()

	var entries []crmv1alpha1.SinkSyncStatus
	var plan deliveryPlan
	var synced, failing, notReady, paused []string
	var writes statusPlan
	for i := range sinks {
		sink := &sinks[i]
		if !sink.DeletionTimestamp.IsZero() || !selects(sink, c) {
			continue
		}
		e, ok := previous[sink.Name]
		if !ok {
			e = crmv1alpha1.SinkSyncStatus{Name: sink.Name}
		}
		delete(previous, sink.Name)

		k := engine.Key{Namespace: c.Namespace, Sink: sink.Name, Customer: c.Name}
		rep := r.Deliveries.Look(k, engine.Have{Generation: e.SyncedGeneration, SinkGeneration: e.SinkGeneration})
		if rep.Outcome != nil {
			r.record(c, sink, &e, rep.Outcome)
		}
		state, err := resolveSink(ctx, r.Secrets, r.Deliveries, sink)
		if err != nil {
			return deliveryPlan{}, fmt.Errorf("resolving CustomerSink %s: %w", sink.Name, err)
		}
		inSync := e.SyncedGeneration == c.Generation && e.SinkGeneration == sink.Generation
		d := planSink(sinkFacts{InSync: inSync, Ready: state.ready, Report: rep, Failing: e.ConsecutiveFailures > 0}, now)
		if d.Deliver {
			r.Deliveries.Deliver(k, c.Generation)
		}
		writes.add(d)
		switch {
		case inSync:
			synced = append(synced, sink.Name)
		case !state.ready:
			notReady = append(notReady, sink.Name+" ("+state.reason+")")
		}
		if !inSync && state.ready && rep.Paused != nil {
			paused = append(paused, fmt.Sprintf("%s (%s until %s)", sink.Name, rep.Paused.Reason, rep.Paused.Until.UTC().Format(time.RFC3339)))
		}
		// A sink that cannot receive (410 Gone, suspended, bad Secret) is reported
		// as not ready, with its reason, not as failing and "retrying": it is not.
		if state.ready && e.ConsecutiveFailures > 0 && !inSync {
			failing = append(failing, sink.Name)
		}
		entries = append(entries, e)
	}
	// Sinks deleted or no longer selecting leave the status, and the engine.
	for name := range previous {
		r.Deliveries.Forget(engine.Key{Namespace: c.Namespace, Sink: name, Customer: c.Name})
	}
	status.Sinks = entries
	plan.requeue, plan.hold = writes.wait, writes.hold()

	total := len(entries)
	switch {
	case len(synced) == total:
		SetCustomerSynced(status, c.Generation, total)
	case len(failing) > 0:
		r.unsynced(status, c.Generation, crmv1alpha1.ReasonDeliveryFailed, fmt.Sprintf("delivery failing to %s; retrying with backoff", strings.Join(failing, ", ")))
	case len(notReady) > 0 && len(synced)+len(notReady) == total:
		// Nothing is under way: the sinks left need a person's change. That is
		// said here and on the sinks, which are Failed; the Customer is not kept
		// InProgress for a fault that is not its own.
		r.blocked(status, c.Generation, crmv1alpha1.ReasonSinkNotReady, "sink(s) not ready: "+strings.Join(notReady, ", "))
	case len(notReady) > 0:
		r.unsynced(status, c.Generation, crmv1alpha1.ReasonSinkNotReady, "sink(s) not ready: "+strings.Join(notReady, ", "))
	case len(paused) > 0:
		r.unsynced(status, c.Generation, crmv1alpha1.ReasonDelivering, fmt.Sprintf("delivering generation %d: %d of %d sink(s) synced; paused: %s", c.Generation, len(synced), total, strings.Join(paused, ", ")))
	default:
		r.unsynced(status, c.Generation, crmv1alpha1.ReasonDelivering, fmt.Sprintf("delivering generation %d: %d of %d sink(s) synced", c.Generation, len(synced), total))
	}
	return plan, nil
}

// SetCustomerValid sets Ready as the reconciler does for a valid Customer that
// is not a tombstone. It is exported for the benchmarks, whose baseline writes
// must be the reconciler's.
func SetCustomerValid(status *crmv1alpha1.CustomerStatus, generation int64) {
	setReady(&status.Conditions, generation, true, crmv1alpha1.ReasonValid, "customer record is valid")
}

// SetCustomerSynced sets Synced True for a generation delivered to every one of
// sinks selecting sinks (NoSinks when none selects the Customer). It is exported
// for the benchmarks, whose baseline writes must be the reconciler's.
func SetCustomerSynced(status *crmv1alpha1.CustomerStatus, generation int64, sinks int) {
	if sinks == 0 {
		setCondition(&status.Conditions, generation, crmv1alpha1.ConditionSynced, metav1.ConditionTrue,
			crmv1alpha1.ReasonNoSinks, "no CustomerSink selects this Customer")
	} else {
		setCondition(&status.Conditions, generation, crmv1alpha1.ConditionSynced, metav1.ConditionTrue,
			crmv1alpha1.ReasonSynced, fmt.Sprintf("generation %d delivered to %d sink(s)", generation, sinks))
	}
	meta.RemoveStatusCondition(&status.Conditions, conditionReconciling)
}

func (r *CustomerReconciler) unsynced(status *crmv1alpha1.CustomerStatus, gen int64, reason, msg string) {
	setCondition(&status.Conditions, gen, crmv1alpha1.ConditionSynced, metav1.ConditionFalse, reason, msg)
	setCondition(&status.Conditions, gen, conditionReconciling, metav1.ConditionTrue, reason, msg)
}

// blocked is unsynced with nothing that will finish by itself: Synced False,
// and no Reconciling, so kstatus reads the Customer as Current.
func (r *CustomerReconciler) blocked(status *crmv1alpha1.CustomerStatus, gen int64, reason, msg string) {
	setCondition(&status.Conditions, gen, crmv1alpha1.ConditionSynced, metav1.ConditionFalse, reason, msg)
	meta.RemoveStatusCondition(&status.Conditions, conditionReconciling)
}

// record writes a finished delivery into a sink's status entry. It may see the
// same outcome again (until the status the reconciler reads shows it), so it
// sets rather than adds. A failure raises a Kubernetes Event when the sink
// starts failing, not on every retry.
func (r *CustomerReconciler) record(c *crmv1alpha1.Customer, sink *crmv1alpha1.CustomerSink, e *crmv1alpha1.SinkSyncStatus, o *engine.Outcome) {
	if o.Err == nil {
		if o.Generation >= e.SyncedGeneration {
			e.SyncedGeneration = o.Generation
			e.SinkGeneration = o.SinkGeneration
		}
		// To the second, as the API stores it: a finer time would differ from
		// every later read of the same status.
		t := metav1.NewTime(o.At).Rfc3339Copy()
		e.LastSyncTime = &t
		e.LastError = ""
		e.ConsecutiveFailures = 0
		return
	}
	if o.Generation <= e.SyncedGeneration && o.SinkGeneration <= e.SinkGeneration {
		// A repeat of what the sink already acknowledged (a redelivery, or one
		// started from a stale read) failed: the sink is still in sync.
		return
	}
	wasFailing := e.ConsecutiveFailures > 0
	e.LastError = truncate(o.Err.Error(), 512)
	e.ConsecutiveFailures = o.Failures
	if !wasFailing {
		r.Recorder.Eventf(c, sink, corev1.EventTypeWarning, "DeliveryFailed", "Deliver",
			"delivery of generation %d to CustomerSink %s failed: %s", o.Generation, sink.Name, e.LastError)
	}
}

// finalize delivers the delete to every sink that had received the Customer, then
// lets it go. A sink that is deleted, or answered 410 Gone, is skipped; a failing
// or suspended one is retried until DeleteGracePeriod after the delete, then
// skipped with a Warning Event, so a dead sink never blocks a delete forever.
func (r *CustomerReconciler) finalize(ctx context.Context, c *crmv1alpha1.Customer) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(c, crmv1alpha1.CustomerFinalizer) {
		return ctrl.Result{}, nil
	}
	sinks := &crmv1alpha1.CustomerSinkList{}
	if err := r.List(ctx, sinks, client.InNamespace(c.Namespace)); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing CustomerSinks: %w", err)
	}
	byName := map[string]*crmv1alpha1.CustomerSink{}
	for i := range sinks.Items {
		byName[sinks.Items[i].Name] = &sinks.Items[i]
	}
	grace := r.DeleteGracePeriod
	if grace <= 0 {
		grace = DefaultDeleteGracePeriod
	}
	deadline := c.DeletionTimestamp.Add(grace)
	now := r.now()
	expired := !now.Before(deadline)

	status := c.Status.DeepCopy()
	// A sink the status does not name yet (the cache lags behind the status
	// write) may still have a delivery of the Customer under way.
	listed := map[string]bool{}
	for _, e := range status.Sinks {
		listed[e.Name] = true
	}
	for i := range sinks.Items {
		name := sinks.Items[i].Name
		if listed[name] {
			continue
		}
		rep := r.Deliveries.Look(engine.Key{Namespace: c.Namespace, Sink: name, Customer: c.Name}, engine.Have{})
		if rep.Pending || rep.Outcome != nil {
			status.Sinks = append(status.Sinks, crmv1alpha1.SinkSyncStatus{Name: name})
		}
	}
	var remaining []crmv1alpha1.SinkSyncStatus
	var writes statusPlan
	for _, e := range status.Sinks {
		k := engine.Key{Namespace: c.Namespace, Sink: e.Name, Customer: c.Name}
		sink := byName[e.Name]
		if sink == nil || !sink.DeletionTimestamp.IsZero() {
			r.Deliveries.Forget(k)
			continue
		}
		rep := r.Deliveries.Look(k, engine.Have{Generation: e.SyncedGeneration, SinkGeneration: e.SinkGeneration})
		// A sink that never acknowledged the Customer needs no delete, unless a
		// delivery is under way or was attempted: a delivery given up on may
		// still have reached the sink (a database commits, the answer is lost),
		// and would leave a record of a Customer that is gone.
		if e.SyncedGeneration == 0 && e.ConsecutiveFailures == 0 && !rep.Pending && rep.Outcome == nil {
			r.Deliveries.Forget(k)
			continue
		}
		if o := rep.Outcome; o != nil && o.Deleted && o.Err == nil && !rep.Pending {
			// The sink acknowledged this delete, and nothing follows it: an
			// acknowledged delete of an earlier generation (lifecycle Deleted)
			// with a newer one still under way is not the last word.
			r.Deliveries.Forget(k)
			continue
		}
		// The API server bumps the generation when it marks a Customer for
		// deletion; a tombstone whose last generation the sink has was delivered
		// to it as customer.deleted already.
		if c.Spec.Lifecycle == crmv1alpha1.LifecycleDeleted && e.SyncedGeneration >= c.Generation-1 {
			r.Deliveries.Forget(k)
			continue
		}
		if o := rep.Outcome; o != nil && o.Deleted && o.Err != nil {
			r.record(c, sink, &e, o)
		}
		state, err := resolveSink(ctx, r.Secrets, r.Deliveries, sink)
		if err != nil {
			return ctrl.Result{}, fmt.Errorf("resolving CustomerSink %s: %w", sink.Name, err)
		}
		if state.reason == crmv1alpha1.ReasonEndpointGone {
			r.Deliveries.Forget(k)
			continue
		}
		if expired {
			r.Recorder.Eventf(c, sink, corev1.EventTypeWarning, "DeleteNotDelivered", "Finalize",
				"the delete was not delivered to CustomerSink %s within %s; letting the Customer go", sink.Name, grace)
			r.Deliveries.Forget(k)
			continue
		}
		d := planSink(sinkFacts{Ready: state.ready, Report: rep, Failing: e.ConsecutiveFailures > 0}, now)
		if d.Deliver {
			r.Deliveries.Deliver(k, c.Generation)
		}
		writes.add(d)
		remaining = append(remaining, e)
	}

	if len(remaining) == 0 {
		patch := patchOf(c)
		controllerutil.RemoveFinalizer(c, crmv1alpha1.CustomerFinalizer)
		if err := r.Patch(ctx, c, patch); err != nil && !apierrors.IsNotFound(err) {
			if apierrors.IsConflict(err) {
				return ctrl.Result{RequeueAfter: conflictRetryDelay}, nil
			}
			return ctrl.Result{}, fmt.Errorf("removing finalizer: %w", err)
		}
		return ctrl.Result{}, nil
	}
	wait := writes.wait
	if untilDeadline := deadline.Sub(now); wait == 0 || untilDeadline < wait {
		wait = untilDeadline
	}
	if writes.hold() {
		// The deletes' outcomes enqueue the Customer; no status write meanwhile.
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	status.Sinks = remaining
	r.unsynced(status, c.Generation, crmv1alpha1.ReasonDelivering, fmt.Sprintf("delivering the delete to %d sink(s)", len(remaining)))
	return r.writeStatus(ctx, c, status, wait)
}

// writeStatus writes the Customer's status under the resourceVersion it was
// computed from, and looks again after requeue. The cached Customer may lag
// behind the last status write, and a plain merge patch would then mix this
// write's conditions with that write's sinks (Synced False next to a synced
// sink).
func (r *CustomerReconciler) writeStatus(ctx context.Context, c *crmv1alpha1.Customer, status *crmv1alpha1.CustomerStatus, requeue time.Duration) (ctrl.Result, error) {
	if _, err := patchStatus(ctx, r.Client, c, &c.Status, status, withLock); err != nil {
		if apierrors.IsConflict(err) {
			// The cache was behind; the engine keeps what was delivered until
			// the status shows it, so the retry on fresh data loses nothing.
			return ctrl.Result{RequeueAfter: conflictRetryDelay}, nil
		}
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: requeue}, nil
}

func (r *CustomerReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// validateCustomer checks what the schema cannot; it returns a message naming the
// field, or "".
func validateCustomer(c *crmv1alpha1.Customer) string {
	var problems []string
	checkEmail := func(field, v string) {
		if v == "" {
			return
		}
		if a, err := mail.ParseAddress(v); err != nil || a.Address != v {
			problems = append(problems, fmt.Sprintf("%s: %q is not an email address", field, v))
		}
	}
	checkEmail("spec.email", c.Spec.Email)
	for i, ct := range c.Spec.Contacts {
		checkEmail(fmt.Sprintf("spec.contacts[%d].email", i), ct.Email)
	}
	for i, a := range c.Spec.Addresses {
		checkEmail(fmt.Sprintf("spec.addresses[%d].email", i), a.Email)
	}
	return strings.Join(problems, "; ")
}

// lastEvent is the event c's status records: the one its annotations name, or,
// when they name none (or a controllers-only cache left out annotations that
// status.lastEvent already mirrors), the one the status holds.
func lastEvent(c *crmv1alpha1.Customer) *crmv1alpha1.LastEvent {
	if le := crmv1alpha1.LastEventFromAnnotations(c.GetAnnotations()); le != nil {
		return le
	}
	return c.Status.LastEvent
}

func tombstoneUntil(c *crmv1alpha1.Customer) (time.Time, bool) {
	v, ok := c.GetAnnotations()[crmv1alpha1.AnnotationTombstoneUntil]
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, v)
	return t, err == nil
}

func tombstoneMessage(c *crmv1alpha1.Customer) string {
	if until, ok := tombstoneUntil(c); ok {
		return "deleted by the provider; the tombstone is removed at " + until.UTC().Format(time.RFC3339)
	}
	return "lifecycle is Deleted"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// SetupWithManager registers the reconciler: Customers, the sinks that select
// them, and the engine's finished deliveries.
func (r *CustomerReconciler) SetupWithManager(mgr ctrl.Manager) error {
	sinkToCustomers := sinkChangeHandler(mgr.GetClient())
	workers := r.MaxConcurrentReconciles
	if workers <= 0 {
		workers = 8
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named(CustomerControllerName).
		For(&crmv1alpha1.Customer{}, builder.WithPredicates(customerChanged)).
		Watches(&crmv1alpha1.CustomerSink{}, sinkToCustomers, builder.WithPredicates(sinkChangedForCustomers)).
		WatchesRawSource(r.Deliveries.CustomerEvents()).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Complete(r)
}

// Priorities in the Customer controller's queue (controller-runtime's priority
// queue; a higher one is served first). A change the API server reports for a
// Customer (a webhook's create or update, a delete) keeps the default, 0: a new
// customer's delivery waits for no bookkeeping. A delivery outcome's status
// write comes next (engine.OutcomePriority), and the Customers a CustomerSink
// change queues come after those outcomes: a new sink's thousands of Customers
// then do not hold back the statuses of the ones already delivered. The initial
// list and resyncs are controller-runtime's handler.LowPriority.
const SinkChangePriority = engine.OutcomePriority - 10

// sinkChangeHandler queues every Customer of a changed CustomerSink's namespace,
// at SinkChangePriority (handler.LowPriority for the sinks of the initial list).
func sinkChangeHandler(c client.Client) handler.EventHandler {
	enqueue := func(ctx context.Context, sink client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request], priority int) {
		list := &crmv1alpha1.CustomerList{}
		if err := c.List(ctx, list, client.InNamespace(sink.GetNamespace()), client.UnsafeDisableDeepCopy); err != nil {
			log.FromContext(ctx).Error(err, "listing Customers for a CustomerSink change")
			return
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for i := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: list.Items[i].Namespace, Name: list.Items[i].Name}})
		}
		if pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request]); ok {
			pq.AddWithOpts(priorityqueue.AddOpts{Priority: &priority}, reqs...)
			return
		}
		for _, req := range reqs {
			q.Add(req)
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			priority := SinkChangePriority
			if e.IsInInitialList {
				priority = handler.LowPriority
			}
			enqueue(ctx, e.Object, q, priority)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			priority := SinkChangePriority
			if e.ObjectOld.GetResourceVersion() == e.ObjectNew.GetResourceVersion() {
				priority = handler.LowPriority
			}
			enqueue(ctx, e.ObjectNew, q, priority)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, e.Object, q, SinkChangePriority)
		},
		GenericFunc: func(ctx context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, e.Object, q, SinkChangePriority)
		},
	}
}

// customerChanged ignores the Customer's own status writes: they would only
// bring it back to a reconcile that has nothing to do.
var customerChanged = predicate.Or(
	predicate.GenerationChangedPredicate{},
	predicate.LabelChangedPredicate{},
	predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		return annotationsChanged(e.ObjectOld, e.ObjectNew) ||
			!slices.Equal(e.ObjectOld.GetFinalizers(), e.ObjectNew.GetFinalizers()) ||
			!e.ObjectOld.GetDeletionTimestamp().Equal(e.ObjectNew.GetDeletionTimestamp())
	}},
)

// annotationsChanged is predicate.AnnotationChangedPredicate for Customers
// whose last-event annotations may have left the cache: it compares those by
// the event they record, since a controllers-only cache leaves them out once
// status.lastEvent mirrors them (cachetransform.DropMirroredLastEvent), and
// that is no change.
func annotationsChanged(oldObj, newObj client.Object) bool {
	o, ok1 := oldObj.(*crmv1alpha1.Customer)
	n, ok2 := newObj.(*crmv1alpha1.Customer)
	if !ok1 || !ok2 {
		return !maps.Equal(oldObj.GetAnnotations(), newObj.GetAnnotations())
	}
	if !lastEvent(o).Same(lastEvent(n)) {
		return true
	}
	return !equalExcept(o.Annotations, n.Annotations, crmv1alpha1.LastEventAnnotations())
}

// equalExcept says whether a and b hold the same entries, leaving out skip.
func equalExcept(a, b map[string]string, skip []string) bool {
	count := func(m map[string]string) int {
		n := len(m)
		for _, k := range skip {
			if _, ok := m[k]; ok {
				n--
			}
		}
		return n
	}
	if count(a) != count(b) {
		return false
	}
	for k, v := range a {
		if slices.Contains(skip, k) {
			continue
		}
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// sinkChangedForCustomers passes sink creations, deletions, spec changes and Ready
// changes: what changes where a Customer must be delivered. The sink's counts
// change on every delivery and would set off a storm.
var sinkChangedForCustomers = predicate.Or(
	predicate.GenerationChangedPredicate{},
	predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			oldSink, ok1 := e.ObjectOld.(*crmv1alpha1.CustomerSink)
			newSink, ok2 := e.ObjectNew.(*crmv1alpha1.CustomerSink)
			if !ok1 || !ok2 {
				return true
			}
			o := meta.FindStatusCondition(oldSink.Status.Conditions, crmv1alpha1.ConditionReady)
			n := meta.FindStatusCondition(newSink.Status.Conditions, crmv1alpha1.ConditionReady)
			if o == nil || n == nil {
				return o != n
			}
			if !oldSink.DeletionTimestamp.Equal(newSink.DeletionTimestamp) {
				return true
			}
			// A pause starting or ending changes nothing the Customers must do:
			// their deliveries wait in the sink's queue.
			if canDeliver(o.Reason) && canDeliver(n.Reason) {
				return false
			}
			return o.Status != n.Status || o.Reason != n.Reason
		},
	},
)

// canDeliver says whether a sink's Ready reason lets deliveries be queued: it
// can receive, or is paused and its queue waits.
func canDeliver(reason string) bool {
	switch reason {
	case crmv1alpha1.ReasonValid, engine.ReasonThrottled, engine.ReasonBackingOff, engine.ReasonConnectionLimit:
		return true
	}
	return false
}
