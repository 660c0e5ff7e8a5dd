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

// Package engine runs deliveries of Customers to CustomerSinks.
//
// Each sink has a queue of Customer names (keys, not copies). One fixed pool of
// workers serves every sink's queue: a worker reads the Customer from the
// manager's cache when it delivers, so what goes out is always the current
// state, and goroutines, connections and memory grow neither with the backlog
// nor with the number of sinks. The pool is shared fairly: a worker takes the
// next namespace with work, round-robin, then the next sink of that namespace;
// no namespace holds more than MaxInFlightPerNamespace deliveries, nor a sink
// more than Workers, so one tenant's hundred slow sinks leave slots for the
// others. A sink whose Sender writes many records as cheaply as one (a
// delivery.GroupSender: a database) gets its backlog in groups, several
// Customers to one worker, each counted in flight. Backoff belongs to the sink: a
// Retry-After or a run of failures pauses the whole sink until a "not before"
// time, after which one probe goes out, and full speed resumes on its success.
// A sink that refuses one Customer's content (a 4xx other than 408, 409 and 429)
// is not paused for the others; that Customer backs off alone.
//
// The engine decides nothing about what a sink needs: the Customer reconciler
// asks for deliveries (Deliver), reads where they stand (Look) and records the
// outcomes in the Customer's status. The engine tells it when an outcome is
// ready by enqueueing the Customer (CustomerEvents), and tells the CustomerSink
// reconciler when a sink's health changes (SinkEvents).
package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/delivery"
)

// Pause reasons, as the CustomerSink's Ready condition shows them.
const (
	// ReasonThrottled: the sink asked to be left alone (429 or 503 with Retry-After).
	ReasonThrottled = "Throttled"
	// ReasonBackingOff: deliveries to the sink failed; it is paused with
	// exponential backoff.
	ReasonBackingOff = "BackingOff"
	// ReasonConnectionLimit: the sink's sender could not open a database or
	// broker connection because --sink-max-connections or
	// --sink-max-connections-per-namespace was reached; it backs off as
	// ReasonBackingOff does.
	ReasonConnectionLimit = "ConnectionLimit"
)

// Key names one Customer at one CustomerSink of the same namespace. In Forget,
// an empty Customer stands for every Customer of the sink, and an empty Sink
// for every sink of the Customer.
type Key struct {
	Namespace string
	Sink      string
	Customer  string
}

func (k Key) sink() types.NamespacedName {
	return types.NamespacedName{Namespace: k.Namespace, Name: k.Sink}
}

// Sink is a CustomerSink as a delivery sees it now.
type Sink struct {
	UID        types.UID
	Generation int64
	// Sender delivers to the sink's system, whatever its type.
	Sender delivery.Sender
	// Release, when set, is called once the delivery that resolved this Sink
	// has returned: a Sender replaced meanwhile (the sink or its Secret
	// changed) is closed only after the deliveries still using it.
	Release func()
}

// Targets resolves where a sink's deliveries go, when a worker is about to
// deliver. ok is false when the sink cannot take deliveries now (deleted,
// suspended, misconfigured): the work queued for it is dropped, and asked for
// again by the reconciler once the sink is ready. A sink that does not exist
// any more has an empty UID.
type Targets func(ctx context.Context, sink types.NamespacedName) (s Sink, ok bool, err error)

// Outcome is a finished delivery attempt of a Customer to a sink.
type Outcome struct {
	// Generation and SinkGeneration are those of the Customer and sink delivered.
	Generation, SinkGeneration int64
	// Deleted says a customer.deleted was delivered.
	Deleted bool
	// At is when the attempt ended.
	At time.Time
	// Err is nil when the sink acknowledged the delivery.
	Err error
	// Failures counts the consecutive failed attempts of this Customer at this
	// sink, this one included; 0 on success.
	Failures int32
}

// Have is what a Customer's status says a sink has.
type Have struct {
	Generation, SinkGeneration int64
}

// Report says where one Customer stands at one sink.
type Report struct {
	// Outcome is the latest finished attempt that the Customer's status (as
	// passed in Have) may not show yet; nil when there is none.
	Outcome *Outcome
	// Pending is true while a delivery is queued, running or waiting for a retry.
	Pending bool
	// Since is when the delivery became pending.
	Since time.Time
	// Paused is the sink's pause, if it is paused.
	Paused *Pause
}

