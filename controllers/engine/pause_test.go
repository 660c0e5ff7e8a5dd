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

package engine

import (
	"errors"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/delivery"
)

// testClock is the engine's clock, moved by the test.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// answer finishes the taken delivery w as a worker would on the sink's res.
func (e pickingEngine) answer(w work, res delivery.Result) {
	e.answerItem(w, e.itemOf(w), res)
}

// itemOf is what the engine holds for w's Customer, as a worker reads it when
// it starts the delivery.
func (e pickingEngine) itemOf(w work) *item {
	e.mu.Lock()
	defer e.mu.Unlock()
	return w.sink.items[w.customers[0]]
}

// answerItem is answer for a worker that read it when it started.
func (e pickingEngine) answerItem(w work, it *item, res delivery.Result) {
	c := &crmv1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: w.sink.name.Namespace, Name: w.customers[0], Generation: 1}}
	e.finish(w.sink, w.customers[0], it, c, Sink{Generation: 1}, false, res, w.probe, w.epoch)
	e.done(w)
}

func TestThrottledSinkPausesUntilRetryAfterThenProbesAndResumes(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 11, 24, 7, 0, 0, 0, time.UTC)}
	start := clock.Now()
	e := newPickingEngine(t, Options{Workers: 4, MaxInFlight: 8, Now: clock.Now, BaseDelay: time.Second, MaxDelay: time.Minute})
	sink := types.NamespacedName{Namespace: "ns", Name: "sink"}
	for _, c := range []string{"c0", "c1", "c2"} {
		e.Deliver(Key{Namespace: sink.Namespace, Sink: sink.Name, Customer: c}, 1)
	}

	e.answer(e.mustTake(), delivery.Result{StatusCode: 429, RetryAfter: 30 * time.Second, Err: errors.New("429 Too Many Requests")})
	p := e.Health(sink, 1).Pause
	if p == nil || p.Reason != ReasonThrottled || !p.Until.Equal(start.Add(30*time.Second)) {
		t.Fatalf("pause after a 429 with Retry-After 30s: %+v, want %s until %s", p, ReasonThrottled, start.Add(30*time.Second))
	}
	clock.advance(29 * time.Second)
	if w, ok := e.take(); ok {
		t.Fatalf("took %s while the sink is paused", w)
	}

	clock.advance(time.Second)
	probe := e.mustTake()
	if !probe.probe {
		t.Fatalf("the first delivery after the pause, %s, is not a probe", probe)
	}
	if w, ok := e.take(); ok {
		t.Fatalf("took %s beside the probe", w)
	}
	e.answer(probe, delivery.Result{StatusCode: 204})
	if p := e.Health(sink, 1).Pause; p != nil {
		t.Fatalf("still paused after the probe succeeded: %+v", p)
	}
	if w := e.mustTake(); w.probe {
		t.Fatalf("%s after a successful probe is a probe", w)
	}
}

func TestRefusedCustomerDoesNotPauseTheSink(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 11, 24, 7, 0, 0, 0, time.UTC)}
	e := newPickingEngine(t, Options{Workers: 4, MaxInFlight: 8, Now: clock.Now, BaseDelay: time.Second, MaxDelay: time.Minute})
	// The refused Customer's retry waits in the delayed queue, which Start
	// would make.
	e.delayed = workqueue.NewTypedDelayingQueue[Key]()
	t.Cleanup(e.delayed.ShutDown)
	sink := types.NamespacedName{Namespace: "ns", Name: "sink"}
	refused := Key{Namespace: sink.Namespace, Sink: sink.Name, Customer: "c0"}
	e.Deliver(refused, 1)
	e.Deliver(Key{Namespace: sink.Namespace, Sink: sink.Name, Customer: "c1"}, 1)

	e.answer(e.mustTake(), delivery.Result{StatusCode: 422, Err: errors.New("422 Unprocessable Entity")})
	if p := e.Health(sink, 1).Pause; p != nil {
		t.Fatalf("a 422 for one Customer paused the sink: %+v", p)
	}
	if w := e.mustTake(); w.customers[0] != "c1" || w.probe {
		t.Fatalf("next delivery %s (probe %v), want c1 at full speed", w, w.probe)
	}
	rep := e.Look(refused, Have{})
	if rep.Outcome == nil || rep.Outcome.Failures != 1 || !rep.Pending {
		t.Fatalf("the refused Customer's report %+v, want one failure and a retry pending", rep)
	}
}

func TestFailingSinkBacksOffWithinTheJitterBounds(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 11, 24, 7, 0, 0, 0, time.UTC)}
	base := 4 * time.Second
	e := newPickingEngine(t, Options{Workers: 4, MaxInFlight: 8, Now: clock.Now, BaseDelay: base, MaxDelay: time.Minute})
	sink := types.NamespacedName{Namespace: "ns", Name: "sink"}
	e.Deliver(Key{Namespace: sink.Namespace, Sink: sink.Name, Customer: "c0"}, 1)

	for n := 1; n <= 3; n++ {
		now := clock.Now()
		e.answer(e.mustTake(), delivery.Result{StatusCode: 503, Err: errors.New("503 Service Unavailable")})
		p := e.Health(sink, 1).Pause
		want := base << (n - 1)
		if p == nil || p.Reason != ReasonBackingOff || p.Until.Before(now.Add(want/2)) || p.Until.After(now.Add(want)) {
			t.Fatalf("pause after %d failures: %+v, want %s until within [%s, %s]", n, p, ReasonBackingOff, now.Add(want/2), now.Add(want))
		}
		clock.advance(p.Until.Sub(now))
	}
}

func TestRedeliveryIsReportedOnceEveryCustomerIsAcknowledged(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 11, 24, 7, 0, 0, 0, time.UTC)}
	e := newPickingEngine(t, Options{Workers: 4, MaxInFlight: 8, Now: clock.Now, BaseDelay: time.Second, MaxDelay: time.Minute})
	sink := types.NamespacedName{Namespace: "ns", Name: "sink"}

	e.Redeliver(sink, "token-1", []string{"c0", "c1"})
	if h := e.Health(sink, 1); h.Redelivering != "token-1" || h.Redelivered != "" {
		t.Fatalf("health while redelivering: %+v, want token-1 under way", h)
	}
	e.answer(e.mustTake(), delivery.Result{StatusCode: 204})
	if h := e.Health(sink, 1); h.Redelivered != "" {
		t.Fatalf("token-1 reported redelivered with one Customer left: %+v", h)
	}
	e.answer(e.mustTake(), delivery.Result{StatusCode: 204})
	if h := e.Health(sink, 1); h.Redelivered != "token-1" {
		t.Fatalf("health once both were acknowledged: %+v, want token-1 redelivered", h)
	}
}

func TestForgottenWhileInFlightLeavesNothing(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 11, 24, 7, 0, 0, 0, time.UTC)}
	e := newPickingEngine(t, Options{Workers: 4, MaxInFlight: 8, Now: clock.Now, BaseDelay: time.Second, MaxDelay: time.Minute})
	k := Key{Namespace: "ns", Sink: "sink", Customer: "c0"}
	e.Deliver(k, 1)

	w := e.mustTake()
	it := e.itemOf(w)
	e.Forget(k)
	e.answerItem(w, it, delivery.Result{StatusCode: 500, Err: errors.New("500 Internal Server Error")})
	if rep := e.Look(k, Have{}); rep.Outcome != nil || rep.Pending {
		t.Fatalf("a Customer forgotten in flight is reported: %+v", rep)
	}
	if w, ok := e.take(); ok {
		t.Fatalf("took %s after the only Customer was forgotten", w)
	}
}
