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

package cachetransform

import (
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
)

// customer is a Customer as the API server returns it for the i-th customer of
// a GETTRX source once the controller wrote its status: what the cache holds
// by the tens of thousands.
func customer(i int) *crmv1alpha1.Customer {
	id := fmt.Sprintf("cus_%06d", i)
	now := metav1.NewTime(time.Date(2026, 11, 24, 2, 0, i%60, 0, time.UTC))
	return &crmv1alpha1.Customer{
		TypeMeta: metav1.TypeMeta{APIVersion: crmv1alpha1.GroupVersion.String(), Kind: "Customer"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "team-a", Name: "gettrx-" + id, UID: types.UID(fmt.Sprintf("0b6c2a5e-8f8e-4d4f-9a51-%012d", i)),
			ResourceVersion: fmt.Sprint(100000 + i), Generation: 1, CreationTimestamp: now,
			Finalizers: []string{crmv1alpha1.CustomerFinalizer},
			Labels:     map[string]string{crmv1alpha1.LabelProvider: "gettrx", crmv1alpha1.LabelSource: "gettrx"},
			Annotations: map[string]string{
				crmv1alpha1.AnnotationLastEventID:       "evt_" + id,
				crmv1alpha1.AnnotationLastEventType:     "customer.created",
				crmv1alpha1.AnnotationLastEventTime:     now.Format(time.RFC3339),
				crmv1alpha1.AnnotationLastEventReceived: now.Format(time.RFC3339Nano),
			},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "manager", Operation: metav1.ManagedFieldsOperationUpdate,
				APIVersion: "crm.customer-operator.io/v1alpha1", Time: &now, FieldsType: "FieldsV1",
				FieldsV1: metav1.NewFieldsV1(`{"f:status":{".":{},"f:conditions":{}}}`)}},
		},
		Spec: crmv1alpha1.CustomerSpec{
			Provider: crmv1alpha1.ProviderGETTRX, ExternalID: id, DisplayName: "Customer " + id,
			Email: id + "@example.com", Phone: fmt.Sprintf("+44 20 7946 %04d", i%10000), Lifecycle: crmv1alpha1.LifecycleActive,
			Addresses: []crmv1alpha1.Address{{Type: crmv1alpha1.AddressBilling, Line1: fmt.Sprintf("%d Test Street", i),
				City: "London", PostalCode: "N1 9GU", Country: "GB"}},
			ProviderUpdatedAt: &now,
			Attributes:        map[string]string{"description": "customer " + id, "account": "acct_1Nv0FGQ9RKHgCVdK"},
		},
		Status: crmv1alpha1.CustomerStatus{
			ObservedGeneration: 1,
			Conditions: []metav1.Condition{
				{Type: crmv1alpha1.ConditionReady, Status: metav1.ConditionTrue, ObservedGeneration: 1, LastTransitionTime: now,
					Reason: crmv1alpha1.ReasonValid, Message: "customer record is valid"},
				{Type: crmv1alpha1.ConditionSynced, Status: metav1.ConditionTrue, ObservedGeneration: 1, LastTransitionTime: now,
					Reason: crmv1alpha1.ReasonNoSinks, Message: "no CustomerSink selects this Customer"},
			},
			LastEvent: &crmv1alpha1.LastEvent{ID: "evt_" + id, Type: "customer.created", Time: &now, ReceivedAt: &now},
		},
	}
}