// Pause is a sink held back from deliveries.
type Pause struct {
	// Reason is ReasonThrottled, ReasonBackingOff or ReasonConnectionLimit.
	Reason string
	// Until is the "not before" time; then one probe goes out.
	Until time.Time
	// Cause is the failure that started or extended the pause.
	Cause string
}

// Health is what the engine knows of a sink.
type Health struct {
	// Pause is set while the sink is paused, or waiting for its probe.
	Pause *Pause
	// Gone is true when the sink answered 410 Gone at the generation asked about.
	Gone bool
	// Redelivering is the token of a redelivery under way, Redelivered that of
	// the last one finished since the engine started.
	Redelivering, Redelivered string
}

// Options tune the engine.
type Options struct {
	// Client is the HTTP sinks' shared client. The engine closes its idle
	// connections when it stops.
	Client *delivery.Client
	// Customers reads Customers; the manager's cache.
	Customers client.Reader
	// Targets resolves sinks.
	Targets Targets
	// Forgotten, when set, is told of a sink that Forget dropped, so that what
	// Targets keeps of it goes too.
	Forgotten func(sink types.NamespacedName)
	// Recorder records an Event on a CustomerSink when it is paused.
	Recorder events.EventRecorder
	// Workers is the number of deliveries in flight to one sink at most.
	Workers int
	// MaxInFlight is the number of deliveries in flight across every sink at
	// most, and the size of the worker pool.
	MaxInFlight int
	// MaxInFlightPerNamespace is the number of deliveries in flight to the
	// sinks of one namespace at most; below MaxInFlight, so that slots are left
	// for the other namespaces while one is busy. 0 means three quarters of
	// MaxInFlight.
	MaxInFlightPerNamespace int
	// BaseDelay and MaxDelay bound the exponential backoff, of a sink and of a
	// Customer at a sink.
	BaseDelay, MaxDelay time.Duration
	// Now is the clock; tests may set it.
	Now func() time.Time
}

// Engine runs deliveries. It is a manager.Runnable: deliveries start once the
// manager runs it, and in-flight ones are cancelled when the manager stops.
type Engine struct {
	opts Options

	mu sync.Mutex
	// ready is signalled, with mu held, whenever a worker may find work: a
	// Customer queued, a delivery done, a pause over.
	ready     *sync.Cond
	ctx       context.Context // set by Start; nil before
	stopped   bool
	sinks     map[types.NamespacedName]*sinkQueue
	customerQ workqueue.TypedRateLimitingInterface[reconcile.Request]
	sinkQ     workqueue.TypedRateLimitingInterface[reconcile.Request]
	workers   sync.WaitGroup
	// tenants are the namespaces with sinks, in the workers' round-robin
	// order; next is where the next worker starts looking.
	tenants    map[string]*tenant
	tenantRing []*tenant
	next       int
	// inFlight counts the deliveries in flight: one per worker, or a group's.
	inFlight int
	// delayed holds the Customers to queue again later (a retry, a refused
	// Customer's backoff): one queue, and one goroutine, shared by every sink.
	delayed workqueue.TypedDelayingInterface[Key]
}

// New returns an Engine.
func New(opts Options) *Engine {
	if opts.Workers <= 0 {
		opts.Workers = 16
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	if opts.MaxInFlightPerNamespace <= 0 || opts.MaxInFlightPerNamespace > opts.MaxInFlight {
		opts.MaxInFlightPerNamespace = max(1, opts.MaxInFlight*3/4)
	}
	if opts.BaseDelay <= 0 {
		opts.BaseDelay = time.Second
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = 5 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	e := &Engine{opts: opts, sinks: map[types.NamespacedName]*sinkQueue{}, tenants: map[string]*tenant{}}
	e.ready = sync.NewCond(&e.mu)
	return e
}

// GroupSize is how many Customers a worker takes at once from a sink whose
// Sender takes groups (delivery.GroupSender), when workers deliveries may be in
// flight to the sink: half of them, so that a backlog goes out as two groups at
// a time, one written while the other is read and built, each sharing one
// round trip, instead of one waiting goroutine per Customer. More, smaller
// groups would cost the database a transaction and a statement or two each,
// and deliver no sooner: the rows in flight are the same.
func GroupSize(workers int) int { return max(1, (workers+1)/2) }

func (e *Engine) groupSize() int { return GroupSize(e.opts.Workers) }

// DefaultMaxInFlight is Options.MaxInFlight when unset.
const DefaultMaxInFlight = 64

// NeedLeaderElection says that deliveries run on the leader only, with the
// reconcilers that ask for them.
func (e *Engine) NeedLeaderElection() bool { return true }

// Start runs the workers until ctx is done, then cancels the deliveries in
// flight and returns once every worker has.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	if e.ctx != nil {
		e.mu.Unlock()
		return fmt.Errorf("the delivery engine was started already")
	}
	e.ctx = ctx
	e.delayed = workqueue.NewTypedDelayingQueue[Key]()
	for range e.opts.MaxInFlight {
		e.workers.Go(e.work)
	}
	delayed := e.delayed
	var requeuer sync.WaitGroup
	requeuer.Go(func() { e.requeue(delayed) })
	e.mu.Unlock()

	<-ctx.Done()

	e.mu.Lock()
	e.stopped = true
	for _, s := range e.sinks {
		e.removeSinkLocked(s)
	}
	e.ready.Broadcast()
	e.mu.Unlock()
	e.workers.Wait()
	delayed.ShutDown()
	requeuer.Wait()
	if e.opts.Client != nil {
		e.opts.Client.CloseIdleConnections()
	}
	return nil
}

