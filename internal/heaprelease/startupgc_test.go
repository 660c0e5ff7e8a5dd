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
	"fmt"
	"runtime"
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
	s := &StartupGC{Percent: 25, Log: logr.Discard(), Settled: func(ctx context.Context) error {
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
}

func TestStartupGCLeavesAGOGCFromTheEnvironment(t *testing.T) {
	t.Setenv("GOGC", "150")
	withGCPercent(t, 150)
	s := &StartupGC{Percent: 25, Log: logr.Discard(), Settled: func(context.Context) error { return nil }}
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
	s := &StartupGC{Percent: 25, Log: logr.Discard(), Settled: func(ctx context.Context) error {
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

	failed := &StartupGC{Percent: 25, Log: logr.Discard(), Settled: func(context.Context) error { return errors.New("no such kind") }}
	failed.Lower()
	if err := failed.Start(context.Background()); err == nil {
		t.Fatal("a failed sync returned nil")
	}
	if got := gcPercent(); got != 100 {
		t.Fatalf("GC percent after a failed sync: %d, want 100", got)
	}
}

// fill models a cache's initial list: each of n objects is kept, and each
// leaves garbage beside it (its JSON, the fields a transform drops), as a watch
// event's decode does. It returns the heap the runtime keeps in spans
// (HeapInuse) per byte of live objects, after a full collection.
func fill(n int) float64 {
	type object struct {
		name, uid string
		labels    map[string]string
		spec      [24]string
		status    *[12]string
	}
	// Start from a heap with nothing free in it, as a new process does.
	debug.FreeOSMemory()
	kept := make([]*object, n)
	var junk [][]byte
	for i := range kept {
		// The event's bytes and the decoder's scratch: garbage once decoded.
		junk = append(junk[:0], make([]byte, 1600), make([]byte, 400), make([]byte, 96))
		o := &object{name: fmt.Sprintf("gettrx-cus_%08d", i), uid: fmt.Sprintf("%036d", i),
			labels: map[string]string{"provider": "gettrx"}, status: new([12]string)}
		for j := range o.spec {
			o.spec[j] = fmt.Sprintf("field %d of %d", j, i)
		}
		kept[i] = o
	}
	runtime.KeepAlive(junk)
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	runtime.KeepAlive(kept)
	return float64(m.HeapInuse) / float64(m.HeapAlloc)
}

// BenchmarkCacheFill reports the heap in use per live byte after a model of
// the initial list of 100,000 Customers, at the runtime's default GC percent
// and at the start-up's:
//
//	go test ./internal/heaprelease -run '^$' -bench CacheFill -benchtime 5x
func BenchmarkCacheFill(b *testing.B) {
	for _, percent := range []int{100, 50, 25} {
		b.Run(fmt.Sprintf("gogc=%d", percent), func(b *testing.B) {
			before := debug.SetGCPercent(percent)
			defer debug.SetGCPercent(before)
			var ratio float64
			for b.Loop() {
				ratio = fill(100000)
				debug.SetGCPercent(percent)
			}
			b.ReportMetric(ratio, "inuse/live")
		})
	}
}
