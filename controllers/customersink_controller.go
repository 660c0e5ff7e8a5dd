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
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/delivery"
	"github.com/customer-operator/customer-operator/controllers/engine"
	"github.com/customer-operator/customer-operator/internal/secretcache"
)

// CustomerSinkReconciler checks a sink and its Secret, and counts the Customers it
// selects and has in sync.
type CustomerSinkReconciler struct {
	client.Client
	Secrets    *secretcache.Store
	Deliveries Deliveries
	// CountInterval bounds how often a sink's counts are refreshed while its
	// Customers change; counts are for people, not worth a write per delivery.
	CountInterval time.Duration
	// AddressPolicy is the delivery client's: a sink it refuses is not Ready.
	AddressPolicy delivery.AddressPolicy
}

// +kubebuilder:rbac:groups=crm.customer-operator.io,resources=customersinks,verbs=get;list;watch
// +kubebuilder:rbac:groups=crm.customer-operator.io,resources=customersinks/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=crm.customer-operator.io,resources=customers,verbs=get;list;watch

// Reconcile sets the sink's Ready condition, observedGeneration and counts.
func (r *CustomerSinkReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	sink := &crmv1alpha1.CustomerSink{}
	if err := r.Get(ctx, req.NamespacedName, sink); err != nil {
		if client.IgnoreNotFound(err) == nil {
			pendingCustomers.DeleteLabelValues(req.Namespace + "/" + req.Name)
			r.Deliveries.Forget(engine.Key{Namespace: req.Namespace, Sink: req.Name})
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	status := sink.Status.DeepCopy()
	status.ObservedGeneration = sink.Generation

	state, err := resolveSink(ctx, r.Secrets, r.Deliveries, sink)
	if err != nil {
		return ctrl.Result{}, err
	}
	state = checkSinkAddress(ctx, r.AddressPolicy, sink, state)
	var result ctrl.Result
	health := r.Deliveries.Health(req.NamespacedName, sink.Generation)
	if sink.Spec.Suspend {
		setSuspended(&status.Conditions, sink.Generation, suspendedMessage(sinkSuspendedMessage, state.reason, state.message))
	} else if p := health.Pause; state.ready && p != nil {
		setPaused(&status.Conditions, sink.Generation, p.Reason, fmt.Sprintf(
			"deliveries paused until %s after %s; then one probe goes out, and full speed resumes on its success",
			p.Until.UTC().Format(time.RFC3339), p.Cause))
		// Look again when the pause ends, in case nothing else brings the sink back.
		result.RequeueAfter = max(time.Until(p.Until), 0) + time.Second
	} else {
		setReady(&status.Conditions, sink.Generation, state.ready, state.reason, state.message)
		meta.RemoveStatusCondition(&status.Conditions, conditionReconciling)
	}

	customers := &crmv1alpha1.CustomerList{}
	// Read-only, and every Customer of the namespace: no copies.
	if err := r.List(ctx, customers, client.InNamespace(sink.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing Customers: %w", err)
	}
	var selected, synced int32
	token := sink.Annotations[crmv1alpha1.AnnotationRedeliver]
	redeliver := token != "" && token != status.LastHandledRedeliver && state.ready
	var names []string
	for i := range customers.Items {
		c := &customers.Items[i]
		if !selects(sink, c) {
			continue
		}
		selected++
		if redeliver {
			names = append(names, c.Name)
		}
		for _, e := range c.Status.Sinks {
			if e.Name == sink.Name && e.SyncedGeneration == c.Generation && e.SinkGeneration == sink.Generation {
				synced++
			}
		}
	}
	status.Selected, status.Synced = selected, synced
	pendingCustomers.WithLabelValues(sink.Namespace + "/" + sink.Name).Set(float64(selected - synced))

	// A redelivery is handed to the engine once, then recorded when the engine
	// reports every Customer acknowledged.
	switch {
	case !redeliver:
	case health.Redelivered == token:
		status.LastHandledRedeliver = token
	case health.Redelivering != token:
		log.FromContext(ctx).Info("redelivering", "token", token, "customers", len(names))
		r.Deliveries.Redeliver(req.NamespacedName, token, names)
	}

	// The status is computed whole from the Customers on every reconcile: the
	// last write wins, and needs no lock.
	if _, err := patchStatus(ctx, r.Client, sink, &sink.Status, status, withoutLock); err != nil {
		return ctrl.Result{}, err
	}
	return result, nil
}

// sinkChangedForSelf ignores the sink's own status writes. Without it, each
// write of the counts would bring the sink straight back for a recount and
// another write while its Customers are being synced: a write loop, ten a
// second, each recount listing every Customer of the namespace.
var sinkChangedForSelf = predicate.Or(
	predicate.GenerationChangedPredicate{},
	predicate.AnnotationChangedPredicate{}, // the redeliver token
	predicate.LabelChangedPredicate{},
	predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		return !slices.Equal(e.ObjectOld.GetFinalizers(), e.ObjectNew.GetFinalizers()) ||
			!e.ObjectOld.GetDeletionTimestamp().Equal(e.ObjectNew.GetDeletionTimestamp())
	}},
)

// SetupWithManager registers the reconciler. Customer changes reach the sinks of
// their namespace through a rate-limited queue, so counts follow within
// CountInterval without a sink write per Customer change.
func (r *CustomerSinkReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &crmv1alpha1.CustomerSink{}, secretRefIndex,
		func(o client.Object) []string {
			if ref := o.(*crmv1alpha1.CustomerSink).Spec.SecretRef; ref != nil {
				return []string{ref.Name}
			}
			return nil
		}); err != nil {
		return fmt.Errorf("indexing CustomerSinks by Secret: %w", err)
	}
	interval := r.CountInterval
	if interval <= 0 {
		interval = 2 * time.Second
	}
	customerToSinks := handler.Funcs{}
	enqueueSinks := func(ctx context.Context, ns string, q interface {
		AddAfter(reconcile.Request, time.Duration)
	}) {
		sinks := &crmv1alpha1.CustomerSinkList{}
		if err := mgr.GetClient().List(ctx, sinks, client.InNamespace(ns)); err != nil {
			return
		}
		for i := range sinks.Items {
			// AddAfter de-duplicates: a burst of Customer changes is one recount.
			q.AddAfter(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&sinks.Items[i])}, interval)
		}
	}
	customerToSinks.CreateFunc = func(ctx context.Context, e event.TypedCreateEvent[client.Object], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		enqueueSinks(ctx, e.Object.GetNamespace(), q)
	}
	customerToSinks.UpdateFunc = func(ctx context.Context, e event.TypedUpdateEvent[client.Object], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		enqueueSinks(ctx, e.ObjectNew.GetNamespace(), q)
	}
	customerToSinks.DeleteFunc = func(ctx context.Context, e event.TypedDeleteEvent[client.Object], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		enqueueSinks(ctx, e.Object.GetNamespace(), q)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&crmv1alpha1.CustomerSink{}, builder.WithPredicates(sinkChangedForSelf)).
		Watches(&crmv1alpha1.Customer{}, customerToSinks).
		WatchesMetadata(&corev1.Secret{}, secretToReferrers(mgr.GetClient(), &crmv1alpha1.CustomerSinkList{})).
		WatchesRawSource(r.Deliveries.SinkEvents()).
		Complete(r)
}
