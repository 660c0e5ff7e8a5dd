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

package heaprelease

import (
	"context"
	"os"
	"runtime/debug"
	"sync"

	"github.com/go-logr/logr"
)

// StartupGC collects garbage more often during the manager's start-up: the
// initial list of every Customer, then the reconcile of each.
//
// The initial list decodes the Customers one watch event at a time, and each
// event leaves garbage (its JSON, the managed fields and strings the cache
// transform drops) beside the objects the cache keeps. With the default GOGC
// the heap grows to twice the live heap before each collection, so the objects
// that stay end up spread over twice the memory they need: Go does not compact,
// and a span with one cached object in it stays resident. The reconciles that
// follow then take the heap to twice the cache again, which is the process's
// peak. Collecting at a smaller growth until both are done packs the cached
// objects into fewer spans and keeps the peak near the cache's size; the extra
// collections cost little next to decoding and reconciling every object.
//
// The runtime's own setting (GOGC, or SetGCPercent) is restored once Settled
// returns, so the process under load collects as it always did, and the heap
// the start-up left free goes back to the OS then. A GOGC set in the
// environment is the operator's choice and is left alone.
type StartupGC struct {
	// Percent is the GC percent while the cache fills; nothing changes when it
	// is not positive.
	Percent int
	// Settled returns once the start-up is over (the caches synced and what
	// their initial lists queued is processed), or ctx ends.
	Settled func(ctx context.Context) error
	// LeaderElection is true when the start-up happens only once this
	// replica leads: a standby holds no Customers and keeps the start-up
	// setting until it leads and has settled.
	LeaderElection bool
	Log            logr.Logger

	once     sync.Once
	previous int
	lowered  bool
	// release is debug.FreeOSMemory; tests count the calls.
	release func()
}

// Lower sets the start-up GC percent; call it before the manager starts.
func (s *StartupGC) Lower() {
	if s.Percent <= 0 || os.Getenv("GOGC") != "" {
		return
	}
	s.previous = debug.SetGCPercent(s.Percent)
	s.lowered = true
}

// Start waits for the start-up to settle, then restores the GC percent.
func (s *StartupGC) Start(ctx context.Context) error {
	err := s.Settled(ctx)
	s.restore(err == nil)
	if err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// restore sets the GC percent back and, after a start-up that settled,
// returns what it left free.
func (s *StartupGC) restore(settled bool) {
	s.once.Do(func() {
		if !s.lowered {
			return
		}
		debug.SetGCPercent(s.previous)
		if !settled {
			return
		}
		// What the start-up left free goes back now: with the runtime's GC
		// percent back, its scavenger would keep up to twice the live heap
		// resident, and the Releaser only sees it once the process has idled
		// for a while.
		orFreeOSMemory(s.release)()
		s.Log.Info("start-up settled: GC percent restored", "startupPercent", s.Percent, "percent", s.previous)
	})
}

// NeedLeaderElection says when Start runs: with the controllers, once this
// replica leads.
func (s *StartupGC) NeedLeaderElection() bool { return s.LeaderElection }