// CustomerEvents is the source through which finished deliveries enqueue their
// Customer for the Customer reconciler.
func (e *Engine) CustomerEvents() source.Source { return e.queueSource(&e.customerQ) }

// SinkEvents is the source through which changes of a sink's health (a pause,
// its end, 410 Gone, a finished redelivery) enqueue the sink for the
// CustomerSink reconciler.
func (e *Engine) SinkEvents() source.Source { return e.queueSource(&e.sinkQ) }

// queueSource is a source that, once its controller starts, keeps the
// controller's queue in *into (guarded by mu) for the engine to enqueue to.
func (e *Engine) queueSource(into *workqueue.TypedRateLimitingInterface[reconcile.Request]) source.Source {
	return source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		e.mu.Lock()
		*into = q
		e.mu.Unlock()
		return nil
	})
}

// Deliver asks for the Customer's current state to be delivered to the sink,
// unless a delivery is pending already. A Customer backing off after the sink
// refused its content is retried at once when generation is newer than the
// refused one: the content changed.
func (e *Engine) Deliver(k Key, generation int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return
	}
	s := e.sinkLocked(k.sink())
	it := s.items[k.Customer]
	if it == nil {
		it = &item{}
		s.items[k.Customer] = it
	}
	if it.pending {
		if !it.notBefore.IsZero() && generation > it.refusedGeneration {
			it.notBefore = time.Time{}
			e.addLocked(s, k.Customer)
		}
		return
	}
	it.pending, it.since = true, e.opts.Now()
	e.addLocked(s, k.Customer)
}

// Redeliver delivers the current state of each of the named Customers to the
// sink again, even where the sink has it; Health reports token as Redelivered
// once every one of them was acknowledged (or went away). A new token replaces
// a redelivery under way.
func (e *Engine) Redeliver(sink types.NamespacedName, token string, customers []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return
	}
	s := e.sinkLocked(sink)
	s.batch = &batch{token: token, remaining: make(map[string]struct{}, len(customers))}
	now := e.opts.Now()
	for _, name := range customers {
		s.batch.remaining[name] = struct{}{}
		it := s.items[name]
		if it == nil {
			it = &item{}
			s.items[name] = it
		}
		it.force = true
		if !it.pending {
			it.pending, it.since = true, now
			e.addLocked(s, name)
		}
	}
	s.finishBatchLocked(e)
}

// Look reports where a Customer stands at a sink. have is what the Customer's
// status, as the reconciler read it, says the sink has: an acknowledged
// delivery that it already shows is forgotten, so the engine holds nothing for
// Customers that are in sync.
func (e *Engine) Look(k Key, have Have) Report {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.sinks[k.sink()]
	if s == nil {
		return Report{}
	}
	rep := Report{Paused: s.pauseLocked(e.opts.Now())}
	it := s.items[k.Customer]
	if it == nil {
		return rep
	}
	if !it.pending && (it.last == nil ||
		(it.last.Err == nil && it.last.Generation <= have.Generation && it.last.SinkGeneration <= have.SinkGeneration)) {
		s.dropLocked(k.Customer)
		return rep
	}
	if it.last != nil {
		o := *it.last
		rep.Outcome = &o
	}
	rep.Pending, rep.Since = it.pending, it.since
	return rep
}

