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
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/customer-operator/customer-operator/controllers/delivery"
)

// queueAt queues n Customers at a sink and marks whether its Sender takes
// groups, as process does once it resolved the sink.
func (e pickingEngine) queueAt(ns, sink string, n int, groups bool) {
	for i := range n {
		e.Deliver(Key{Namespace: ns, Sink: sink, Customer: fmt.Sprintf("c%02d", i)}, 1)
	}
	e.mu.Lock()
	e.sinks[types.NamespacedName{Namespace: ns, Name: sink}].groups = groups
	e.mu.Unlock()
}

func TestASinkThatTakesGroupsGetsItsBacklogInGroupsWithinEveryBound(t *testing.T) {
	e := newPickingEngine(t, Options{Workers: 8, MaxInFlight: 64, MaxInFlightPerNamespace: 48})
	e.queueAt("warehouse", "db", 30, true)
	e.queueAt("shop", "hooks", 3, false)

	// Half the sink's workers at a time: two groups fill its bound of 8; the
	// HTTP sink's Customers go one by one, taking turns with them.
	var groups, single []work
	for {
		w, ok := e.take()
		if !ok {
			break
		}
		if w.sink.name.Name == "db" {
			groups = append(groups, w)
		} else {
			single = append(single, w)
		}
	}
	if GroupSize(8) != 4 || len(groups) != 2 || len(groups[0].customers) != 4 || len(groups[1].customers) != 4 {
		t.Fatalf("the grouped sink got %v, want two groups of 4", groups)
	}
	if len(single) != 3 || len(single[0].customers) != 1 {
		t.Fatalf("a sink whose Sender takes one at a time got %v", single)
	}
	first := groups[0]
	// Each Customer of a group frees its slot when the group is done.
	e.done(first)
	if w := e.mustTake(); len(w.customers) != 4 || w.sink != first.sink {
		t.Fatalf("after a group was done, took %s, want the next 4", w)
	}
	if w, ok := e.take(); ok {
		t.Fatalf("took %s with the grouped sink at its 8 workers in flight again", w)
	}
}

func TestAGroupStopsAtTheNamespacesAndTheEnginesBounds(t *testing.T) {
	e := newPickingEngine(t, Options{Workers: 16, MaxInFlight: 64, MaxInFlightPerNamespace: 10})
	e.queueAt("warehouse", "db", 30, true)
	if a, b := e.mustTake(), e.mustTake(); len(a.customers) != 8 || len(b.customers) != 2 {
		t.Fatalf("took %s and %s, want 8 and 2: the namespace may hold 10 in flight", a, b)
	}

	e = newPickingEngine(t, Options{Workers: 16, MaxInFlight: 5, MaxInFlightPerNamespace: 5})
	e.queueAt("warehouse", "db", 30, true)
	if w := e.mustTake(); len(w.customers) != 5 {
		t.Fatalf("took %s, want 5: the engine holds 5 deliveries in flight at most", w)
	}
}

func TestAPausedSinksProbeGoesAloneThenGroupsResume(t *testing.T) {
	clock := &testClock{t: time.Unix(1_800_000_000, 0)}
	e := newPickingEngine(t, Options{Workers: 8, MaxInFlight: 64, Now: clock.Now})
	e.queueAt("warehouse", "db", 30, true)
	s := e.sinks[types.NamespacedName{Namespace: "warehouse", Name: "db"}]
	e.mu.Lock()
	s.pause, s.pausedUntil, s.probeNeeded = &Pause{Reason: ReasonBackingOff}, clock.Now().Add(-time.Second), true
	e.mu.Unlock()

	probe := e.mustTake()
	if !probe.probe || len(probe.customers) != 1 {
		t.Fatalf("took %s (probe %t), want one Customer as the probe", probe, probe.probe)
	}
	if w, ok := e.take(); ok {
		t.Fatalf("took %s while the probe is out", w)
	}
	e.answer(probe, delivery.Result{})
	if w := e.mustTake(); len(w.customers) != 4 {
		t.Fatalf("after the probe succeeded, took %s, want a group of 4", w)
	}
}