// richCustomer has every field set, so that a lost one shows.
func richCustomer() *crmv1alpha1.Customer {
	c := customer(7)
	now := c.CreationTimestamp
	c.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "owner", UID: "u-1", Controller: ptr.To(true)}}
	c.Annotations["kubectl.kubernetes.io/last-applied-configuration"] = `{"apiVersion":"crm.customer-operator.io/v1alpha1"}`
	c.Annotations[crmv1alpha1.AnnotationTombstoneUntil] = "2026-12-24T02:00:00Z"
	c.Labels["team"] = "payments"
	c.Spec.CompanyName, c.Spec.TaxID, c.Spec.Language = "Example Ltd", "GB123456789", "en-GB"
	c.Spec.TaxExempt, c.Spec.Approved = ptr.To(false), ptr.To(true)
	c.Spec.ProviderCreatedAt = &now
	c.Spec.Contacts = []crmv1alpha1.Contact{{ID: "ct_1", Title: "Dr", FirstName: "Ada", LastName: "Lovelace",
		Email: "ada@example.com", Phone: "+44 20 0000 0000", NotificationPreference: "email"}}
	c.Spec.Addresses = append(c.Spec.Addresses, crmv1alpha1.Address{Type: crmv1alpha1.AddressShipping, Name: "Warehouse",
		Line1: "2 Dock Road", Line2: "Unit 4", City: "Leeds", State: "West Yorkshire", PostalCode: "LS1 1AA", Country: "GB",
		Phone: "+44 113 000 0000", Email: "dock@example.com", Residential: ptr.To(false)})
	c.Status.Sinks = []crmv1alpha1.SinkSyncStatus{{Name: "crm", SyncedGeneration: 1, SinkGeneration: 2, LastSyncTime: &now,
		LastError: "HTTP 503 from https://crm.example.com/hook", ConsecutiveFailures: 3}}
	return c
}

var decoder = func() kruntime.Decoder {
	s := kruntime.NewScheme()
	if err := crmv1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return serializer.NewCodecFactory(s).UniversalDeserializer()
}()

// decode decodes c from its JSON as the informer decodes a watch event: every
// string and map allocated anew.
func decode(t testing.TB, c *crmv1alpha1.Customer) *crmv1alpha1.Customer {
	t.Helper()
	data, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return decodeJSON(t, data)
}

