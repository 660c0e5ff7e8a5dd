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

// Package cachetransform makes the objects the manager's informer cache holds
// smaller, without changing what any reader sees.
//
// The cache holds every Customer of the cluster, decoded: tens of thousands of
// objects whose strings mostly repeat (namespace, label keys and values,
// annotation keys, the finalizer, condition types, reasons and messages,
// provider, lifecycle, country codes) and whose label maps are mostly one of a
// few sets (those a CustomerSource writes). The decoder allocates each of them
// anew for every object. The transform makes the objects share them instead:
// strings through the standard library's unique package (or the constant the
// operator itself writes), label maps through a small table of the sets seen.
//
// Objects in the cache are shared and read-only by contract: controller-runtime
// hands out deep copies on Get and List, and code that opts out
// (UnsafeDisableDeepCopy), event handlers and predicates must not change them.
// Sharing a map between cached objects relies on the same contract.
package cachetransform

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"unique"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
)

// maxInternedLen bounds the free-form values (attribute values, condition
// messages, errors) worth interning: longer ones are rarely equal.
const maxInternedLen = 128

// maxLabelSets bounds the table of shared label maps. Label sets are few by
// design (selectors pick groups of objects); a cluster with more distinct sets
// than this just stops sharing the surplus.
const maxLabelSets = 4096

// known maps the strings the operator writes itself to the constants: interning
// one of them then costs no heap at all.
var known = func() map[string]string {
	m := map[string]string{}
	for _, s := range []string{
		crmv1alpha1.LabelProvider, crmv1alpha1.LabelSource,
		crmv1alpha1.AnnotationLastEventID, crmv1alpha1.AnnotationLastEventType,
		crmv1alpha1.AnnotationLastEventTime, crmv1alpha1.AnnotationLastEventReceived,
		crmv1alpha1.AnnotationTombstoneUntil, crmv1alpha1.CustomerFinalizer,
		crmv1alpha1.ConditionReady, crmv1alpha1.ConditionSynced,
		crmv1alpha1.ReasonValid, crmv1alpha1.ReasonInvalidSpec, crmv1alpha1.ReasonSecretNotFound,
		crmv1alpha1.ReasonSecretInvalid, crmv1alpha1.ReasonSuspended, crmv1alpha1.ReasonSynced,
		crmv1alpha1.ReasonNoSinks, crmv1alpha1.ReasonDelivering, crmv1alpha1.ReasonDeliveryFailed,
		crmv1alpha1.ReasonSinkNotReady, crmv1alpha1.ReasonEndpointGone, crmv1alpha1.ReasonTombstone,
		crmv1alpha1.ReasonAddressNotAllowed,
		string(crmv1alpha1.ProviderPhasio), string(crmv1alpha1.ProviderSmarterPay),
		string(crmv1alpha1.ProviderGETTRX), string(crmv1alpha1.ProviderPayway),
		string(crmv1alpha1.LifecycleActive), string(crmv1alpha1.LifecycleInactive),
		string(crmv1alpha1.LifecycleArchived), string(crmv1alpha1.LifecycleDeleted),
		string(crmv1alpha1.AddressBilling), string(crmv1alpha1.AddressShipping),
		string(crmv1alpha1.AddressDelivery), string(crmv1alpha1.AddressOther),
		"True", "False", "Unknown",
	} {
		m[s] = s
	}
	return m
}()

// Intern returns s, or an equal string whose bytes are shared with every other
// interned copy. unique keeps a canonical copy only while something refers to
// its handle, which the returned string does not; after a GC an equal string is
// copied once more and shared from then on, so the cache holds a few copies of
// each value at most instead of one per object.
func Intern(s string) string {
	if s == "" {
		return ""
	}
	if k, ok := known[s]; ok {
		return k
	}
	return unique.Make(s).Value()
}

// internShort interns s when it is short enough to be worth it.
func internShort(s string) string {
	if len(s) > maxInternedLen {
		return s
	}
	return Intern(s)
}

// Transformer is the cache's transform: for every object it strips the managed
// fields (as cache.TransformStripManagedFields does), and it compacts Customers.
type Transformer struct {
	mu sync.Mutex
	// labelSets holds one map per label set seen, keyed by its canonical form.
	labelSets map[string]map[string]string
	// drop are the annotation keys removed from cached Customers.
	drop []string
	// dropMirrored removes the last-event annotations that status.lastEvent
	// already records.
	dropMirrored bool
}

// New returns a Transformer with an empty table of label sets.
func New() *Transformer {
	return &Transformer{labelSets: map[string]map[string]string{}}
}

// DropAnnotations makes t remove these annotations from the Customers it
// caches, for a process in which nothing reads them (the webhook server's
// de-duplication state, in a controllers-only manager: up to 32 event ids, a
// kilobyte or more on a busy Customer). Whoever writes a cached Customer back
// must then patch it, never update it whole, or the annotations are lost.
func (t *Transformer) DropAnnotations(keys ...string) *Transformer {
	t.drop = append(t.drop, keys...)
	return t
}

