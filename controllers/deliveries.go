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
	"fmt"
	"reflect"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/source"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/delivery"
	"github.com/customer-operator/customer-operator/controllers/engine"
	"github.com/customer-operator/customer-operator/internal/secretcache"
)

// Deliveries is all the reconcilers ask of the delivery engine: the Customer
// reconciler decides what each sink needs and records the outcomes, the engine
// runs the deliveries. *engine.Engine implements it.
type Deliveries interface {
	// Deliver queues a delivery of the Customer's current state to a sink.
	Deliver(k engine.Key, generation int64)
	// Redeliver sends the named Customers to a sink again, under a token.
	Redeliver(sink types.NamespacedName, token string, customers []string)
	// Look reports where a Customer stands at a sink, given what its status says.
	Look(k engine.Key, have engine.Have) engine.Report
	// Health reports a sink's pause, 410 Gone and redeliveries.
	Health(sink types.NamespacedName, generation int64) engine.Health
	// Forget drops what the engine holds for a Customer, a sink, or both.
	Forget(k engine.Key)
	// CustomerEvents enqueues Customers whose delivery finished.
	CustomerEvents() source.Source
	// SinkEvents enqueues sinks whose health changed.
	SinkEvents() source.Source
}

var _ Deliveries = &engine.Engine{}

// EngineOptions are the engine's settings that main.go and tests choose.
type EngineOptions struct {
	// Client sends the deliveries.
	Client *delivery.Client
	// PerSinkConcurrency is the number of deliveries in flight to one sink at
	// most.
	PerSinkConcurrency int
	// MaxInFlight is the number of deliveries in flight across every sink at
	// most, and MaxInFlightPerNamespace to the sinks of one namespace; 0 means
	// engine.DefaultMaxInFlight, and three quarters of MaxInFlight.
	MaxInFlight, MaxInFlightPerNamespace int
	// BaseDelay and MaxDelay bound the backoff of a sink, and of a Customer at a sink.
	BaseDelay, MaxDelay time.Duration
	// MaxSinkConnections and MaxSinkConnectionsPerNamespace bound the database
	// and broker connections of every sink, and of the sinks of one namespace;
	// 0 means delivery.DefaultMaxSinkConnections and
	// delivery.DefaultMaxSinkConnectionsPerNamespace.
	MaxSinkConnections, MaxSinkConnectionsPerNamespace int
}

// NewEngine builds the delivery engine on mgr's cache and adds it to mgr, which
// starts and stops it.
func NewEngine(mgr ctrl.Manager, secrets *secretcache.Store, opts EngineOptions) (*engine.Engine, error) {
	if opts.Client == nil {
		opts.Client = &delivery.Client{}
	}
	maxConns, perNS := opts.MaxSinkConnections, opts.MaxSinkConnectionsPerNamespace
	if maxConns <= 0 {
		maxConns = delivery.DefaultMaxSinkConnections
	}
	if perNS <= 0 {
		perNS = min(delivery.DefaultMaxSinkConnectionsPerNamespace, maxConns)
	}
	targets := &sinkTargets{reader: mgr.GetClient(), secrets: secrets,
		deps: senderDeps{client: opts.Client, policy: opts.Client.Policy, limits: delivery.NewConnectionLimits(maxConns, perNS)}}
	e := engine.New(engine.Options{
		Client:    opts.Client,
		Customers: mgr.GetClient(),
		Targets:   targets.resolve,
		Forgotten: targets.forget,
		Recorder:  mgr.GetEventRecorder("delivery-engine"),
		Workers:   opts.PerSinkConcurrency,

		MaxInFlight:             opts.MaxInFlight,
		MaxInFlightPerNamespace: opts.MaxInFlightPerNamespace,
		BaseDelay:               opts.BaseDelay,
		MaxDelay:                opts.MaxDelay,
	})
	if err := mgr.Add(e); err != nil {
		return nil, fmt.Errorf("adding the delivery engine: %w", err)
	}
	// The senders' connections go when the manager stops, once the engine's
	// last deliveries have returned their leases.
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		<-ctx.Done()
		targets.closeAll()
		return nil
	})); err != nil {
		return nil, fmt.Errorf("adding the senders' closer: %w", err)
	}
	return e, nil
}

// sinkTargets resolves sinks for the engine's workers from the cache, with one
// Sender per sink. Building one parses the Secret's keys and CA bundle, and
// may open a pool of database or broker connections, so the latest one of each
// sink is kept until the sink's spec or its Secret changes, or the sink goes;
// then it is closed once the deliveries still using it have returned.
type sinkTargets struct {
	reader  client.Reader
	secrets *secretcache.Store
	deps    senderDeps

	mu   sync.Mutex
	memo map[types.NamespacedName]memoTarget
}

type memoTarget struct {
	// uid and generation are the sink's as the Sender was built from it: its
	// spec. Its status writes, each a new resourceVersion, leave the Sender
	// and its connections as they are.
	uid        types.UID
	generation int64
	secret     uintptr // identity of the Secret data the Store returned
	target     engine.Sink
	lease      *senderLease // nil when the sink is not ready
	ready      bool
}