// Health reports a sink's pause, whether it answered 410 Gone at generation,
// and its redeliveries.
func (e *Engine) Health(sink types.NamespacedName, generation int64) Health {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.sinks[sink]
	if s == nil {
		return Health{}
	}
	h := Health{Pause: s.pauseLocked(e.opts.Now()), Gone: s.goneGeneration != 0 && s.goneGeneration == generation,
		Redelivered: s.redelivered}
	if s.batch != nil {
		h.Redelivering = s.batch.token
	}
	return h
}

// Forget drops what the engine holds for k: a Customer that left a sink's
// selection, a Customer that is gone (empty Sink), a sink that is gone (empty
// Customer; its queue goes and its deliveries in flight are cancelled).
func (e *Engine) Forget(k Key) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case k.Customer == "":
		if s := e.sinks[k.sink()]; s != nil {
			e.removeSinkLocked(s)
		}
		forgetSinkSeries(k.sink().String())
		if e.opts.Forgotten != nil {
			e.opts.Forgotten(k.sink())
		}
	case k.Sink == "":
		for name, s := range e.sinks {
			if name.Namespace == k.Namespace {
				s.dropLocked(k.Customer)
			}
		}
	default:
		if s := e.sinks[k.sink()]; s != nil {
			s.dropLocked(k.Customer)
		}
	}
}

// sinkLocked returns the queue of a sink, creating it on first use.
func (e *Engine) sinkLocked(name types.NamespacedName) *sinkQueue {
	s := e.sinks[name]
	if s != nil {
		return s
	}
	t := e.tenants[name.Namespace]
	if t == nil {
		t = &tenant{name: name.Namespace}
		e.tenants[name.Namespace] = t
		e.tenantRing = append(e.tenantRing, t)
	}
	s = &sinkQueue{
		name:    name,
		tenant:  t,
		queue:   workqueue.NewTyped[string](),
		limiter: workqueue.NewTypedItemExponentialFailureRateLimiter[string](e.opts.BaseDelay, e.opts.MaxDelay),
		items:   map[string]*item{},
	}
	t.sinks = append(t.sinks, s)
	e.sinks[name] = s
	return s
}

// removeSinkLocked stops a sink: its queue goes, its deliveries in flight are
// cancelled, and its namespace leaves the round-robin once nothing of it is
// left.
func (e *Engine) removeSinkLocked(s *sinkQueue) {
	s.stop()
	if e.sinks[s.name] == s {
		delete(e.sinks, s.name)
	}
	t := s.tenant
	if i := slices.Index(t.sinks, s); i >= 0 {
		t.sinks = slices.Delete(t.sinks, i, i+1)
		if t.next > i {
			t.next--
		}
	}
	e.dropTenantLocked(t)
}

// dropTenantLocked forgets a namespace that has neither sinks nor deliveries
// in flight.
func (e *Engine) dropTenantLocked(t *tenant) {
	if len(t.sinks) > 0 || t.inFlight > 0 || e.tenants[t.name] != t {
		return
	}
	delete(e.tenants, t.name)
	if i := slices.Index(e.tenantRing, t); i >= 0 {
		e.tenantRing = slices.Delete(e.tenantRing, i, i+1)
		if e.next > i {
			e.next--
		}
	}
}

// addLocked queues a Customer at a sink and wakes a worker.
func (e *Engine) addLocked(s *sinkQueue, name string) {
	s.queue.Add(name)
	e.ready.Signal()
}

// addAfter queues a Customer at a sink again after d.
func (e *Engine) addAfter(s *sinkQueue, name string, d time.Duration) {
	e.delayed.AddAfter(Key{Namespace: s.name.Namespace, Sink: s.name.Name, Customer: name}, d)
}

// requeue moves the Customers whose delay is over back into their sink's
// queue, until the engine stops.
func (e *Engine) requeue(delayed workqueue.TypedDelayingInterface[Key]) {
	for {
		k, shutdown := delayed.Get()
		if shutdown {
			return
		}
		e.mu.Lock()
		if s := e.sinks[k.sink()]; s != nil {
			e.addLocked(s, k.Customer)
		}
		e.mu.Unlock()
		delayed.Done(k)
	}
}