// DropMirroredLastEvent makes t remove the last-event annotations from a
// Customer whose status.lastEvent already records that event, for a process
// that reads them only to mirror them there (a controllers-only manager): the
// annotation map is then mostly empty, and a Customer holds about 400 bytes
// less. A Customer whose status is behind keeps them, so the controller still
// sees the event it has to record. Readers must take a Customer without them
// to mean "as status.lastEvent says", and writers must patch, as with
// DropAnnotations.
func (t *Transformer) DropMirroredLastEvent() *Transformer {
	t.dropMirrored = true
	return t
}

// TransformFunc is t as the cache's DefaultTransform.
func (t *Transformer) TransformFunc() toolscache.TransformFunc { return t.Transform }

// Transform strips the managed fields of in and compacts it when it is a
// Customer. It is idempotent, as the informer requires, and safe for concurrent
// use: every informer calls it from its own goroutine.
func (t *Transformer) Transform(in any) (any, error) {
	// Nil-checked, as cache.TransformStripManagedFields does, to avoid
	// https://github.com/kubernetes/kubernetes/issues/124337.
	if obj, err := meta.Accessor(in); err == nil && obj.GetManagedFields() != nil {
		obj.SetManagedFields(nil)
	}
	if c, ok := in.(*crmv1alpha1.Customer); ok {
		t.compactCustomer(c)
	}
	return in, nil
}

func (t *Transformer) compactCustomer(c *crmv1alpha1.Customer) {
	c.Namespace = Intern(c.Namespace)
	c.Labels = t.shareLabels(c.Labels)
	before := len(c.Annotations)
	for _, k := range t.drop {
		delete(c.Annotations, k)
	}
	if t.dropMirrored && c.Status.LastEvent != nil && crmv1alpha1.LastEventFromAnnotations(c.Annotations).Same(c.Status.LastEvent) {
		for _, k := range crmv1alpha1.LastEventAnnotations() {
			delete(c.Annotations, k)
		}
	}
	if len(c.Annotations) == 0 && before > 0 {
		// An empty map still holds its table.
		c.Annotations = nil
	}
	internKeys(c.Annotations)
	if v, ok := c.Annotations[crmv1alpha1.AnnotationLastEventType]; ok {
		c.Annotations[crmv1alpha1.AnnotationLastEventType] = Intern(v)
	}
	for i := range c.Finalizers {
		c.Finalizers[i] = Intern(c.Finalizers[i])
	}
	for i := range c.OwnerReferences {
		r := &c.OwnerReferences[i]
		r.APIVersion, r.Kind = Intern(r.APIVersion), Intern(r.Kind)
	}

	s := &c.Spec
	s.Provider = crmv1alpha1.Provider(Intern(string(s.Provider)))
	s.Lifecycle = crmv1alpha1.Lifecycle(Intern(string(s.Lifecycle)))
	s.Language = Intern(s.Language)
	for i := range s.Contacts {
		ct := &s.Contacts[i]
		ct.Title, ct.NotificationPreference = Intern(ct.Title), internShort(ct.NotificationPreference)
	}
	for i := range s.Addresses {
		a := &s.Addresses[i]
		a.Type = crmv1alpha1.AddressType(Intern(string(a.Type)))
		a.City, a.State, a.Country = internShort(a.City), internShort(a.State), Intern(a.Country)
	}
	for k, v := range s.Attributes {
		// Assigning to an existing key stores the key given, so this interns
		// the keys in place, without a new map.
		s.Attributes[Intern(k)] = internShort(v)
	}

	st := &c.Status
	for i := range st.Conditions {
		cd := &st.Conditions[i]
		cd.Type, cd.Reason = Intern(cd.Type), Intern(cd.Reason)
		cd.Status = metav1.ConditionStatus(Intern(string(cd.Status)))
		cd.Message = internShort(cd.Message)
	}
	if le := st.LastEvent; le != nil {
		// The controller mirrors the annotations into status.lastEvent: the
		// same bytes serve both.
		if v := c.Annotations[crmv1alpha1.AnnotationLastEventID]; v == le.ID {
			le.ID = v
		}
		le.Type = Intern(le.Type)
	}
	for i := range st.Sinks {
		sk := &st.Sinks[i]
		sk.Name, sk.LastError = Intern(sk.Name), internShort(sk.LastError)
	}
}

// internKeys interns the keys of m in place.
func internKeys(m map[string]string) {
	for k, v := range m {
		m[Intern(k)] = v
	}
}

// shareLabels returns the table's map equal to labels, adding labels (its
// keys and values interned) when the set is new.
func (t *Transformer) shareLabels(labels map[string]string) map[string]string {
	if len(labels) == 0 {
		return labels
	}
	key := canonical(labels)
	t.mu.Lock()
	defer t.mu.Unlock()
	// The check guards against a cached object's labels changed in place, a
	// bug elsewhere that must not spread to the objects stored after it.
	if shared, ok := t.labelSets[key]; ok && maps.Equal(shared, labels) {
		return shared
	}
	for k, v := range labels {
		labels[Intern(k)] = Intern(v)
	}
	if _, replacing := t.labelSets[key]; !replacing && len(t.labelSets) >= maxLabelSets {
		return labels
	}
	t.labelSets[key] = labels
	return labels
}

// canonical encodes a label set as one string, equal for equal sets. Label
// keys and values cannot hold a NUL.
func canonical(labels map[string]string) string {
	keys := slices.Sorted(maps.Keys(labels))
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(labels[k])
		b.WriteByte(0)
	}
	return b.String()
}
