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
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/internal/secretcache"
	"github.com/customer-operator/customer-operator/webhookserver/providers/generic"
	"github.com/customer-operator/customer-operator/webhookserver/providers/registry"
)

// secretRefIndex indexes sources and sinks by the Secret they reference, so a
// Secret change reaches exactly the objects that use it.
const secretRefIndex = ".spec.secretRef.name"

// CustomerSourceReconciler checks that a source's Secret can authenticate its
// provider's webhooks and publishes the source's webhook path.
type CustomerSourceReconciler struct {
	client.Client
	// Recorder turns changes of the Ready condition into Events, so that
	// `kubectl describe csrc` tells why a provider's webhooks started to be refused
	// (for example after a key rotation) and when they are accepted again.
	Recorder events.EventRecorder
	Secrets  *secretcache.Store
}

// +kubebuilder:rbac:groups=crm.customer-operator.io,resources=customersources,verbs=get;list;watch
// +kubebuilder:rbac:groups=crm.customer-operator.io,resources=customersources/status,verbs=get;update;patch

// Reconcile sets the source's Ready condition, observedGeneration and webhookPath.
func (r *CustomerSourceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	src := &crmv1alpha1.CustomerSource{}
	if err := r.Get(ctx, req.NamespacedName, src); err != nil {
		if apierrors.IsNotFound(err) {
			// Deleted: its series goes too, so no alert fires on a source that is gone.
			sourceReady.DeleteLabelValues(req.String())
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	status := src.Status.DeepCopy()
	status.ObservedGeneration = src.Generation
	status.WebhookPath = fmt.Sprintf("/hooks/%s/%s", src.Namespace, src.Name)

	ready, reason, msg, err := r.check(ctx, src)
	if err != nil {
		return ctrl.Result{}, err
	}
	before := meta.FindStatusCondition(src.Status.Conditions, crmv1alpha1.ConditionReady)
	if src.Spec.Suspend {
		// The check still runs, so the message says what resuming would meet.
		reason, msg = crmv1alpha1.ReasonSuspended, suspendedMessage(sourceSuspendedMessage, reason, msg)
		setSuspended(&status.Conditions, src.Generation, msg)
	} else {
		setReady(&status.Conditions, src.Generation, ready, reason, msg)
	}

	// The lock makes a reconcile from a stale cache fail (and retry) rather than
	// write, and announce, a transition that already happened.
	written, err := patchStatus(ctx, r.Client, src, &src.Status, status, withLock)
	if err != nil {
		return ctrl.Result{}, err
	}
	// Like the Event, the gauge follows the persisted condition (0 while
	// suspended, as no webhook is accepted); it is set when nothing changes too,
	// so it is right after a restart.
	setSourceReady(req.NamespacedName, ready)
	if !written {
		return ctrl.Result{}, nil
	}
	r.recordTransition(src, before, ready, reason, msg)
	return ctrl.Result{}, nil
}

// recordTransition records an Event when the source becomes Ready, stops being
// Ready, or is not Ready for a new reason; a status rewrite that keeps the same
// state records nothing. It runs after the status is persisted, so an Event
// never announces a state that was not written.
func (r *CustomerSourceReconciler) recordTransition(src *crmv1alpha1.CustomerSource, before *metav1.Condition, ready bool, reason, msg string) {
	if r.Recorder == nil {
		return
	}
	wasReady := before != nil && before.Status == metav1.ConditionTrue
	switch {
	case ready && !wasReady:
		r.Recorder.Eventf(src, nil, corev1.EventTypeNormal, "Ready", "Validate", "%s", msg)
	case !ready && (wasReady || before == nil || before.Reason != reason):
		r.Recorder.Eventf(src, nil, corev1.EventTypeWarning, reason, "Validate", "not ready: %s", msg)
	}
}

const sourceSuspendedMessage = "the source is suspended: webhooks are answered 503"

// setSourceReady sets customer_operator_source_ready for the source.
func setSourceReady(source types.NamespacedName, ready bool) {
	v := 0.0
	if ready {
		v = 1
	}
	sourceReady.WithLabelValues(source.String()).Set(v)
}

func (r *CustomerSourceReconciler) check(ctx context.Context, src *crmv1alpha1.CustomerSource) (bool, string, string, error) {
	provider, err := registry.ForSource(src)
	var exprErr *generic.ExpressionError
	switch {
	case errors.As(err, &exprErr):
		return false, crmv1alpha1.ReasonInvalidExpression, fmt.Sprintf("%s: %s; nothing is served until it is fixed", exprErr.Field, exprErr.Message), nil
	case err != nil:
		return false, crmv1alpha1.ReasonInvalidSpec, err.Error(), nil
	}
	data, err := r.Secrets.Get(ctx, types.NamespacedName{Namespace: src.Namespace, Name: src.Spec.SecretRef.Name})
	if apierrors.IsNotFound(err) {
		return false, crmv1alpha1.ReasonSecretNotFound, fmt.Sprintf("Secret %q not found", src.Spec.SecretRef.Name), nil
	}
	if err != nil {
		return false, "", "", err
	}
	if err := provider.ValidateSecret(data); err != nil {
		return false, crmv1alpha1.ReasonSecretInvalid, fmt.Sprintf("Secret %q: %v", src.Spec.SecretRef.Name, err), nil
	}
	if src.Spec.Suspend {
		return false, crmv1alpha1.ReasonSuspended, sourceSuspendedMessage, nil
	}
	return true, crmv1alpha1.ReasonValid, fmt.Sprintf("accepting %s webhooks at /hooks/%s/%s", src.Spec.Provider, src.Namespace, src.Name), nil
}

// SetupWithManager registers the reconciler; Secrets are watched as metadata only.
func (r *CustomerSourceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &crmv1alpha1.CustomerSource{}, secretRefIndex,
		func(o client.Object) []string { return []string{o.(*crmv1alpha1.CustomerSource).Spec.SecretRef.Name} }); err != nil {
		return fmt.Errorf("indexing CustomerSources by Secret: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&crmv1alpha1.CustomerSource{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesMetadata(&corev1.Secret{}, secretToReferrers(mgr.GetClient(), &crmv1alpha1.CustomerSourceList{})).
		Complete(r)
}

// secretToReferrers maps a Secret to the objects of list's kind in its namespace
// that reference it.
func secretToReferrers(c client.Client, list client.ObjectList) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		l := list.DeepCopyObject().(client.ObjectList)
		if err := c.List(ctx, l, client.InNamespace(o.GetNamespace()), client.MatchingFields{secretRefIndex: o.GetName()}); err != nil {
			return nil
		}
		var reqs []reconcile.Request
		switch items := l.(type) {
		case *crmv1alpha1.CustomerSourceList:
			for i := range items.Items {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&items.Items[i])})
			}
		case *crmv1alpha1.CustomerSinkList:
			for i := range items.Items {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&items.Items[i])})
			}
		}
		return reqs
	})
}
