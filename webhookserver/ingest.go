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
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
)

// Annotations the webhook server keeps on the Customers it writes, beside the
// last-event annotations of the API package.
const (
	// AnnotationRecentEventIDs holds the ids of the last events applied to a
	// Customer (a JSON array, oldest first, at most RecentEventIDs). A repeat of
	// any of them is a duplicate, whatever its timestamp. It is written with the
	// spec, so it survives restarts and is shared by every replica.
	AnnotationRecentEventIDs = "crm.customer-operator.io/recent-event-ids"
	// AnnotationSourceLabels lists, sorted and comma-separated, the label keys the
	// source set from its customerLabels at its last write: a key later removed
	// from customerLabels is removed from the Customer, while labels set by hand
	// are left alone.
	AnnotationSourceLabels = "crm.customer-operator.io/source-labels"
)

// OwnAnnotations are the annotations only the webhook server reads: a process
// that runs no webhook server may leave them out of its cache.
var OwnAnnotations = []string{AnnotationRecentEventIDs, AnnotationSourceLabels}

// RecentEventIDs is how many applied event ids a Customer remembers. A provider's
// retry of an older event is then either among them (a duplicate) or older than
// the last applied event (stale).
const RecentEventIDs = 32

// DefaultTombstoneRetention applies when a source does not set one. It is the
// CRD's default too: 7 days covers the providers' retry windows.
const DefaultTombstoneRetention = 7 * 24 * time.Hour

// maxWriteAttempts bounds the optimistic-concurrency retries of one event; each
// retry re-reads the Customer from the API server, so only a burst of concurrent
// writers to the same customer can exhaust it (and then the provider retries).
const maxWriteAttempts = 8

// Reasons of events rejected for good: retrying them cannot help.
const (
	// ReasonInvalidCustomer is an event whose Customer the API server refuses
	// (the CRD's schema: lengths, enums, CEL rules).
	ReasonInvalidCustomer = "invalid_customer"
	// ReasonNameTaken is an event whose Customer names are both taken by records
	// that are not this source's (written by hand).
	ReasonNameTaken = "name_taken"
	// ReasonEventInFuture is an event whose time is later than now plus the
	// source's timestampTolerance. Applied, it would make every later real
	// event for its customer stale until that time.
	ReasonEventInFuture = "event_in_future"
	// ReasonEventIDTooLong and ReasonEventTypeTooLong are events whose id or
	// type is longer than MaxEventIDBytes or MaxEventTypeBytes.
	ReasonEventIDTooLong   = "event_id_too_long"
	ReasonEventTypeTooLong = "event_type_too_long"
)

// Bounds of an event's identity, which a Customer keeps in its annotations:
// the id in last-event-id and, with RecentEventIDs-1 others, in
// recent-event-ids; the type in last-event-type. Longer ones are rejected
// (422, with the field), not stored hashed: the annotations then name the
// provider's own ids, which people search the provider for. 33 ids of 512
// bytes are 17 KiB of the 256 KiB the API server allows a Customer's
// annotations; the longest ids the providers compose (PayWay's and Phasio's,
// from a 253-character customer id, an event name and a timestamp) stay under
// it.
const (
	MaxEventIDBytes   = 512
	MaxEventTypeBytes = 128
)

// checkEvent refuses an event whose identity or time the Customer cannot keep:
// an id or type over the bounds, or a time later than now plus the source's
// timestampTolerance. The field is the one the sender sent, when known.
func checkEvent(src *crmv1alpha1.CustomerSource, ev *providers.Event, now time.Time) *EventRejection {
	field := func(name, fallback string) string {
		if name != "" {
			return name
		}
		return fallback
	}
	if r := ev.Rejection; r != nil {
		return &EventRejection{Reason: r.Reason, Field: r.Field, Message: r.Message}
	}
	if len(ev.ID) > MaxEventIDBytes {
		return &EventRejection{Reason: ReasonEventIDTooLong, Field: field(ev.Fields.ID, "id"),
			Message: fmt.Sprintf("event id of %d bytes, longer than %d", len(ev.ID), MaxEventIDBytes)}
	}
	if len(ev.Type) > MaxEventTypeBytes {
		return &EventRejection{Reason: ReasonEventTypeTooLong, Field: field(ev.Fields.Type, "type"),
			Message: fmt.Sprintf("event type of %d bytes, longer than %d", len(ev.Type), MaxEventTypeBytes)}
	}
	tolerance := DefaultTimestampTolerance
	if src.Spec.TimestampTolerance != nil {
		tolerance = src.Spec.TimestampTolerance.Duration
	}
	if limit := now.Add(tolerance); ev.Time.After(limit) {
		return &EventRejection{Reason: ReasonEventInFuture, Field: field(ev.Fields.Time, "time"),
			Message: fmt.Sprintf("event time %s is later than now plus the source's timestampTolerance (%s)",
				ev.Time.UTC().Format(time.RFC3339), tolerance)}
	}
	return nil
}

