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

// Package heaprelease gives the memory of a burst of work back to the operating
// system once the process has gone idle.
//
// The manager's start-up is such a burst: the initial list of every Customer,
// then a reconcile of each. With the default GOGC the Go runtime lets the heap
// grow to twice the live heap before it collects, and its scavenger keeps about
// that much resident afterwards, in case the work resumes. For an operator whose
// live heap is mostly its cache, that doubles the resident memory of an idle
// process. The Releaser notices that the process is idle and that much of its
// heap is free, and then returns it (debug.FreeOSMemory).
//
// It does not bound the memory under load: GOMEMLIMIT does, set from the
// container's memory limit (see config/manager/manager.yaml).
package heaprelease

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/go-logr/logr"
)

// Releaser is a manager Runnable; every replica runs it.
type Releaser struct {
	// Interval is how often the heap is looked at; 10s when zero. The process is
	// idle when it allocated less than a 64th of its live heap in one Interval.
	Interval time.Duration
	// MinFree is the free heap worth returning; 16 MiB when zero. A quarter of
	// the live heap is needed as well.
	MinFree uint64
	Log     logr.Logger

	// release is debug.FreeOSMemory; tests count the calls.
	release func()
}

const (
	allocsMetric  = "/gc/heap/allocs:bytes"
	liveMetric    = "/gc/heap/live:bytes"
	objectsMetric = "/memory/classes/heap/objects:bytes"
	freeMetric    = "/memory/classes/heap/free:bytes"
)

type sample struct{ allocs, live, objects, free uint64 }

func read() sample {
	s := []metrics.Sample{{Name: allocsMetric}, {Name: liveMetric}, {Name: objectsMetric}, {Name: freeMetric}}
	metrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[i].Value.Uint64()
	}
	return sample{allocs: v(0), live: v(1), objects: v(2), free: v(3)}
}

// Start looks at the heap every Interval until ctx ends.
func (r *Releaser) Start(ctx context.Context) error {
	interval := r.Interval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	last := read()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		last = r.check(last, read())
	}
}

// check releases the free heap when the process was idle between prev and now
// and enough of its heap is free (or garbage); it returns the sample to compare
// the next one with.
func (r *Releaser) check(prev, now sample) sample {
	minFree := r.MinFree
	if minFree == 0 {
		minFree = 16 << 20
	}
	idle := now.allocs-prev.allocs < max(now.live/64, 1<<20)
	// objects counts the dead objects the next GC frees as well.
	reclaimable := now.free + now.objects - min(now.live, now.objects)
	if !idle || reclaimable < max(minFree, now.live/4) {
		return now
	}
	began := time.Now()
	orFreeOSMemory(r.release)()
	after := read()
	r.Log.V(1).Info("returned the free heap to the OS", "reclaimable", reclaimable, "live", after.live, "took", time.Since(began))
	return after
}

// orFreeOSMemory is release, or debug.FreeOSMemory when a test has not set one.
func orFreeOSMemory(release func()) func() {
	if release == nil {
		return debug.FreeOSMemory
	}
	return release
}

// NeedLeaderElection is false: the webhook server runs on every replica.
func (r *Releaser) NeedLeaderElection() bool { return false }
