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
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// pickingEngine is an engine whose workers the test plays: take picks the
// next delivery as a worker would, done frees its slot.
type pickingEngine struct {
	*Engine
	t *testing.T
}

func newPickingEngine(t *testing.T, opts Options) pickingEngine {
	e := New(opts)
	e.ctx = t.Context()
	return pickingEngine{e, t}
}

func (e pickingEngine) take() (work, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.pickLocked()
}

func (e pickingEngine) mustTake() work {
	e.t.Helper()
	w, ok := e.take()
	if !ok {
		e.t.Fatal("no delivery could be taken")
	}
	return w
}

func (e pickingEngine) done(w work) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if w.probe {
		w.sink.probing = false
	}
	e.doneLocked(w)
}

func (w work) String() string { return w.sink.name.String() + "/" + strings.Join(w.customers, ",") }

func TestPoolIsSharedRoundRobinBetweenNamespacesThenSinks(t *testing.T) {
	e := newPickingEngine(t, Options{Workers: 2, MaxInFlight: 8, MaxInFlightPerNamespace: 6})
	for i := range 100 {
		for c := range 3 {
			e.Deliver(Key{Namespace: "busy", Sink: fmt.Sprintf("sink-%03d", i), Customer: fmt.Sprintf("c%d", c)}, 1)
		}
	}
	e.Deliver(Key{Namespace: "quiet", Sink: "sink", Customer: "c0"}, 1)
	e.Deliver(Key{Namespace: "quiet", Sink: "sink", Customer: "c1"}, 1)
	e.Deliver(Key{Namespace: "other", Sink: "sink", Customer: "c0"}, 1)

	// Eight workers: the namespaces take turns, and the busy one's sinks
	// take turns within it.
	var got []string
	var taken []work
	for range 8 {
		w := e.mustTake()
		taken = append(taken, w)
		got = append(got, w.String())
	}
	want := []string{
		"busy/sink-000/c0", "quiet/sink/c0", "other/sink/c0",
		"busy/sink-001/c0", "quiet/sink/c1",
		"busy/sink-002/c0", "busy/sink-003/c0", "busy/sink-004/c0",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("taken in the order\n%v, want\n%v", got, want)
	}

	// The busy namespace stops at its share, with work still queued.
	e.mustTake()
	if w, ok := e.take(); ok {
		t.Fatalf("took %s with the busy namespace at MaxInFlightPerNamespace", w)
	}
	// A quiet namespace's new Customer goes out as soon as a slot is free.
	e.done(taken[1])
	e.Deliver(Key{Namespace: "quiet", Sink: "sink", Customer: "c2"}, 1)
	if w := e.mustTake(); w.String() != "quiet/sink/c2" {
		t.Fatalf("took %s, want quiet/sink/c2", w)
	}
	// And a slot the busy namespace frees goes back to it.
	e.done(taken[0])
	if w := e.mustTake(); w.sink.tenant.name != "busy" {
		t.Fatalf("took %s, want the busy namespace's next", w)
	}
}

func TestPoolHoldsPausedSinksAndLetsOneProbeThrough(t *testing.T) {
	e := newPickingEngine(t, Options{Workers: 2, MaxInFlight: 8})
	for c := range 5 {
		e.Deliver(Key{Namespace: "ns", Sink: "paused", Customer: fmt.Sprintf("c%d", c)}, 1)
		e.Deliver(Key{Namespace: "ns", Sink: "well", Customer: fmt.Sprintf("c%d", c)}, 1)
	}
	paused := e.sinks[types.NamespacedName{Namespace: "ns", Name: "paused"}]
	e.mu.Lock()
	paused.pause = &Pause{Reason: ReasonBackingOff, Until: time.Now().Add(time.Hour)}
	paused.pausedUntil, paused.probeNeeded = paused.pause.Until, true
	e.mu.Unlock()

	// Only the well sink goes, and only Workers of its deliveries at once.
	for range 2 {
		if w := e.mustTake(); w.sink.name.Name != "well" {
			t.Fatalf("took %s from a paused sink", w)
		}
	}
	if w, ok := e.take(); ok {
		t.Fatalf("took %s past the paused sink and the well sink's Workers", w)
	}

	// Once the pause is over, one probe; nothing else of that sink until it
	// settles.
	e.mu.Lock()
	paused.pausedUntil = time.Now().Add(-time.Second)
	e.mu.Unlock()
	probe := e.mustTake()
	if probe.sink != paused || !probe.probe {
		t.Fatalf("took %s (probe %v), want the paused sink's probe", probe, probe.probe)
	}
	if w, ok := e.take(); ok {
		t.Fatalf("took %s while the probe is in flight", w)
	}
	e.mu.Lock()
	paused.probeNeeded, paused.pause = false, nil
	e.mu.Unlock()
	e.done(probe)
	for range 2 {
		if w := e.mustTake(); w.sink != paused || w.probe {
			t.Fatalf("took %s (probe %v), want the recovered sink at full speed", w, w.probe)
		}
	}
}

// A pause's end wakes a waiting worker without anything else happening.
func TestPauseEndWakesTheWorkers(t *testing.T) {
	e := newPickingEngine(t, Options{MaxInFlight: 1})
	e.Deliver(Key{Namespace: "ns", Sink: "s", Customer: "c"}, 1)
	s := e.sinks[types.NamespacedName{Namespace: "ns", Name: "s"}]
	e.mu.Lock()
	s.pausedUntil = time.Now().Add(200 * time.Millisecond)
	e.mu.Unlock()

	taken := make(chan work, 1)
	go func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		for {
			if w, ok := e.pickLocked(); ok {
				taken <- w
				return
			}
			e.ready.Wait()
		}
	}()
	select {
	case w := <-taken:
		if time.Until(s.pausedUntil) > 0 {
			t.Fatalf("took %s before the pause ended", w)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no worker woke at the pause's end")
	}
}

// The pool is MaxInFlight workers whatever the number of sinks, and they all
// return when the engine stops.
func TestPoolIsMaxInFlightWorkers(t *testing.T) {
	e := New(Options{MaxInFlight: 5})
	for i := range 50 {
		e.Deliver(Key{Namespace: "ns", Sink: fmt.Sprintf("sink-%d", i), Customer: "c"}, 1)
	}
	workers := func() int {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		return strings.Count(string(buf), "engine.(*Engine).work(")
	}
	// The sinks are paused, so that no worker tries a delivery: the test gives
	// the engine no Customers to read.
	e.mu.Lock()
	for _, s := range e.sinks {
		s.pausedUntil = time.Now().Add(time.Hour)
	}
	e.mu.Unlock()
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan error, 1)
	go func() { stopped <- e.Start(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for workers() != 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := workers(); n != 5 {
		t.Fatalf("%d workers for 50 sinks, want MaxInFlight, 5", n)
	}
	cancel()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the engine did not stop")
	}
	if n := workers(); n != 0 {
		t.Fatalf("%d workers left after the engine stopped", n)
	}
}
