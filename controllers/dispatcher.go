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

package controllers

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/delivery"
)

// Dispatcher runs deliveries outside the reconcilers' workers, so a slow or dead
// sink holds only its own delivery slots, never the workers that serve the other
// sinks. The Customer reconciler asks for a delivery and returns at once; when
// the delivery ends, the Dispatcher records its outcome and enqueues the Customer,
// whose next reconcile writes the outcome into its status: status is written in
// one place.
type Dispatcher struct {
	client      *delivery.Client
	perSink     int
	backoff     workqueue.TypedRateLimiter[deliveryKey]
	customers   chan event.TypedGenericEvent[*crmv1alpha1.Customer]
	sinkChanged chan event.TypedGenericEvent[*crmv1alpha1.CustomerSink]
	now         func() time.Time

	mu        sync.Mutex
	inflight  map[deliveryKey]struct{}
	outcomes  map[deliveryKey]outcome
	acked     map[deliveryKey]outcome // the latest success, kept until Forget
	notBefore map[deliveryKey]time.Time
	slots     map[types.UID]chan struct{}
	gone      map[types.UID]int64 // sink UID -> the generation that answered 410
	failing   map[types.UID]bool  // sink UID -> its last delivery failed
}

// deliveryKey is one Customer at one sink.
type deliveryKey struct {
	customer types.NamespacedName
	sink     string
}

// outcome is a finished delivery, waiting for the Customer's next reconcile.
type outcome struct {
	generation     int64
	sinkGeneration int64
	deleted        bool
	result         delivery.Result
	at             time.Time
}

// DispatcherOptions tune the Dispatcher.
type DispatcherOptions struct {
	// PerSinkConcurrency bounds the deliveries in flight to one sink.
	PerSinkConcurrency int
	// BaseDelay and MaxDelay bound the exponential backoff per Customer and sink.
	BaseDelay, MaxDelay time.Duration
}

// NewDispatcher returns a Dispatcher delivering with c.
func NewDispatcher(c *delivery.Client, opts DispatcherOptions) *Dispatcher {
	if opts.PerSinkConcurrency <= 0 {
		opts.PerSinkConcurrency = 16
	}
	if opts.BaseDelay <= 0 {
		opts.BaseDelay = time.Second
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = 5 * time.Minute
	}
	return &Dispatcher{
		client:      c,
		perSink:     opts.PerSinkConcurrency,
		backoff:     workqueue.NewTypedItemExponentialFailureRateLimiter[deliveryKey](opts.BaseDelay, opts.MaxDelay),
		customers:   make(chan event.TypedGenericEvent[*crmv1alpha1.Customer], 1024),
		sinkChanged: make(chan event.TypedGenericEvent[*crmv1alpha1.CustomerSink], 64),
		now:         time.Now,
		inflight:    map[deliveryKey]struct{}{},
		outcomes:    map[deliveryKey]outcome{},
		acked:       map[deliveryKey]outcome{},
		notBefore:   map[deliveryKey]time.Time{},
		slots:       map[types.UID]chan struct{}{},
		gone:        map[types.UID]int64{},
		failing:     map[types.UID]bool{},
	}
}

// state of one Customer at one sink, as the Dispatcher knows it.
type dispatchState struct {
	// done is a finished delivery not yet written to status.
	done *outcome
	// acked is the latest successful delivery. The reconciler reads Customers
	// from the cache, which can lag behind its own last status write; acked
	// keeps it from delivering again what the sink already acknowledged.
	acked *outcome
	// inflight is true while a delivery runs.
	inflight bool
	// wait is how long the backoff holds the next attempt.
	wait time.Duration
}

// Take returns, and forgets, the finished delivery of a Customer at a sink, and
// says whether another is running or held back.
func (d *Dispatcher) Take(customer types.NamespacedName, sink string) dispatchState {
	k := deliveryKey{customer, sink}
	d.mu.Lock()
	defer d.mu.Unlock()
	var st dispatchState
	if o, ok := d.outcomes[k]; ok {
		st.done = &o
		delete(d.outcomes, k)
	}
	if o, ok := d.acked[k]; ok {
		st.acked = &o
	}
	_, st.inflight = d.inflight[k]
	if nb, ok := d.notBefore[k]; ok {
		if w := nb.Sub(d.now()); w > 0 {
			st.wait = w
		} else {
			delete(d.notBefore, k)
		}
	}
	return st
}