func (e *Engine) notifyCustomer(ns, name string) {
	e.mu.Lock()
	q := e.customerQ
	e.mu.Unlock()
	if q == nil {
		return
	}
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}
	// An outcome goes ahead of the Customers a sink change queued: its
	// reconcile is the status write the deliveries wait to show, and it frees
	// what the engine holds. Otherwise a new sink's thousands of Customers
	// would all be looked at (and queued) before the first outcome is written,
	// leaving the API server idle meanwhile. A Customer the API server reports
	// changed (priority 0) goes ahead of it: a new customer's delivery does not
	// wait behind status writes, which take an API round trip each.
	if pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request]); ok {
		pq.AddWithOpts(priorityqueue.AddOpts{Priority: new(OutcomePriority)}, req)
		return
	}
	q.Add(req)
}

// OutcomePriority is the priority, in the Customer controller's queue, of a
// Customer whose delivery finished: below controller-runtime's default, 0, of
// the Customers' own changes, above the Customers a sink change queues
// (controllers.SinkChangePriority) and the initial list (handler.LowPriority).
const OutcomePriority = -10

func (e *Engine) notifySink(name types.NamespacedName) {
	e.mu.Lock()
	q := e.sinkQ
	e.mu.Unlock()
	if q != nil {
		q.Add(reconcile.Request{NamespacedName: name})
	}
}

// work is one worker of the pool: it takes the next delivery the fair order
// allows, makes it, and goes on until the engine stops.
func (e *Engine) work() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for !e.stopped {
		w, ok := e.pickLocked()
		if !ok {
			e.ready.Wait()
			continue
		}
		e.mu.Unlock()
		e.process(w)
		e.mu.Lock()
		e.doneLocked(w)
	}
}

// doneLocked frees the slots of the deliveries taken by pickLocked.
func (e *Engine) doneLocked(w work) {
	for _, name := range w.customers {
		w.sink.queue.Done(name)
		w.sink.active--
		w.sink.tenant.inFlight--
		e.inFlight--
	}
	e.dropTenantLocked(w.sink.tenant)
	// Done may have queued the Customers again, and slots are free: the worker
	// that frees them takes one delivery next, another may take the others.
	e.ready.Signal()
}

// process makes one delivery attempt of each of the work's Customers to its
// sink: one call of the sink's Sender, or of its GroupSender for several. The
// gate was passed when the work was taken, so that what is read next is
// current when it goes out.
func (e *Engine) process(w work) {
	ctx, s, probe, epoch := w.ctx, w.sink, w.probe, w.epoch
	released := false
	release := func() {
		if probe && !released {
			released = true
			e.mu.Lock()
			s.probing = false
			e.ready.Broadcast()
			e.mu.Unlock()
		}
	}
	defer release()
	if ctx.Err() != nil {
		return // the sink or the engine stopped
	}

	target, ready, err := e.opts.Targets(ctx, s.name)
	if err != nil {
		if ctx.Err() == nil {
			log.FromContext(ctx).Error(err, "resolving a CustomerSink", "sink", s.name)
			for _, name := range w.customers {
				e.addAfter(s, name, e.opts.BaseDelay)
			}
		}
		return
	}
	if target.Release != nil {
		defer target.Release()
	}
	e.mu.Lock()
	if target.UID != s.uid {
		// A new sink under the same name starts afresh.
		s.uid, s.goneGeneration, s.failures, s.pausedUntil, s.pause, s.probeNeeded = target.UID, 0, 0, time.Time{}, nil, false
		e.ready.Broadcast()
	}
	group, groups := target.Sender.(delivery.GroupSender)
	s.groups = groups
	if !ready || (s.goneGeneration != 0 && s.goneGeneration == target.Generation) {
		// The reconciler asks again once the sink is ready; a redelivery under
		// way starts again then.
		for _, name := range w.customers {
			s.dropLocked(name)
		}
		s.batch = nil
		if target.UID == "" && len(s.items) == 0 && e.sinks[s.name] == s {
			// The sink is gone: so is its queue.
			e.removeSinkLocked(s)
		}
		e.mu.Unlock()
		for _, name := range w.customers {
			e.notifyCustomer(s.name.Namespace, name)
		}
		return
	}
	e.mu.Unlock()

	due := make([]attempt, 0, len(w.customers))
	for _, name := range w.customers {
		if a, ok := e.attemptOf(ctx, s, name, target); ok {
			due = append(due, a)
		}
	}
	if len(due) == 0 {
		return
	}
	now := e.opts.Now()
	var results []delivery.Result
	if groups && len(due) > 1 {
		evs := make([]delivery.Event, len(due))
		for i, a := range due {
			evs[i] = delivery.NewEvent(a.customer, a.deleted, now)
		}
		results = group.DeliverGroup(ctx, evs)
	} else {
		results = make([]delivery.Result, len(due))
		for i, a := range due {
			results[i] = target.Sender.Deliver(ctx, delivery.NewEvent(a.customer, a.deleted, now))
		}
	}
	if ctx.Err() != nil {
		return // stopping: the attempt counts for nothing
	}
	released = true // finish settles the probe
	for i, a := range due {
		e.finish(s, a.name, a.item, a.customer, target, a.deleted, results[i], probe, epoch)
	}
}

