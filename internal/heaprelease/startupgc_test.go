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
	"errors"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// gcPercent is the runtime's GC percent as it stands.
func gcPercent() uint64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// withGCPercent runs the test at a known GC percent and restores the one before.
func withGCPercent(t *testing.T, percent int) {
	t.Helper()
	before := debug.SetGCPercent(percent)
	t.Cleanup(func() { debug.SetGCPercent(before) })
}

func TestStartupGCLowersUntilSettledThenRestores(t *testing.T) {
	t.Setenv("GOGC", "")
	withGCPercent(t, 100)
	synced := make(chan struct{})
	released := 0
	s := &StartupGC{Percent: 25, Log: logr.Discard(), release: func() { released++ }, Settled: func(ctx context.Context) error {
		select {
		case <-synced:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
	s.Lower()
	if got := gcPercent(); got != 25 {
		t.Fatalf("GC percent while the cache fills: %d, want 25", got)
	}
	done := make(chan error, 1)
	go func() { done <- s.Start(context.Background()) }()
	time.Sleep(50 * time.Millisecond)
	if got := gcPercent(); got != 25 {
		t.Fatalf("GC percent before the cache synced: %d, want 25", got)
	}
	close(synced)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := gcPercent(); got != 100 {
		t.Fatalf("GC percent after the cache synced: %d, want 100 (restored)", got)
	}
	if released != 1 {
		t.Fatalf("the free heap was returned %d times once the start-up settled, want once", released)
	}
}

func TestStartupGCLeavesAGOGCFromTheEnvironment(t *testing.T) {
	t.Setenv("GOGC", "150")
	withGCPercent(t, 150)
	released := 0
	s := &StartupGC{Percent: 25, Log: logr.Discard(), release: func() { released++ }, Settled: func(context.Context) error { return nil }}
	s.Lower()
	if got := gcPercent(); got != 150 {
		t.Fatalf("GC percent with GOGC=150 set: %d, want 150", got)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := gcPercent(); got != 150 {
		t.Fatalf("GC percent after sync with GOGC=150 set: %d, want 150", got)
	}
	if released != 0 {
		t.Fatal("the heap was released by a StartupGC that changed nothing: the Releaser does that")
	}
}

func TestStartupGCOffWithPercentZero(t *testing.T) {
	t.Setenv("GOGC", "")
	withGCPercent(t, 100)
	s := &StartupGC{Log: logr.Discard(), Settled: func(context.Context) error { return nil }}
	s.Lower()
	if got := gcPercent(); got != 100 {
		t.Fatalf("GC percent with --startup-gc-percent=0: %d, want 100", got)
	}
}

// A manager that stops before its cache syncs restores the setting and stops
// cleanly; a sync that fails on its own is an error.
func TestStartupGCRestoresWhenTheWaitEnds(t *testing.T) {
	t.Setenv("GOGC", "")
	withGCPercent(t, 100)
	ctx, cancel := context.WithCancel(context.Background())
	released := 0
	s := &StartupGC{Percent: 25, Log: logr.Discard(), release: func() { released++ }, Settled: func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}}
	s.Lower()
	cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatalf("stopped before sync: %v, want nil", err)
	}
	if got := gcPercent(); got != 100 {
		t.Fatalf("GC percent after a stop: %d, want 100", got)
	}
	if released != 0 {
		t.Fatal("a manager stopping before its start-up settled returned its heap")
	}

	failed := &StartupGC{Percent: 25, Log: logr.Discard(), release: func() {}, Settled: func(context.Context) error { return errors.New("no such kind") }}
	failed.Lower()
	if err := failed.Start(context.Background()); err == nil {
		t.Fatal("a failed sync returned nil")
	}
	if got := gcPercent(); got != 100 {
		t.Fatalf("GC percent after a failed sync: %d, want 100", got)
	}
}