// Start begins delivering ev to a sink in the background, unless a delivery of
// the same Customer to the same sink is already in flight. The reconciler may
// wait on the returned handle for a short while and take the outcome itself;
// otherwise the outcome enqueues the Customer. The handle is nil when nobody
// should wait: a delivery was already in flight, or the sink's last delivery
// failed.
func (d *Dispatcher) Start(c *crmv1alpha1.Customer, sink *crmv1alpha1.CustomerSink, target *delivery.Target, deleted bool) *pending {
	k := deliveryKey{types.NamespacedName{Namespace: c.Namespace, Name: c.Name}, sink.Name}
	d.mu.Lock()
	if _, busy := d.inflight[k]; busy {
		d.mu.Unlock()
		return nil
	}
	var p *pending
	if !d.failing[sink.UID] {
		p = &pending{done: make(chan struct{})}
	}
	d.inflight[k] = struct{}{}
	slots, ok := d.slots[sink.UID]
	if !ok {
		slots = make(chan struct{}, d.perSink)
		d.slots[sink.UID] = slots
	}
	d.mu.Unlock()

	ev := delivery.NewEvent(c, deleted, d.now())
	snapshot := c.DeepCopy()
	sinkCopy := sink.DeepCopy()
	sinkLabel := sink.Namespace + "/" + sink.Name
	go func() {
		slots <- struct{}{}
		res := d.client.Deliver(context.Background(), target, ev)
		<-slots

		deliveryDuration.WithLabelValues(sinkLabel).Observe(res.Duration.Seconds())
		d.mu.Lock()
		delete(d.inflight, k)
		d.outcomes[k] = outcome{generation: snapshot.Generation, sinkGeneration: sinkCopy.Generation, deleted: deleted, result: res, at: d.now()}
		d.failing[sinkCopy.UID] = res.Err != nil
		switch {
		case res.Err == nil:
			deliveriesTotal.WithLabelValues(sinkLabel, deliverySuccess).Inc()
			if prev, ok := d.acked[k]; !ok || prev.generation <= snapshot.Generation {
				d.acked[k] = d.outcomes[k]
			}
			d.backoff.Forget(k)
			delete(d.notBefore, k)
		case res.Gone:
			deliveriesTotal.WithLabelValues(sinkLabel, deliveryGone).Inc()
			d.gone[sinkCopy.UID] = sinkCopy.Generation
		default:
			deliveriesTotal.WithLabelValues(sinkLabel, deliveryFailure).Inc()
			wait := d.backoff.When(k)
			if res.RetryAfter > wait {
				wait = res.RetryAfter
			}
			d.notBefore[k] = d.now().Add(wait)
		}
		d.mu.Unlock()

		// Whoever claims the outcome first decides: a waiting reconciler takes it
		// itself, or, once it gave up, the Customer is enqueued to take it.
		if p == nil || !p.claim.CompareAndSwap(claimOpen, claimDelivered) {
			d.customers <- event.TypedGenericEvent[*crmv1alpha1.Customer]{Object: snapshot}
		}
		if p != nil {
			close(p.done)
		}
		if res.Gone {
			d.sinkChanged <- event.TypedGenericEvent[*crmv1alpha1.CustomerSink]{Object: sinkCopy}
		}
	}()
	return p
}

// pending is a delivery a reconciler may wait for.
type pending struct {
	done  chan struct{}
	claim atomic.Int32
}

const (
	claimOpen int32 = iota
	claimDelivered
	claimAbandoned
)

// await waits for the deliveries, up to limit. It says whether any outcome is
// now the caller's to take; the ones it stopped waiting for enqueue their
// Customer when they end.
func await(ps []*pending, limit time.Duration) bool {
	timer := time.NewTimer(limit)
	defer timer.Stop()
	any := false
	expired := false
	for _, p := range ps {
		if !expired {
			select {
			case <-p.done:
				any = true
				continue
			case <-timer.C:
				expired = true
			}
		}
		if !p.claim.CompareAndSwap(claimOpen, claimAbandoned) {
			// It ended just now and counts on us.
			<-p.done
			any = true
		}
	}
	return any
}

// Gone says whether the sink's endpoint answered 410 Gone at its current
// generation; a change to the sink's spec gives it another chance.
func (d *Dispatcher) Gone(sink *crmv1alpha1.CustomerSink) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	g, ok := d.gone[sink.UID]
	return ok && g == sink.Generation
}

// Forget drops the backoff and any unread outcome of a Customer at a sink.
func (d *Dispatcher) Forget(customer types.NamespacedName, sink string) {
	k := deliveryKey{customer, sink}
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.outcomes, k)
	delete(d.acked, k)
	delete(d.notBefore, k)
	d.backoff.Forget(k)
}
