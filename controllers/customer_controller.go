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
// CustomerSinks, and the Dispatcher that delivers Customers to sinks.
package controllers

import (
	"context"
	"fmt"
	"net/mail"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/internal/secretcache"
)

// DefaultDeleteGracePeriod is how long a Customer's delete is retried at a sink
// that had received it before the finalizer lets the Customer go anyway.
const DefaultDeleteGracePeriod = time.Hour

// CustomerReconciler validates Customers, delivers them to the sinks that select
// them, and reports both in their status.
type CustomerReconciler struct {
	client.Client
	Recorder   events.EventRecorder
	Secrets    *secretcache.Store
	Dispatcher *Dispatcher
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
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}

	if !c.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, c, false)
	}
	if !controllerutil.ContainsFinalizer(c, crmv1alpha1.CustomerFinalizer) {
		patch := client.MergeFrom(c.DeepCopy())
		controllerutil.AddFinalizer(c, crmv1alpha1.CustomerFinalizer)
		if err := r.Patch(ctx, c, patch); err != nil {
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
	if err := r.List(ctx, sinks, client.InNamespace(c.Namespace)); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing CustomerSinks: %w", err)
	}
	sort.Slice(sinks.Items, func(i, j int) bool { return sinks.Items[i].Name < sinks.Items[j].Name })

	status := c.Status.DeepCopy()
	status.ObservedGeneration = c.Generation
	status.LastEvent = lastEventFromAnnotations(c)

	if msg := validateCustomer(c); msg != "" {
		setReady(&status.Conditions, c.Generation, false, crmv1alpha1.ReasonInvalidSpec, msg)
		setCondition(&status.Conditions, c.Generation, crmv1alpha1.ConditionSynced, metav1.ConditionFalse,
			crmv1alpha1.ReasonInvalidSpec, "an invalid Customer is not delivered")
		meta.RemoveStatusCondition(&status.Conditions, conditionReconciling)
	} else {
		if c.Spec.Lifecycle == crmv1alpha1.LifecycleDeleted {
			setReady(&status.Conditions, c.Generation, true, crmv1alpha1.ReasonTombstone, tombstoneMessage(c))
		} else {
			setReady(&status.Conditions, c.Generation, true, crmv1alpha1.ReasonValid, "customer record is valid")
		}
		wait, err := r.deliver(ctx, c, sinks.Items, status)
		if err != nil {
			return ctrl.Result{}, err
		}
		if wait > 0 && (requeue == 0 || wait < requeue) {
			requeue = wait
		}
	}

	if err := r.writeStatus(ctx, c, status); err != nil {
		if apierrors.IsConflict(err) {
			// The cache was behind; the Dispatcher keeps what was delivered, so
			// the retry on fresh data loses nothing.
			return ctrl.Result{Requeue: true}, nil
		}
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// inlineDeliveryWait is how long a reconcile waits for the deliveries it started
// to healthy sinks. Most deliveries end well within it, and the Customer's status
// is then written once, Synced, instead of once Delivering and once Synced;
// a sink that failed last time is never waited for.
const inlineDeliveryWait = time.Second

// deliver reads finished deliveries into status, starts the ones the current
// generation still needs, and sets Synced. It returns when to look again for
// deliveries held back by their backoff.
func (r *CustomerReconciler) deliver(ctx context.Context, c *crmv1alpha1.Customer, sinks []crmv1alpha1.CustomerSink, status *crmv1alpha1.CustomerStatus) (time.Duration, error) {
	wait, started, waitable, err := r.deliverOnce(ctx, c, sinks, status)
	if err != nil || len(started) == 0 {
		return wait, err
	}
	limit := inlineDeliveryWait
	if !waitable {
		// Waiting would not bring the Customer to Synced in this reconcile.
		limit = 0
	}
	if !await(started, limit) {
		return wait, nil
	}
	wait, started, _, err = r.deliverOnce(ctx, c, sinks, status)
	if await(started, 0) {
		// An outcome ended in our hands with no second look planned: look again.
		wait = time.Millisecond
	}
	return wait, err
}

func (r *CustomerReconciler) deliverOnce(ctx context.Context, c *crmv1alpha1.Customer, sinks []crmv1alpha1.CustomerSink, status *crmv1alpha1.CustomerStatus) (time.Duration, []*pending, bool, error) {
	key := types.NamespacedName{Namespace: c.Namespace, Name: c.Name}
	previous := map[string]crmv1alpha1.SinkSyncStatus{}
	for _, e := range status.Sinks {
		previous[e.Name] = e
	}
	deleted := c.Spec.Lifecycle == crmv1alpha1.LifecycleDeleted

	var entries []crmv1alpha1.SinkSyncStatus
	var wait time.Duration
	var synced, failing, notReady []string
	var started []*pending
	waitable := true
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

		st := r.Dispatcher.Take(key, sink.Name)
		if st.done != nil {
			r.record(c, sink, &e, st.done)
		}
		if a := st.acked; a != nil && a.generation == c.Generation && a.sinkGeneration == sink.Generation &&
			(e.SyncedGeneration != a.generation || e.SinkGeneration != a.sinkGeneration) {
			r.record(c, sink, &e, a)
		}
		state, err := resolveSink(ctx, r.Secrets, r.Dispatcher, sink)
		if err != nil {
			await(started, 0)
			return 0, nil, false, fmt.Errorf("resolving CustomerSink %s: %w", sink.Name, err)
		}
		switch {
		case e.SyncedGeneration == c.Generation && e.SinkGeneration == sink.Generation:
			synced = append(synced, sink.Name)
		case !state.ready:
			notReady = append(notReady, sink.Name+" ("+state.reason+")")
			waitable = false
		case st.inflight:
			waitable = false
		case st.wait > 0:
			if wait == 0 || st.wait < wait {
				wait = st.wait
			}
			waitable = false
		default:
			if p := r.Dispatcher.Start(c, sink, state.target, deleted); p != nil {
				started = append(started, p)
			} else {
				waitable = false
			}
		}
		// A sink that cannot receive (410 Gone, suspended, bad Secret) is reported
		// as not ready, with its reason, not as failing and "retrying": it is not.
		if state.ready && e.ConsecutiveFailures > 0 && !(e.SyncedGeneration == c.Generation && e.SinkGeneration == sink.Generation) {
			failing = append(failing, sink.Name)
		}
		entries = append(entries, e)
	}
	// Sinks deleted or no longer selecting leave the status, and the Dispatcher.
	for name := range previous {
		r.Dispatcher.Forget(key, name)
	}
	status.Sinks = entries

	total := len(entries)
	switch {
	case total == 0:
		r.synced(status, c.Generation, crmv1alpha1.ReasonNoSinks, "no CustomerSink selects this Customer")
	case len(synced) == total:
		r.synced(status, c.Generation, crmv1alpha1.ReasonSynced, fmt.Sprintf("generation %d delivered to %d sink(s)", c.Generation, total))
	case len(failing) > 0:
		r.unsynced(status, c.Generation, crmv1alpha1.ReasonDeliveryFailed, fmt.Sprintf("delivery failing to %s; retrying with backoff", strings.Join(failing, ", ")))
	case len(notReady) > 0:
		r.unsynced(status, c.Generation, crmv1alpha1.ReasonSinkNotReady, "sink(s) not ready: "+strings.Join(notReady, ", "))
	default:
		r.unsynced(status, c.Generation, crmv1alpha1.ReasonDelivering, fmt.Sprintf("delivering generation %d: %d of %d sink(s) synced", c.Generation, len(synced), total))
	}
	return wait, started, waitable, nil
}

func (r *CustomerReconciler) synced(status *crmv1alpha1.CustomerStatus, gen int64, reason, msg string) {
	setCondition(&status.Conditions, gen, crmv1alpha1.ConditionSynced, metav1.ConditionTrue, reason, msg)
	meta.RemoveStatusCondition(&status.Conditions, conditionReconciling)
}

func (r *CustomerReconciler) unsynced(status *crmv1alpha1.CustomerStatus, gen int64, reason, msg string) {
	setCondition(&status.Conditions, gen, crmv1alpha1.ConditionSynced, metav1.ConditionFalse, reason, msg)
	setCondition(&status.Conditions, gen, conditionReconciling, metav1.ConditionTrue, reason, msg)
}

// record writes a finished delivery into a sink's status entry. A failure raises
// a Kubernetes Event when the sink starts failing, not on every retry.
func (r *CustomerReconciler) record(c *crmv1alpha1.Customer, sink *crmv1alpha1.CustomerSink, e *crmv1alpha1.SinkSyncStatus, o *outcome) {
	if o.result.Err == nil {
		if o.generation >= e.SyncedGeneration {
			e.SyncedGeneration = o.generation
			e.SinkGeneration = o.sinkGeneration
		}
		t := metav1.NewTime(o.at)
		e.LastSyncTime = &t
		e.LastError = ""
		e.ConsecutiveFailures = 0
		return
	}
	if o.generation <= e.SyncedGeneration && o.sinkGeneration <= e.SinkGeneration {
		// A repeat of what the sink already acknowledged (started from a stale
		// read) failed: the sink is still in sync, nothing is failing.
		return
	}
	e.LastError = truncate(o.result.Err.Error(), 512)
	e.ConsecutiveFailures++
	if e.ConsecutiveFailures == 1 || o.result.Gone {
		r.Recorder.Eventf(c, sink, corev1.EventTypeWarning, "DeliveryFailed", "Deliver",
			"delivery of generation %d to CustomerSink %s failed: %s", o.generation, sink.Name, e.LastError)
	}
}

// finalize delivers the delete to every sink that had received the Customer, then
// lets it go. A sink that is deleted, or answered 410 Gone, is skipped; a failing
// or suspended one is retried until DeleteGracePeriod after the delete, then
// skipped with a Warning Event, so a dead sink never blocks a delete forever.
func (r *CustomerReconciler) finalize(ctx context.Context, c *crmv1alpha1.Customer, second bool) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(c, crmv1alpha1.CustomerFinalizer) {
		return ctrl.Result{}, nil
	}
	key := types.NamespacedName{Namespace: c.Namespace, Name: c.Name}
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
	expired := !r.now().Before(deadline)

	status := c.Status.DeepCopy()
	var remaining []crmv1alpha1.SinkSyncStatus
	var wait time.Duration
	var started []*pending
	for _, e := range status.Sinks {
		sink := byName[e.Name]
		if e.SyncedGeneration == 0 || sink == nil || !sink.DeletionTimestamp.IsZero() {
			r.Dispatcher.Forget(key, e.Name)
			continue
		}
		st := r.Dispatcher.Take(key, e.Name)
		if st.done != nil && st.done.deleted && st.done.result.Err != nil {
			r.record(c, sink, &e, st.done)
		}
		// The sink acknowledged a customer.deleted: for this delete, or for the
		// tombstone that preceded it. Either way it knows.
		if st.acked != nil && st.acked.deleted {
			r.Dispatcher.Forget(key, e.Name)
			continue
		}
		state, err := resolveSink(ctx, r.Secrets, r.Dispatcher, sink)
		if err != nil {
			return ctrl.Result{}, fmt.Errorf("resolving CustomerSink %s: %w", sink.Name, err)
		}
		if state.reason == crmv1alpha1.ReasonEndpointGone {
			continue
		}
		if expired {
			r.Recorder.Eventf(c, sink, corev1.EventTypeWarning, "DeleteNotDelivered", "Finalize",
				"the delete was not delivered to CustomerSink %s within %s; letting the Customer go", sink.Name, grace)
			r.Dispatcher.Forget(key, e.Name)
			continue
		}
		switch {
		case !state.ready, st.inflight:
		case st.wait > 0:
			if wait == 0 || st.wait < wait {
				wait = st.wait
			}
		default:
			if p := r.Dispatcher.Start(c, sink, state.target, true); p != nil {
				started = append(started, p)
			}
		}
		remaining = append(remaining, e)
	}

	if len(started) > 0 && await(started, inlineDeliveryWait) {
		if !second {
			// The deletes ended: take their outcomes now rather than on the next reconcile.
			return r.finalize(ctx, c, true)
		}
		wait = time.Millisecond
	}
	if len(remaining) == 0 {
		patch := client.MergeFrom(c.DeepCopy())
		controllerutil.RemoveFinalizer(c, crmv1alpha1.CustomerFinalizer)
		if err := r.Patch(ctx, c, patch); err != nil && !apierrors.IsNotFound(err) {
			return ctrl.Result{}, fmt.Errorf("removing finalizer: %w", err)
		}
		return ctrl.Result{}, nil
	}
	status.Sinks = remaining
	r.unsynced(status, c.Generation, crmv1alpha1.ReasonDelivering, fmt.Sprintf("delivering the delete to %d sink(s)", len(remaining)))
	if err := r.writeStatus(ctx, c, status); err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{Requeue: true}, nil
		}
		return ctrl.Result{}, err
	}
	untilDeadline := deadline.Sub(r.now())
	if wait == 0 || untilDeadline < wait {
		wait = untilDeadline
	}
	return ctrl.Result{RequeueAfter: wait}, nil
}

