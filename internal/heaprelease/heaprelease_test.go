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
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

const mib = 1 << 20

func TestCheckReleasesOnlyWhenIdleAndWorthIt(t *testing.T) {
	for _, tc := range []struct {
		name      string
		prev, now sample
		want      bool
	}{
		{"idle after a burst", sample{allocs: 1000 * mib}, sample{allocs: 1000*mib + 100<<10, live: 100 * mib, objects: 110 * mib, free: 80 * mib}, true},
		{"garbage not yet collected counts", sample{allocs: 1000 * mib}, sample{allocs: 1000 * mib, live: 100 * mib, objects: 140 * mib, free: 0}, true},
		{"busy", sample{allocs: 1000 * mib}, sample{allocs: 1010 * mib, live: 100 * mib, objects: 110 * mib, free: 80 * mib}, false},
		{"little free for its size", sample{allocs: 1000 * mib}, sample{allocs: 1000 * mib, live: 100 * mib, objects: 100 * mib, free: 20 * mib}, false},
		{"small process, little free", sample{allocs: 10 * mib}, sample{allocs: 10 * mib, live: 8 * mib, objects: 8 * mib, free: 10 * mib}, false},
		{"small process, much free", sample{allocs: 10 * mib}, sample{allocs: 10 * mib, live: 8 * mib, objects: 8 * mib, free: 40 * mib}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			released := false
			r := &Releaser{Log: logr.Discard(), release: func() { released = true }}
			r.check(tc.prev, tc.now)
			if released != tc.want {
				t.Errorf("released %v, want %v", released, tc.want)
			}
		})
	}
}

var sink [][]byte

func released() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// After a burst of 256 MiB of garbage, the idle process gives the memory back
// within a few intervals.
func TestReleaserReturnsABurstOnceIdle(t *testing.T) {
	for range 256 {
		sink = append(sink, make([]byte, mib))
	}
	sink = nil
	runtime.GC()
	before := released()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &Releaser{Interval: 100 * time.Millisecond, Log: logr.Discard()}
	done := make(chan error, 1)
	go func() { done <- r.Start(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for released() < before+128*mib {
		if time.Now().After(deadline) {
			t.Fatalf("released %d MiB of the 256 MiB burst within 20s", (released()-before)/mib)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
