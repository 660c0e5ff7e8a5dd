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

package secretcache

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// DefaultSweepInterval is how often a Sweeper runs when none is set.
const DefaultSweepInterval = time.Minute

// Sweeper is a manager.Runnable that, every Interval, drops the Secrets of a
// Store that nothing references any more (a deleted CustomerSource, a sink that
// now names another Secret), so that the Store's memory follows the objects
// that exist rather than every Secret ever read.
type Sweeper struct {
	Store *Store
	// Referenced returns the Secrets referenced now, from a cache. Nil keeps
	// every Secret (a Store reading by name still drops those past its TTL).
	Referenced func(ctx context.Context) (map[types.NamespacedName]bool, error)
	// Interval is DefaultSweepInterval when zero.
	Interval time.Duration
}

// NeedLeaderElection is false: every replica holds Secrets of its own.
func (w *Sweeper) NeedLeaderElection() bool { return false }

// Start sweeps until ctx is done.
func (w *Sweeper) Start(ctx context.Context) error {
	interval := w.Interval
	if interval <= 0 {
		interval = DefaultSweepInterval
	}
	logger := log.FromContext(ctx).WithName("secret-cache")
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := w.Sweep(ctx); err != nil {
				logger.V(1).Info("could not sweep unreferenced Secrets", "error", err.Error())
			}
		}
	}
}

// Sweep drops, once, the Secrets nothing references.
func (w *Sweeper) Sweep(ctx context.Context) error {
	var keep func(types.NamespacedName) bool
	if w.Referenced != nil {
		refs, err := w.Referenced(ctx)
		if err != nil {
			return err
		}
		keep = func(k types.NamespacedName) bool { return refs[k] }
	}
	if n := w.Store.Retain(keep); n > 0 {
		log.FromContext(ctx).WithName("secret-cache").V(1).Info("dropped Secrets no longer referenced", "count", n)
	}
	return nil
}