// shortEventID is an event id as answers and logs quote it: a rejected id may
// be of any length.
func shortEventID(id string) string {
	const keep = 64
	if len(id) <= keep {
		return id
	}
	return strings.ToValidUTF8(id[:keep], "") + "..."
}

// ErrCustomerDeleting is an event for a Customer being deleted (its
// deletionTimestamp set, its finalizer delivering the delete): it is answered 503
// and applied, as a new record, once the Customer is gone.
var ErrCustomerDeleting = errors.New("the Customer is being deleted")

// EventRejection is an event that can never be applied as it is. The rest of its
// request is still applied and acknowledged; the event is reported in the answer,
// counted, and raised as a Warning Event on its CustomerSource.
type EventRejection struct {
	// Reason is one of the Reason constants above.
	Reason string
	// Field is the Customer field the API server refused, e.g. "spec.companyName".
	Field string
	// Message says why.
	Message string
}

func (e *EventRejection) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", e.Reason, e.Field, e.Message)
	}
	return e.Reason + ": " + e.Message
}

// eventRejection turns the API server's refusal of a Customer into an
// EventRejection, or returns nil for failures that may pass on a retry.
func eventRejection(err error) *EventRejection {
	if !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err) && !apierrors.IsRequestEntityTooLargeError(err) {
		return nil
	}
	r := &EventRejection{Reason: ReasonInvalidCustomer, Message: "the Customer does not pass the schema"}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		if d := status.Status().Details; d != nil && len(d.Causes) > 0 {
			r.Field, r.Message = d.Causes[0].Field, d.Causes[0].Message
		} else if m := status.Status().Message; m != "" {
			r.Message = m
		}
	}
	return r
}

// Ingester applies provider-neutral events to Customers: one path for every
// provider, so identity, ownership, de-duplication, order and tombstones behave
// the same.
type Ingester struct {
	// Client reads from the manager's cache and writes to the API server.
	Client client.Client
	// APIReader reads from the API server; used after a conflict, when the cache
	// is known to be behind.
	APIReader client.Reader
	// Create creates a Customer; Client.Create when nil.
	Create CreateFunc
}

// Apply persists one event and returns its outcome: OutcomeApplied,
// OutcomeDuplicate or OutcomeStale. It returns only after the write succeeded in
// the API server, or with an error: an *EventRejection when the event can never
// be applied, ErrCustomerDeleting, or a transient failure.
func (in *Ingester) Apply(ctx context.Context, src *crmv1alpha1.CustomerSource, ev *providers.Event, receivedAt time.Time) (string, error) {
	if r := checkEvent(src, ev, receivedAt); r != nil {
		return "", r
	}
	plain := CustomerName(ev.Customer.Provider, ev.Customer.ExternalID)
	qualified := SourceCustomerName(ev.Customer.Provider, ev.Customer.ExternalID, src.Name)
	var reader client.Reader = in.Client
	for attempt := 0; attempt < maxWriteAttempts; attempt++ {
		key, cur, err := in.find(ctx, reader, src, ev, plain, qualified)
		if err != nil {
			return "", err
		}
		if cur == nil {
			obj := &crmv1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
			in.mutate(obj, nil, src, ev, receivedAt)
			// The Customer controller's finalizer, set at creation: a new Customer
			// then costs the create and its status write, without a finalizer
			// patch between them.
			controllerutil.AddFinalizer(obj, crmv1alpha1.CustomerFinalizer)
			if in.Create != nil {
				err = in.Create(ctx, obj)
			} else {
				err = in.Client.Create(ctx, obj)
			}
			if apierrors.IsAlreadyExists(err) {
				reader = in.APIReader
				continue
			}
			if err != nil {
				return "", writeError("creating", key, err)
			}
			return OutcomeApplied, nil
		}

		if cur.DeletionTimestamp != nil {
			return "", fmt.Errorf("customer %s: %w", key, ErrCustomerDeleting)
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
			return "", writeError("updating", key, err)
		}
		return OutcomeApplied, nil
	}
	return "", fmt.Errorf("updating Customer %s/%s: %w", src.Namespace, plain, errTooManyConflicts)
}

var errTooManyConflicts = errors.New("too many concurrent writers, retry later")

func writeError(verb string, key types.NamespacedName, err error) error {
	if r := eventRejection(err); r != nil {
		return r
	}
	return fmt.Errorf("%s Customer %s: %w", verb, key, err)
}