func decodeJSON(t testing.TB, data []byte) *crmv1alpha1.Customer {
	obj, _, err := decoder.Decode(data, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return obj.(*crmv1alpha1.Customer)
}

func transform(t testing.TB, tr *Transformer, in any) any {
	t.Helper()
	out, err := tr.Transform(in)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameBytes(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }

func TestTransformKeepsEverythingButManagedFields(t *testing.T) {
	for name, c := range map[string]*crmv1alpha1.Customer{"bench-shaped": customer(1), "every field": richCustomer()} {
		t.Run(name, func(t *testing.T) {
			want := c.DeepCopy()
			want.ManagedFields = nil
			wantJSON, _ := json.Marshal(want)

			got := transform(t, New(), decode(t, c)).(*crmv1alpha1.Customer)
			gotJSON, _ := json.Marshal(got)
			if string(gotJSON) != string(wantJSON) {
				t.Errorf("transformed Customer differs:\n got %s\nwant %s", gotJSON, wantJSON)
			}
			if got.ManagedFields != nil {
				t.Errorf("managed fields kept: %v", got.ManagedFields)
			}
		})
	}
}

func TestTransformSharesRepeatedStringsAndLabelSets(t *testing.T) {
	tr := New()
	a := transform(t, tr, decode(t, richCustomer())).(*crmv1alpha1.Customer)
	b := transform(t, tr, decode(t, richCustomer())).(*crmv1alpha1.Customer)
	if a == b || unsafe.StringData(a.Name) == unsafe.StringData(b.Name) {
		t.Fatal("the two decodes share their names: the test decodes nothing")
	}

	if reflect.ValueOf(a.Labels).UnsafePointer() != reflect.ValueOf(b.Labels).UnsafePointer() {
		t.Error("equal label sets are two maps")
	}
	keyOf := func(m map[string]string, want string) string {
		for k := range m {
			if k == want {
				return k
			}
		}
		t.Fatalf("no key %q in %v", want, m)
		return ""
	}
	pairs := map[string][2]string{
		"namespace":               {a.Namespace, b.Namespace},
		"finalizer":               {a.Finalizers[0], b.Finalizers[0]},
		"owner kind":              {a.OwnerReferences[0].Kind, b.OwnerReferences[0].Kind},
		"annotation key":          {keyOf(a.Annotations, crmv1alpha1.AnnotationLastEventReceived), keyOf(b.Annotations, crmv1alpha1.AnnotationLastEventReceived)},
		"last-applied key":        {keyOf(a.Annotations, "kubectl.kubernetes.io/last-applied-configuration"), keyOf(b.Annotations, "kubectl.kubernetes.io/last-applied-configuration")},
		"event type annotation":   {a.Annotations[crmv1alpha1.AnnotationLastEventType], b.Annotations[crmv1alpha1.AnnotationLastEventType]},
		"provider":                {string(a.Spec.Provider), string(b.Spec.Provider)},
		"lifecycle":               {string(a.Spec.Lifecycle), string(b.Spec.Lifecycle)},
		"language":                {a.Spec.Language, b.Spec.Language},
		"contact title":           {a.Spec.Contacts[0].Title, b.Spec.Contacts[0].Title},
		"address type":            {string(a.Spec.Addresses[1].Type), string(b.Spec.Addresses[1].Type)},
		"city":                    {a.Spec.Addresses[1].City, b.Spec.Addresses[1].City},
		"state":                   {a.Spec.Addresses[1].State, b.Spec.Addresses[1].State},
		"country":                 {a.Spec.Addresses[0].Country, b.Spec.Addresses[0].Country},
		"attribute key":           {keyOf(a.Spec.Attributes, "account"), keyOf(b.Spec.Attributes, "account")},
		"attribute value":         {a.Spec.Attributes["account"], b.Spec.Attributes["account"]},
		"condition type":          {a.Status.Conditions[1].Type, b.Status.Conditions[1].Type},
		"condition status":        {string(a.Status.Conditions[1].Status), string(b.Status.Conditions[1].Status)},
		"condition reason":        {a.Status.Conditions[1].Reason, b.Status.Conditions[1].Reason},
		"condition message":       {a.Status.Conditions[1].Message, b.Status.Conditions[1].Message},
		"last event type":         {a.Status.LastEvent.Type, b.Status.LastEvent.Type},
		"sink name":               {a.Status.Sinks[0].Name, b.Status.Sinks[0].Name},
		"sink error":              {a.Status.Sinks[0].LastError, b.Status.Sinks[0].LastError},
		"label value (other set)": {a.Labels["team"], Intern("payments")},
	}
	for what, p := range pairs {
		if p[0] != p[1] {
			t.Fatalf("%s: %q and %q differ", what, p[0], p[1])
		}
		if !sameBytes(p[0], p[1]) {
			t.Errorf("%s %q: two copies", what, p[0])
		}
	}
	if !sameBytes(a.Status.LastEvent.ID, a.Annotations[crmv1alpha1.AnnotationLastEventID]) {
		t.Error("status.lastEvent.id does not share the annotation's bytes")
	}
	// Values that differ per customer are left alone.
	if sameBytes(a.Spec.Email, b.Spec.Email) || sameBytes(string(a.UID), string(b.UID)) {
		t.Error("per-customer values were interned")
	}
}

func TestTransformIsIdempotent(t *testing.T) {
	tr := New()
	once := transform(t, tr, decode(t, richCustomer())).(*crmv1alpha1.Customer)
	before, _ := json.Marshal(once)
	labels := once.Labels
	twice := transform(t, tr, once).(*crmv1alpha1.Customer)
	after, _ := json.Marshal(twice)
	if string(before) != string(after) {
		t.Errorf("a second transform changed the Customer:\n%s\n%s", before, after)
	}
	if reflect.ValueOf(twice.Labels).UnsafePointer() != reflect.ValueOf(labels).UnsafePointer() {
		t.Error("a second transform replaced the shared label map")
	}
}

// A cached object's labels changed in place is a bug elsewhere; it must not
// reach the Customers stored after it.
func TestTransformDoesNotSpreadALabelMapChangedInPlace(t *testing.T) {
	tr := New()
	a := transform(t, tr, decode(t, customer(1))).(*crmv1alpha1.Customer)
	a.Labels["tampered"] = "yes"
	b := transform(t, tr, decode(t, customer(2))).(*crmv1alpha1.Customer)
	if _, ok := b.Labels["tampered"]; ok || len(b.Labels) != 2 {
		t.Errorf("labels of the next Customer: %v", b.Labels)
	}
	c := transform(t, tr, decode(t, customer(3))).(*crmv1alpha1.Customer)
	if reflect.ValueOf(b.Labels).UnsafePointer() != reflect.ValueOf(c.Labels).UnsafePointer() {
		t.Error("the replacement label set is not shared")
	}
}

// DeepCopy, which the cache's Get and List return, gives the caller maps of its
// own: writing them leaves the shared ones alone.
func TestCopiesOfSharedLabelsAreTheCallersOwn(t *testing.T) {
	tr := New()
	a := transform(t, tr, decode(t, customer(1))).(*crmv1alpha1.Customer)
	b := transform(t, tr, decode(t, customer(2))).(*crmv1alpha1.Customer)
	cp := a.DeepCopy()
	cp.Labels[crmv1alpha1.LabelSource] = "other"
	if b.Labels[crmv1alpha1.LabelSource] != "gettrx" || a.Labels[crmv1alpha1.LabelSource] != "gettrx" {
		t.Errorf("a copy's write reached the cache: %v %v", a.Labels, b.Labels)
	}
}

func TestTransformStripsManagedFieldsOfOtherObjects(t *testing.T) {
	now := metav1.Now()
	mf := []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply, Time: &now}}
	sink := &crmv1alpha1.CustomerSink{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "crm", ManagedFields: mf,
		Labels: map[string]string{"a": "b"}}, Spec: crmv1alpha1.CustomerSinkSpec{URL: "https://crm.example.com/"}}
	meta := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "secret", ManagedFields: mf}}
	tombstone := toolscache.DeletedFinalStateUnknown{Key: "team-a/x", Obj: customer(1)}
	tr := New()
	for _, in := range []any{sink, meta} {
		out := transform(t, tr, in)
		if out != in {
			t.Errorf("%T: a new object", in)
		}
	}
	if sink.ManagedFields != nil || meta.ManagedFields != nil {
		t.Error("managed fields kept")
	}
	if sink.Spec.URL != "https://crm.example.com/" || sink.Labels["a"] != "b" {
		t.Errorf("the sink changed: %+v", sink)
	}
	if got := transform(t, tr, tombstone); !reflect.DeepEqual(got, tombstone) {
		t.Errorf("a tombstone changed: %+v", got)
	}
}

