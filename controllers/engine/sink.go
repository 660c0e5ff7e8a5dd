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
	name   types.NamespacedName
	tenant *tenant
	// queue holds the names of the Customers to deliver, each once. Only
	// workers take from it, with the Engine's mutex held.
	queue workqueue.TypedInterface[string]
	// limiter spaces the retries of a Customer whose content the sink refused.
	limiter workqueue.TypedRateLimiter[string]
	items   map[string]*item
	// ctx is that of the sink's deliveries, cancelled when the sink stops.
	ctx    context.Context
	cancel context.CancelFunc
	// active counts the sink's deliveries in flight.
	active int
	// groups is set while the sink's Sender takes several Customers at once
	// (delivery.GroupSender), as last resolved.
	groups bool

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
	// wakeAt is the end of a pause that a timer will wake the workers at.
	wakeAt time.Time
	// epoch grows with every pause, so that the failures of requests sent
	// before a pause do not lengthen it.
	epoch uint64

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

// tenant is a namespace's share of the worker pool.
type tenant struct {
	name string
	// sinks are the namespace's sinks, in round-robin order; next is where
	// the next worker starts looking.
	sinks []*sinkQueue
	next  int
	// inFlight counts the namespace's deliveries in flight.
	inFlight int
}

// work is what a worker took: Customers at a sink, one unless the sink's
// Sender takes groups, and whether it is the sink's probe, in which epoch.
type work struct {
	ctx       context.Context
	sink      *sinkQueue
	customers []string
	probe     bool
	epoch     uint64
}

// stop shuts the queue down and cancels the deliveries in flight.
func (s *sinkQueue) stop() {
	s.queue.ShutDown()
	if s.cancel != nil {
		s.cancel()
	}
}

// pauseLocked reports the pause, while it lasts and while work waits for the
// probe that ends it.
func (s *sinkQueue) pauseLocked(now time.Time) *Pause {
	if s.pause == nil || !s.probeNeeded {
		return nil
	}
	if now.Before(s.pausedUntil) || s.probing || s.queue.Len() > 0 {
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

// pickLocked takes the next delivery the fair order allows: the next
// namespace, round-robin, below MaxInFlightPerNamespace with a sink that may
// take a delivery now; that namespace's next such sink, round-robin. A sink may
// take one while it is below Workers in flight and not paused; once its pause
// is over, one probe at a time until one succeeds. It returns false when
// nothing may go now.
func (e *Engine) pickLocked() (work, bool) {
	now := e.opts.Now()
	n := len(e.tenantRing)
	for i := range n {
		t := e.tenantRing[(e.next+i)%n]
		if t.inFlight >= e.opts.MaxInFlightPerNamespace {
			continue
		}
		m := len(t.sinks)
		for j := range m {
			s := t.sinks[(t.next+j)%m]
			probe, ok := e.gateLocked(s, now)
			if !ok {
				continue
			}
			// Get does not block: the queue holds work, and only workers,
			// holding mu, take from it.
			name, _ := s.queue.Get()
			if s.ctx == nil {
				s.ctx, s.cancel = context.WithCancel(e.ctx)
			}
			if probe {
				s.probing = true
			}
			s.active++
			t.inFlight++
			e.inFlight++
			w := work{ctx: s.ctx, sink: s, customers: []string{name}, probe: probe, epoch: s.epoch}
			// A sink whose Sender takes groups gets several Customers at once,
			// each counted in flight as if it went alone; a probe goes alone.
			for !probe && s.groups && len(w.customers) < e.groupSize() && s.queue.Len() > 0 &&
				s.active < e.opts.Workers && t.inFlight < e.opts.MaxInFlightPerNamespace && e.inFlight < e.opts.MaxInFlight {
				name, _ := s.queue.Get()
				w.customers = append(w.customers, name)
				s.active++
				t.inFlight++
				e.inFlight++
			}
			t.next = (t.next + j + 1) % m
			e.next = (e.next + i + 1) % n
			return w, true
		}
	}
	return work{}, false
}

// gateLocked says whether a worker may take a delivery of s now, and whether
// that delivery is the sink's probe. While the sink is paused, a timer wakes
// the workers at the pause's end.
func (e *Engine) gateLocked(s *sinkQueue, now time.Time) (probe, ok bool) {
	if s.queue.Len() == 0 || s.active >= e.opts.Workers {
		return false, false
	}
	if wait := s.pausedUntil.Sub(now); wait > 0 {
		if !s.wakeAt.Equal(s.pausedUntil) {
			s.wakeAt = s.pausedUntil
			time.AfterFunc(wait, e.wake)
		}
		return false, false
	}
	if !s.probeNeeded {
		return false, true
	}
	if s.probing {
		return false, false
	}
	return true, true
}

// wake has the workers look for work again.
func (e *Engine) wake() {
	e.mu.Lock()
	e.ready.Broadcast()
	e.mu.Unlock()
}