// senderLease counts the holders of a Sender: the memo while it is current, and
// each delivery using it. The last to let go closes it. refs is guarded by
// sinkTargets.mu.
type senderLease struct {
	sender delivery.Sender
	refs   int
}

// acquireLocked hands a delivery a reference.
func (t *sinkTargets) acquireLocked(l *senderLease) func() {
	l.refs++
	var once sync.Once
	return func() { once.Do(func() { t.release(l) }) }
}

func (t *sinkTargets) release(l *senderLease) {
	t.mu.Lock()
	l.refs--
	last := l.refs == 0
	t.mu.Unlock()
	if last {
		// Not on the caller's goroutine: the engine forgets a sink with its
		// lock held, and a Close waits for a batch under way to end.
		go l.sender.Close()
	}
}

// dropLocked removes a sink's memo; its Sender closes once unused. It returns
// the lease to release after unlocking.
func (t *sinkTargets) dropLocked(name types.NamespacedName) *senderLease {
	m, ok := t.memo[name]
	if !ok {
		return nil
	}
	delete(t.memo, name)
	return m.lease
}

func (t *sinkTargets) releaseIf(l *senderLease) {
	if l != nil {
		t.release(l)
	}
}

// forget drops the target of a sink that is gone: nothing would ask for it again.
func (t *sinkTargets) forget(name types.NamespacedName) {
	t.mu.Lock()
	l := t.dropLocked(name)
	t.mu.Unlock()
	t.releaseIf(l)
}

// closeAll drops every memo, when the engine stops.
func (t *sinkTargets) closeAll() {
	t.mu.Lock()
	var leases []*senderLease
	for name := range t.memo {
		if l := t.dropLocked(name); l != nil {
			leases = append(leases, l)
		}
	}
	t.mu.Unlock()
	for _, l := range leases {
		t.release(l)
	}
}

func (t *sinkTargets) resolve(ctx context.Context, name types.NamespacedName) (engine.Sink, bool, error) {
	sink := &crmv1alpha1.CustomerSink{}
	if err := t.reader.Get(ctx, name, sink); err != nil {
		if apierrors.IsNotFound(err) {
			t.forget(name)
			return engine.Sink{}, false, nil
		}
		return engine.Sink{}, false, err
	}
	if !sink.DeletionTimestamp.IsZero() {
		t.forget(name)
		return engine.Sink{}, false, nil
	}
	var data map[string][]byte
	if sink.Spec.SecretRef != nil {
		var err error
		data, err = t.secrets.Get(ctx, types.NamespacedName{Namespace: sink.Namespace, Name: sink.Spec.SecretRef.Name})
		if err != nil && !apierrors.IsNotFound(err) {
			return engine.Sink{}, false, err
		}
	}
	id := uintptr(0)
	if data != nil {
		id = uintptr(reflect.ValueOf(data).UnsafePointer())
	}
	if s, ready, ok := t.current(name, sink.UID, sink.Generation, id); ok {
		return s, ready, nil
	}
	// 410 Gone is the engine's own to judge; here only the sink and its Secret.
	state, err := resolveSink(ctx, t.secrets, nil, sink)
	if err != nil {
		return engine.Sink{}, false, err
	}
	m := memoTarget{uid: sink.UID, generation: sink.Generation, secret: id, ready: state.ready,
		target: engine.Sink{UID: sink.UID, Generation: sink.Generation}}
	if state.ready {
		sender, err := newSender(state.config, t.deps, name.Namespace)
		if err != nil {
			return engine.Sink{}, false, err
		}
		m.lease = &senderLease{sender: sender, refs: 1}
		m.target.Sender = sender
	}
	t.mu.Lock()
	if cur, ok := t.memo[name]; ok && cur.uid == m.uid && cur.generation == m.generation && cur.secret == m.secret {
		// Another worker built the same one first: use that.
		t.mu.Unlock()
		if m.lease != nil {
			go m.lease.sender.Close()
		}
		return t.resolve(ctx, name)
	}
	old := t.dropLocked(name)
	if t.memo == nil {
		t.memo = map[types.NamespacedName]memoTarget{}
	}
	t.memo[name] = m
	s := m.target
	if m.lease != nil {
		s.Release = t.acquireLocked(m.lease)
	}
	t.mu.Unlock()
	t.releaseIf(old)
	return s, m.ready, nil
}

// current is the memo of a sink still at uid and generation with the same
// Secret data, leased to the caller.
func (t *sinkTargets) current(name types.NamespacedName, uid types.UID, generation int64, secret uintptr) (engine.Sink, bool, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m, ok := t.memo[name]
	if !ok || m.uid != uid || m.generation != generation || m.secret != secret {
		return engine.Sink{}, false, false
	}
	s := m.target
	if m.lease != nil {
		s.Release = t.acquireLocked(m.lease)
	}
	return s, m.ready, true
}