// attempt is a Customer about to be delivered, as read from the cache.
type attempt struct {
	name     string
	item     *item
	customer *crmv1alpha1.Customer
	deleted  bool
}

// attemptOf reads a Customer to deliver to a ready sink, and says whether it
// is due: not forgotten, not gone, not waiting out a refusal of this content,
// not acknowledged already.
func (e *Engine) attemptOf(ctx context.Context, s *sinkQueue, name string, target Sink) (attempt, bool) {
	e.mu.Lock()
	it := s.items[name]
	e.mu.Unlock()
	if it == nil {
		return attempt{}, false // forgotten while queued
	}

	c := &crmv1alpha1.Customer{}
	if err := e.opts.Customers.Get(ctx, types.NamespacedName{Namespace: s.name.Namespace, Name: name}, c); err != nil {
		if apierrors.IsNotFound(err) {
			e.mu.Lock()
			s.dropLocked(name)
			e.mu.Unlock()
			return attempt{}, false
		}
		if ctx.Err() == nil {
			log.FromContext(ctx).Error(err, "reading a Customer to deliver", "customer", name, "sink", s.name)
			e.addAfter(s, name, e.opts.BaseDelay)
		}
		return attempt{}, false
	}
	e.mu.Lock()
	if it != s.items[name] {
		e.mu.Unlock()
		return attempt{}, false
	}
	if wait := it.notBefore.Sub(e.opts.Now()); wait > 0 && c.Generation <= it.refusedGeneration {
		// Its retry is scheduled already.
		e.mu.Unlock()
		return attempt{}, false
	}
	deleted := !c.DeletionTimestamp.IsZero() || c.Spec.Lifecycle == crmv1alpha1.LifecycleDeleted
	if l := it.last; !it.force && l != nil && l.Err == nil && l.Generation == c.Generation &&
		l.SinkGeneration == target.Generation && l.Deleted == deleted {
		// Acknowledged already.
		it.pending = false
		e.mu.Unlock()
		e.notifyCustomer(s.name.Namespace, name)
		return attempt{}, false
	}
	e.mu.Unlock()
	return attempt{name: name, item: it, customer: c, deleted: deleted}, true
}

// Classes of delivery results, for backoff.
type class int

const (
	acknowledged class = iota
	refused            // the Customer's content: a 4xx other than 408, 409, 410, 429
	throttled          // 429 or 503 with Retry-After
	failed             // anything else: the sink is unwell
	gone               // 410
)

func classify(res delivery.Result) class {
	code := res.StatusCode
	switch {
	case res.Err == nil:
		return acknowledged
	case res.Gone:
		return gone
	case res.Refused:
		return refused
	case res.RetryAfter > 0:
		return throttled
	case code >= 400 && code < 500 && code != 408 && code != 409 && code != 429:
		return refused
	}
	return failed
}