// find returns the Customer this source keeps for the event's customer, or nil
// and the name to create it under. A source's Customer has the plain name
// "{provider}-{id}" when that name was free or already this source's (or a
// hand-written record of the same provider id, which is adopted); otherwise it
// has the source-qualified name. Both are looked up, so a record keeps its name
// when the other one is freed later.
func (in *Ingester) find(ctx context.Context, reader client.Reader, src *crmv1alpha1.CustomerSource, ev *providers.Event, plain, qualified string) (types.NamespacedName, *crmv1alpha1.Customer, error) {
	plainKey := types.NamespacedName{Namespace: src.Namespace, Name: plain}
	cur := &crmv1alpha1.Customer{}
	err := reader.Get(ctx, plainKey, cur)
	plainFree := apierrors.IsNotFound(err)
	switch {
	case err == nil && belongsTo(cur, src, ev):
		return plainKey, cur, nil
	case err != nil && !plainFree:
		return plainKey, nil, fmt.Errorf("reading Customer %s: %w", plainKey, err)
	}

	qualifiedKey := types.NamespacedName{Namespace: src.Namespace, Name: qualified}
	cur = &crmv1alpha1.Customer{}
	err = reader.Get(ctx, qualifiedKey, cur)
	switch {
	case err == nil && belongsTo(cur, src, ev):
		return qualifiedKey, cur, nil
	case err == nil:
		return qualifiedKey, nil, &EventRejection{Reason: ReasonNameTaken, Field: "metadata.name",
			Message: fmt.Sprintf("Customers %q and %q exist and are not this source's records of %s %q", plain, qualified, ev.Customer.Provider, ev.Customer.ExternalID)}
	case !apierrors.IsNotFound(err):
		return qualifiedKey, nil, fmt.Errorf("reading Customer %s: %w", qualifiedKey, err)
	case plainFree:
		return plainKey, nil, nil
	default:
		return qualifiedKey, nil, nil
	}
}

// belongsTo says whether an existing Customer is this source's record of the
// event's customer: the same provider and external id, written by this source or
// by hand (no source label: adopted, as a provider is the source of truth for its
// own ids). Another source's record of the same id is never this source's.
func belongsTo(c *crmv1alpha1.Customer, src *crmv1alpha1.CustomerSource, ev *providers.Event) bool {
	if c.Spec.Provider != ev.Customer.Provider || c.Spec.ExternalID != ev.Customer.ExternalID {
		return false
	}
	owner := c.GetLabels()[crmv1alpha1.LabelSource]
	return owner == "" || owner == src.Name
}

// classify decides, from what the Customer last applied, whether an event is new.
// A remembered event id is a duplicate whatever its time; an older event is
// stale; an event as old as the last applied one but with another id is applied
// (the later arrival wins: providers with whole-second times send several events
// in one second, in order).
func classify(cur *crmv1alpha1.Customer, ev *providers.Event) string {
	ann := cur.GetAnnotations()
	if ann[crmv1alpha1.AnnotationLastEventID] == ev.ID || slices.Contains(recentEventIDs(ann), ev.ID) {
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

// recentEventIDs reads AnnotationRecentEventIDs; an unreadable value (edited by
// hand) counts as empty and is rewritten by the next write.
func recentEventIDs(ann map[string]string) []string {
	v, ok := ann[AnnotationRecentEventIDs]
	if !ok {
		return nil
	}
	var ids []string
	if json.Unmarshal([]byte(v), &ids) != nil {
		return nil
	}
	return ids
}

// sourceLabelKeys are the keys of the source's customerLabels it may set: the
// provider and source labels are the server's own.
func sourceLabelKeys(src *crmv1alpha1.CustomerSource) []string {
	keys := make([]string, 0, len(src.Spec.CustomerLabels))
	for k := range src.Spec.CustomerLabels {
		if k != crmv1alpha1.LabelProvider && k != crmv1alpha1.LabelSource {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
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

	ann := maps.Clone(obj.GetAnnotations())
	if ann == nil {
		ann = map[string]string{}
	}

	// The source's customerLabels replace what it set before; labels set by hand
	// (on an adopted record) are kept.
	labels := maps.Clone(obj.GetLabels())
	if labels == nil {
		labels = map[string]string{}
	}
	keys := sourceLabelKeys(src)
	for prev := range strings.SplitSeq(ann[AnnotationSourceLabels], ",") {
		if _, keep := src.Spec.CustomerLabels[prev]; prev != "" && !keep {
			delete(labels, prev)
		}
	}
	for _, k := range keys {
		labels[k] = src.Spec.CustomerLabels[k]
	}
	labels[crmv1alpha1.LabelProvider] = string(src.Spec.Provider)
	labels[crmv1alpha1.LabelSource] = src.Name
	obj.SetLabels(labels)
	if len(keys) > 0 {
		ann[AnnotationSourceLabels] = strings.Join(keys, ",")
	} else {
		delete(ann, AnnotationSourceLabels)
	}

	ids := append(recentEventIDs(ann), ev.ID)
	if len(ids) > RecentEventIDs {
		ids = ids[len(ids)-RecentEventIDs:]
	}
	encoded, _ := json.Marshal(ids) // a []string always encodes
	ann[AnnotationRecentEventIDs] = string(encoded)
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
