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
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

func reconcileRequest(name types.NamespacedName) reconcile.Request {
	return reconcile.Request{NamespacedName: name}
}

// sinkQueue is one sink's work and health. Its fields are guarded by the
// Engine's mutex.
type sinkQueue struct {
	name types.NamespacedName
	// queue holds the names of the Customers to deliver, each once.
	queue workqueue.TypedDelayingInterface[string]
	// limiter spaces the retries of a Customer whose content the sink refused.
	limiter workqueue.TypedRateLimiter[string]
	items   map[string]*item
	cancel  context.CancelFunc

	// uid is the sink's, as last resolved: a new sink under the same name
	// starts with a clean bill of health.
	uid types.UID
	// goneGeneration is the sink generation that answered 410 Gone.
	goneGeneration int64

	// failures counts consecutive failed deliveries, for the backoff.
	failures int
	// pause is the current pause; pausedUntil its end. Past it, probeNeeded
	// lets one delivery through (probing) until one succeeds.
	pause       *Pause
	pausedUntil time.Time
	probeNeeded bool
	probing     bool
	// waiting counts the workers held at the gate.
	waiting int
	// epoch grows with every pause, so that the failures of requests sent
	// before a pause do not lengthen it.
	epoch uint64
	// wake is closed, and replaced, whenever the gate may have opened.
	wake chan struct{}

	batch       *batch
	redelivered string
}

// item is one Customer at one sink.
type item struct {
	// pending is true while the Customer is queued, being delivered or waiting
	// for a retry; since is when that began.
	pending bool
	since   time.Time
	// last is the latest finished attempt.
	last *Outcome
	// failures counts the consecutive failed attempts.
	failures int32
	// notBefore holds back a Customer whose content the sink refused, at
	// refusedGeneration.
	notBefore         time.Time
	refusedGeneration int64
	// force delivers even what the sink acknowledged already (a redelivery).
	force bool
}

// batch is a redelivery: the Customers not yet acknowledged again.
type batch struct {
	token     string
	remaining map[string]struct{}
}

// stop shuts the queue down and cancels the deliveries in flight; the workers
// return.
func (s *sinkQueue) stop() {
	s.queue.ShutDown()
	if s.cancel != nil {
		s.cancel()
	}
	s.wakeLocked()
}

func (s *sinkQueue) wakeLocked() {
	close(s.wake)
	s.wake = make(chan struct{})
}

// pauseLocked reports the pause, while it lasts and while work waits for the
// probe that ends it.
func (s *sinkQueue) pauseLocked(now time.Time) *Pause {
	if s.pause == nil || !s.probeNeeded {
		return nil
	}
	if now.Before(s.pausedUntil) || s.probing || s.waiting > 0 || s.queue.Len() > 0 {
		p := *s.pause
		return &p
	}
	return nil
}

// dropLocked forgets a Customer at the sink.
func (s *sinkQueue) dropLocked(name string) {
	delete(s.items, name)
	s.limiter.Forget(name)
	if s.batch != nil {
		delete(s.batch.remaining, name)
	}
}

// finishBatchLocked ends a redelivery whose every Customer was acknowledged,
// and says whether it did.
func (s *sinkQueue) finishBatchLocked(e *Engine) bool {
	if s.batch == nil || len(s.batch.remaining) > 0 {
		return false
	}
	s.redelivered = s.batch.token
	s.batch = nil
	if e.sinkQ != nil {
		e.sinkQ.Add(reconcileRequest(s.name))
	}
	return true
}

// admit holds a worker while the sink is paused, then lets one probe through
// at a time until one succeeds. It says whether this delivery is the probe,
// the epoch it is admitted in, and false when the sink or engine stops.
func (e *Engine) admit(ctx context.Context, s *sinkQueue) (probe bool, epoch uint64, ok bool) {
	e.mu.Lock()
	for {
		if ctx.Err() != nil {
			e.mu.Unlock()
			return false, 0, false
		}
		var timer *time.Timer
		if wait := s.pausedUntil.Sub(e.opts.Now()); wait > 0 {
			timer = time.NewTimer(wait)
		} else if !s.probeNeeded {
			epoch = s.epoch
			e.mu.Unlock()
			return false, epoch, true
		} else if !s.probing {
			s.probing = true
			epoch = s.epoch
			e.mu.Unlock()
			return true, epoch, true
		}
		wake := s.wake
		s.waiting++
		e.mu.Unlock()
		var expired <-chan time.Time
		if timer != nil {
			expired = timer.C
		}
		select {
		case <-ctx.Done():
		case <-wake:
		case <-expired:
		}
		if timer != nil {
			timer.Stop()
		}
		e.mu.Lock()
		s.waiting--
	}
}