func TestTransformIsSafeForConcurrentUse(t *testing.T) {
	tr := New()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 200 {
				c := transform(t, tr, decode(t, customer(w*1000+i))).(*crmv1alpha1.Customer)
				if c.Labels[crmv1alpha1.LabelSource] != "gettrx" {
					t.Errorf("labels %v", c.Labels)
				}
			}
		})
	}
	wg.Wait()
}

// The table of label sets stops growing at maxLabelSets: a cluster whose every
// object has labels of its own costs no more than without the table.
func TestLabelSetTableIsBounded(t *testing.T) {
	tr := New()
	for i := range maxLabelSets + 100 {
		c := customer(i)
		c.Labels["customer"] = fmt.Sprint(i)
		got := transform(t, tr, decode(t, c)).(*crmv1alpha1.Customer)
		if got.Labels["customer"] != fmt.Sprint(i) {
			t.Fatalf("labels %v", got.Labels)
		}
	}
	if n := len(tr.labelSets); n != maxLabelSets {
		t.Errorf("%d label sets held, want %d", n, maxLabelSets)
	}
}

// retainedPerObject decodes n Customers as the informer does, passes each
// through transform and returns the heap bytes the results hold, per object.
func retainedPerObject(t testing.TB, data [][]byte, transform toolscache.TransformFunc) float64 {
	objs := make([]any, len(data))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range data {
		obj, err := transform(decodeJSON(t, data[i]))
		if err != nil {
			t.Fatal(err)
		}
		objs[i] = obj
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(objs)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(len(data))
}

func customerJSON(t testing.TB, n int) (data [][]byte, cachedJSON float64) {
	return customerJSONWith(t, n, func(*crmv1alpha1.Customer) {})
}

// busy gives c the webhook server's de-duplication state after 32 events, as
// a Customer that changes often carries it.
func busy(c *crmv1alpha1.Customer) {
	ids := make([]string, 32)
	for i := range ids {
		ids[i] = fmt.Sprintf("evt_%s_%02d", c.Spec.ExternalID, i)
	}
	encoded, _ := json.Marshal(ids)
	c.Annotations["crm.customer-operator.io/recent-event-ids"] = string(encoded)
}

func customerJSONWith(t testing.TB, n int, change func(*crmv1alpha1.Customer)) (data [][]byte, cachedJSON float64) {
	data = make([][]byte, n)
	for i := range data {
		c := customer(i)
		change(c)
		var err error
		if data[i], err = json.Marshal(c); err != nil {
			t.Fatal(err)
		}
		c.ManagedFields = nil
		stripped, _ := json.Marshal(c)
		cachedJSON += float64(len(stripped))
	}
	return data, cachedJSON / float64(n)
}

// The cache holds a Customer in well under what managed-field stripping alone
// leaves; the margin is generous, the Go benchmark below gives the figures.
func TestTransformedCustomersTakeLessMemory(t *testing.T) {
	data, _ := customerJSON(t, 5000)
	stripped := retainedPerObject(t, data, cache.TransformStripManagedFields())
	compacted := retainedPerObject(t, data, New().Transform)
	t.Logf("bytes per cached Customer: %.0f stripped, %.0f compacted", stripped, compacted)
	if compacted > 0.85*stripped {
		t.Errorf("compacted Customers hold %.0f bytes each, stripped ones %.0f", compacted, stripped)
	}
}

// BenchmarkCachedCustomer reports the heap a cached Customer holds (B/object)
// against its JSON as the bench counts it (managed fields stripped), with
// managed-field stripping alone (what a cache holds without the Transformer), with the
// Transformer, and with it as a controllers-only manager sets it up:
//
//	go test ./internal/cachetransform -run '^$' -bench CachedCustomer -benchtime 5x
func BenchmarkCachedCustomer(b *testing.B) {
	const n = 20000
	data, jsonBytes := customerJSON(b, n)
	benchRetained(b, data, jsonBytes, map[string]func() toolscache.TransformFunc{
		"managed-fields-stripped": cache.TransformStripManagedFields,
		"compacted":               func() toolscache.TransformFunc { return New().Transform },
		// As a --mode=controllers manager caches them.
		"compacted-controllers": func() toolscache.TransformFunc {
			return New().DropAnnotations("crm.customer-operator.io/recent-event-ids").DropMirroredLastEvent().Transform
		},
	})
}

// benchRetained reports, for each transform, the heap a cached Customer of data
// holds against its JSON.
func benchRetained(b *testing.B, data [][]byte, jsonBytes float64, transforms map[string]func() toolscache.TransformFunc) {
	for name, tf := range transforms {
		b.Run(name, func(b *testing.B) {
			var perObject float64
			for b.Loop() {
				perObject = retainedPerObject(b, data, tf())
			}
			b.ReportMetric(perObject, "B/object")
			b.ReportMetric(jsonBytes, "JSON-B/object")
			b.ReportMetric(perObject/jsonBytes, "heap/JSON")
		})
	}
}

// BenchmarkCachedBusyCustomer is BenchmarkCachedCustomer for Customers that
// carry 32 recent event ids, in a webhook server's cache (compacted) and in a
// controllers-only manager's (the ids dropped):
//
//	go test ./internal/cachetransform -run '^$' -bench CachedBusyCustomer -benchtime 5x
func BenchmarkCachedBusyCustomer(b *testing.B) {
	const n = 20000
	data, jsonBytes := customerJSONWith(b, n, busy)
	benchRetained(b, data, jsonBytes, map[string]func() toolscache.TransformFunc{
		"compacted": func() toolscache.TransformFunc { return New().Transform },
		"compacted-ids-dropped": func() toolscache.TransformFunc {
			return New().DropAnnotations("crm.customer-operator.io/recent-event-ids").Transform
		},
	})
}

// BenchmarkTransform is the CPU the transform adds to each watch event.
func BenchmarkTransform(b *testing.B) {
	data, _ := customerJSON(b, 1000)
	for name, tf := range map[string]toolscache.TransformFunc{
		"managed-fields-stripped": cache.TransformStripManagedFields(),
		"compacted":               New().Transform,
	} {
		b.Run(name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				if _, err := tf(decodeJSON(b, data[i%len(data)])); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func TestDropAnnotationsLeavesTheRestAsItIs(t *testing.T) {
	const recent, sourceLabels = "crm.customer-operator.io/recent-event-ids", "crm.customer-operator.io/source-labels"
	c := richCustomer()
	c.Annotations[recent] = `["evt_1","evt_2"]`
	c.Annotations[sourceLabels] = "team"
	want := c.DeepCopy()
	want.ManagedFields = nil
	delete(want.Annotations, recent)
	delete(want.Annotations, sourceLabels)
	wantJSON, _ := json.Marshal(want)

	got := transform(t, New().DropAnnotations(recent, sourceLabels), decode(t, c)).(*crmv1alpha1.Customer)
	if gotJSON, _ := json.Marshal(got); string(gotJSON) != string(wantJSON) {
		t.Errorf("transformed Customer differs:\n got %s\nwant %s", gotJSON, wantJSON)
	}
	if kept := transform(t, New(), decode(t, c)).(*crmv1alpha1.Customer); kept.Annotations[recent] == "" || kept.Annotations[sourceLabels] == "" {
		t.Errorf("a Transformer without DropAnnotations dropped them: %v", kept.Annotations)
	}
}

func TestDropMirroredLastEventKeepsWhatStatusDoesNotRecord(t *testing.T) {
	mirrored := customer(1)
	tr := New().DropMirroredLastEvent()
	got := transform(t, tr, decode(t, mirrored)).(*crmv1alpha1.Customer)
	if got.Annotations != nil {
		t.Errorf("mirrored last-event annotations kept: %v", got.Annotations)
	}
	want := mirrored.DeepCopy()
	want.ManagedFields, want.Annotations = nil, nil
	wantJSON, _ := json.Marshal(want)
	if gotJSON, _ := json.Marshal(got); string(gotJSON) != string(wantJSON) {
		t.Errorf("transformed Customer differs beyond its annotations:\n got %s\nwant %s", gotJSON, wantJSON)
	}
	if le := got.Status.LastEvent; le == nil || le.ID != "evt_cus_000001" {
		t.Errorf("status.lastEvent = %+v", le)
	}
	if again := transform(t, tr, got).(*crmv1alpha1.Customer); again.Annotations != nil || !again.Status.LastEvent.Same(mirrored.Status.LastEvent) {
		t.Errorf("a second pass changed the Customer: %v, %+v", again.Annotations, again.Status.LastEvent)
	}

	// A newer event than the status records: the controller has to see it.
	behind := customer(2)
	behind.Annotations[crmv1alpha1.AnnotationLastEventID] = "evt_newer"
	behind.Annotations[crmv1alpha1.AnnotationTombstoneUntil] = "2026-11-25T02:00:00Z"
	got = transform(t, tr, decode(t, behind)).(*crmv1alpha1.Customer)
	if len(got.Annotations) != 5 || got.Annotations[crmv1alpha1.AnnotationLastEventID] != "evt_newer" {
		t.Errorf("annotations of a Customer whose status is behind: %v", got.Annotations)
	}
	// The same event received at another time is another delivery of it.
	later := customer(3)
	later.Annotations[crmv1alpha1.AnnotationLastEventReceived] = "2026-11-24T03:00:00.5Z"
	if got = transform(t, tr, decode(t, later)).(*crmv1alpha1.Customer); len(got.Annotations) != 4 {
		t.Errorf("annotations of a Customer whose status has another receipt time: %v", got.Annotations)
	}
	// Other annotations stay.
	other := customer(4)
	other.Annotations[crmv1alpha1.AnnotationTombstoneUntil] = "2026-11-25T02:00:00Z"
	if got = transform(t, tr, decode(t, other)).(*crmv1alpha1.Customer); len(got.Annotations) != 1 || got.Annotations[crmv1alpha1.AnnotationTombstoneUntil] == "" {
		t.Errorf("annotations besides the mirrored ones: %v", got.Annotations)
	}
	if kept := transform(t, New(), decode(t, mirrored)).(*crmv1alpha1.Customer); len(kept.Annotations) != 4 {
		t.Errorf("a Transformer without DropMirroredLastEvent dropped annotations: %v", kept.Annotations)
	}
}
