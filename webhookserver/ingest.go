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
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
)

// DefaultTombstoneRetention applies when a source does not set one.
const DefaultTombstoneRetention = 24 * time.Hour

// maxWriteAttempts bounds the optimistic-concurrency retries of one event; each
// retry re-reads the Customer from the API server, so only a burst of concurrent
// writers to the same customer can exhaust it (and then the provider retries).
const maxWriteAttempts = 8

// errNameTaken is a Customer of the computed name that belongs to someone else
// (written by hand, or another provider id hashed to the same name).
var errNameTaken = errors.New("a Customer of that name exists and was not written by this source")

// Ingester applies provider-neutral events to Customers: one path for every
// provider, so identity, de-duplication, order and tombstones behave the same.
type Ingester struct {
	// Client reads from the manager's cache and writes to the API server.
	Client client.Client
	// APIReader reads from the API server; used after a conflict, when the cache
	// is known to be behind.
	APIReader client.Reader
}

// Apply persists one event and returns its outcome: OutcomeApplied,
// OutcomeDuplicate or OutcomeStale. It returns only after the write succeeded in
// the API server, or with an error.
func (in *Ingester) Apply(ctx context.Context, src *crmv1alpha1.CustomerSource, ev *providers.Event, receivedAt time.Time) (string, error) {
	key := types.NamespacedName{Namespace: src.Namespace, Name: CustomerName(ev.Customer.Provider, ev.Customer.ExternalID)}
	var reader client.Reader = in.Client
	for attempt := 0; attempt < maxWriteAttempts; attempt++ {
		cur := &crmv1alpha1.Customer{}
		err := reader.Get(ctx, key, cur)
		switch {
		case apierrors.IsNotFound(err):
			obj := &crmv1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
			in.mutate(obj, nil, src, ev, receivedAt)
			err = in.Client.Create(ctx, obj)
			if apierrors.IsAlreadyExists(err) {
				reader = in.APIReader
				continue
			}
			if err != nil {
				return "", fmt.Errorf("creating Customer %s: %w", key, err)
			}
			return OutcomeApplied, nil
		case err != nil:
			return "", fmt.Errorf("reading Customer %s: %w", key, err)
		}

		if !ownedBy(cur, ev) {
			return "", fmt.Errorf("customer %s: %w", key, errNameTaken)
		}
		if outcome := classify(cur, ev); outcome != OutcomeApplied {
			return outcome, nil
		}
		upd := cur.DeepCopy()
		in.mutate(upd, cur, src, ev, receivedAt)
		err = in.Client.Update(ctx, upd)
		if apierrors.IsConflict(err) {
			reader = in.APIReader
			continue
		}
		if err != nil {
			return "", fmt.Errorf("updating Customer %s: %w", key, err)
		}
		return OutcomeApplied, nil
	}
	return "", fmt.Errorf("updating Customer %s: %w", key, errTooManyConflicts)
}

var errTooManyConflicts = errors.New("too many concurrent writers, retry later")

// ownedBy says whether an existing Customer is this provider's record of the
// same external id. The provider is the source of truth for its own ids, so a
// record written by hand (or by another source) for the same id is adopted.
func ownedBy(cur *crmv1alpha1.Customer, ev *providers.Event) bool {
	return cur.Spec.Provider == ev.Customer.Provider && cur.Spec.ExternalID == ev.Customer.ExternalID
}

// classify decides, from what the Customer last applied, whether an event is new.
func classify(cur *crmv1alpha1.Customer, ev *providers.Event) string {
	ann := cur.GetAnnotations()
	if ann[crmv1alpha1.AnnotationLastEventID] == ev.ID {
		return OutcomeDuplicate
	}
	if last, err := time.Parse(time.RFC3339Nano, ann[crmv1alpha1.AnnotationLastEventTime]); err == nil && ev.Time.Before(last) {
		return OutcomeStale
	}
	// A tombstone is never brought back: during its retention every later event
	// for the customer is a late one (providers do not reuse deleted ids).
	if cur.Spec.Lifecycle == crmv1alpha1.LifecycleDeleted {
		if ev.Action == providers.ActionDelete {
			return OutcomeDuplicate
		}
		return OutcomeStale
	}
	return OutcomeApplied
}

// mutate writes the event into obj; cur is the stored Customer, nil on create.
func (in *Ingester) mutate(obj, cur *crmv1alpha1.Customer, src *crmv1alpha1.CustomerSource, ev *providers.Event, receivedAt time.Time) {
	spec := *ev.Customer.DeepCopy()
	if ev.Action == providers.ActionDelete {
		// A delete event may carry little; keep the record as it was, marked deleted.
		if cur != nil {
			spec = *cur.Spec.DeepCopy()
		}
		spec.Lifecycle = crmv1alpha1.LifecycleDeleted
	} else if spec.Lifecycle == "" {
		spec.Lifecycle = crmv1alpha1.LifecycleActive
	}
	obj.Spec = spec

	labels := maps.Clone(obj.GetLabels())
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, src.Spec.CustomerLabels)
	labels[crmv1alpha1.LabelProvider] = string(src.Spec.Provider)
	labels[crmv1alpha1.LabelSource] = src.Name
	obj.SetLabels(labels)

	ann := maps.Clone(obj.GetAnnotations())
	if ann == nil {
		ann = map[string]string{}
	}
	ann[crmv1alpha1.AnnotationLastEventID] = ev.ID
	ann[crmv1alpha1.AnnotationLastEventType] = ev.Type
	ann[crmv1alpha1.AnnotationLastEventTime] = ev.Time.UTC().Format(time.RFC3339Nano)
	ann[crmv1alpha1.AnnotationLastEventReceived] = receivedAt.UTC().Format(time.RFC3339Nano)
	if ev.Action == providers.ActionDelete {
		retention := DefaultTombstoneRetention
		if src.Spec.TombstoneRetention != nil {
			retention = src.Spec.TombstoneRetention.Duration
		}
		ann[crmv1alpha1.AnnotationTombstoneUntil] = receivedAt.Add(retention).UTC().Format(time.RFC3339)
	}
	obj.SetAnnotations(ann)
}