func (r *CustomerReconciler) writeStatus(ctx context.Context, c *crmv1alpha1.Customer, status *crmv1alpha1.CustomerStatus) error {
	if equality.Semantic.DeepEqual(&c.Status, status) {
		return nil
	}
	// The status was computed from the cached Customer, which may lag behind the
	// last status write; a plain merge patch would then mix this write's
	// conditions with that write's sinks (Synced False next to a synced sink).
	// With the resourceVersion in the patch, a stale write conflicts and the
	// reconcile is retried on fresh data.
	patch := client.MergeFromWithOptions(c.DeepCopy(), client.MergeFromWithOptimisticLock{})
	c.Status = *status
	if err := r.Status().Patch(ctx, c, patch); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("writing Customer status: %w", err)
	}
	return nil
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

func lastEventFromAnnotations(c *crmv1alpha1.Customer) *crmv1alpha1.LastEvent {
	ann := c.GetAnnotations()
	id := ann[crmv1alpha1.AnnotationLastEventID]
	if id == "" {
		return c.Status.LastEvent
	}
	le := &crmv1alpha1.LastEvent{ID: id, Type: ann[crmv1alpha1.AnnotationLastEventType]}
	if t, err := time.Parse(time.RFC3339Nano, ann[crmv1alpha1.AnnotationLastEventTime]); err == nil {
		mt := metav1.NewTime(t)
		le.Time = &mt
	}
	if t, err := time.Parse(time.RFC3339Nano, ann[crmv1alpha1.AnnotationLastEventReceived]); err == nil {
		mt := metav1.NewTime(t)
		le.ReceivedAt = &mt
	}
	return le
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
// them, and the Dispatcher's finished deliveries.
func (r *CustomerReconciler) SetupWithManager(mgr ctrl.Manager) error {
	sinkToCustomers := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		list := &crmv1alpha1.CustomerList{}
		if err := mgr.GetClient().List(ctx, list, client.InNamespace(o.GetNamespace()), client.UnsafeDisableDeepCopy); err != nil {
			log.FromContext(ctx).Error(err, "listing Customers for a CustomerSink change")
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for i := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: list.Items[i].Namespace, Name: list.Items[i].Name}})
		}
		return reqs
	})
	workers := r.MaxConcurrentReconciles
	if workers <= 0 {
		workers = 8
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&crmv1alpha1.Customer{}, builder.WithPredicates(customerChanged)).
		Watches(&crmv1alpha1.CustomerSink{}, sinkToCustomers, builder.WithPredicates(sinkChangedForCustomers)).
		WatchesRawSource(source.Channel(r.Dispatcher.customers, &handler.TypedEnqueueRequestForObject[*crmv1alpha1.Customer]{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Complete(r)
}

// customerChanged ignores the Customer's own status writes: they would only
// bring it back to a reconcile that has nothing to do.
var customerChanged = predicate.Or(
	predicate.GenerationChangedPredicate{},
	predicate.AnnotationChangedPredicate{},
	predicate.LabelChangedPredicate{},
	predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		return !slices.Equal(e.ObjectOld.GetFinalizers(), e.ObjectNew.GetFinalizers()) ||
			!e.ObjectOld.GetDeletionTimestamp().Equal(e.ObjectNew.GetDeletionTimestamp())
	}},
)

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
			return o.Status != n.Status || o.Reason != n.Reason ||
				!oldSink.DeletionTimestamp.Equal(newSink.DeletionTimestamp)
		},
	},
)