// finish records an attempt: the sink's health first, then the Customer's.
func (e *Engine) finish(s *sinkQueue, name string, it *item, c *crmv1alpha1.Customer, target Sink, deleted bool, res delivery.Result, probe bool, epoch uint64) {
	now := e.opts.Now()
	sinkLabel := s.name.String()
	deliveryDuration.WithLabelValues(sinkLabel).Observe(res.Duration.Seconds())
	cls := classify(res)
	switch cls {
	case acknowledged:
		deliveriesTotal.WithLabelValues(sinkLabel, "success").Inc()
	case gone:
		deliveriesTotal.WithLabelValues(sinkLabel, "gone").Inc()
	default:
		deliveriesTotal.WithLabelValues(sinkLabel, "failure").Inc()
	}

	var pauseStarted *Pause
	notifySink := false
	e.mu.Lock()
	if probe {
		s.probing = false
	}
	switch cls {
	case acknowledged, refused:
		// The sink answered: it is well, whatever it thought of this Customer.
		if probe {
			s.probeNeeded, s.pause = false, nil
			sinkPaused.WithLabelValues(sinkLabel).Set(0)
			notifySink = true
		}
		if !s.probeNeeded {
			s.failures = 0
		}
	case gone:
		s.goneGeneration = target.Generation
		notifySink = true
	case throttled, failed:
		// Failures of requests sent before the current pause began are part of
		// what started it, not a reason to lengthen it; a longer Retry-After is.
		if probe || epoch == s.epoch || (cls == throttled && now.Add(res.RetryAfter).After(s.pausedUntil)) {
			// A pause that starts, or whose reason changes, is an Event.
			wasPaused := s.probeNeeded && s.pause != nil
			var was string
			if wasPaused {
				was = s.pause.Reason
			}
			s.failures++
			p := &Pause{Reason: ReasonBackingOff, Cause: res.Err.Error()}
			if cls == throttled {
				p.Reason, p.Until = ReasonThrottled, now.Add(res.RetryAfter)
			} else {
				p.Until = now.Add(jittered(e.opts.BaseDelay, e.opts.MaxDelay, s.failures))
				if limit := (*delivery.ConnectionLimitError)(nil); errors.As(res.Err, &limit) {
					p.Reason = ReasonConnectionLimit
				}
			}
			s.pause, s.pausedUntil, s.probeNeeded = p, p.Until, true
			sinkPaused.WithLabelValues(sinkLabel).Set(1)
			s.epoch++
			notifySink = true
			if !wasPaused || was != p.Reason {
				pauseStarted = p
			}
		}
	}
	if probe {
		// The gate opened, or closed again.
		e.ready.Broadcast()
	}

	if it != s.items[name] {
		// Forgotten meanwhile.
		e.mu.Unlock()
		e.afterFinish(s, name, notifySink, pauseStarted, target)
		return
	}
	o := &Outcome{Generation: c.Generation, SinkGeneration: target.Generation, Deleted: deleted, At: now, Err: res.Err}
	switch cls {
	case acknowledged:
		it.failures, it.notBefore, it.refusedGeneration = 0, time.Time{}, 0
		it.last, it.pending = o, false
		s.limiter.Forget(name)
		if it.force {
			it.force = false
			if s.batch != nil {
				delete(s.batch.remaining, name)
				if s.finishBatchLocked(e) {
					notifySink = true
				}
			}
		}
	case gone:
		s.dropLocked(name)
	case refused:
		it.failures++
		o.Failures = it.failures
		it.last = o
		wait := s.limiter.When(name)
		it.notBefore, it.refusedGeneration = now.Add(wait), c.Generation
		e.addAfter(s, name, wait)
	default:
		it.failures++
		o.Failures = it.failures
		it.last = o
		// Back in line, behind the sink's pause.
		e.addLocked(s, name)
	}
	e.mu.Unlock()
	e.notifyCustomer(s.name.Namespace, name)
	e.afterFinish(s, name, notifySink, pauseStarted, target)
}

func (e *Engine) afterFinish(s *sinkQueue, _ string, notifySink bool, started *Pause, target Sink) {
	if started != nil && e.opts.Recorder != nil {
		sink := &crmv1alpha1.CustomerSink{
			TypeMeta:   metav1.TypeMeta{APIVersion: crmv1alpha1.GroupVersion.String(), Kind: "CustomerSink"},
			ObjectMeta: metav1.ObjectMeta{Namespace: s.name.Namespace, Name: s.name.Name, UID: target.UID},
		}
		e.opts.Recorder.Eventf(sink, nil, corev1.EventTypeWarning, started.Reason, "Pause",
			"deliveries paused until %s: %s", started.Until.UTC().Format(time.RFC3339), started.Cause)
	}
	if notifySink {
		e.notifySink(s.name)
	}
}

// jittered is the backoff after n consecutive failures: base doubled n-1
// times, capped at max, then drawn from its upper half, so that sinks that
// failed together do not come back together.
func jittered(base, max time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	half := d / 2
	return half + rand.N(half+1)
}
