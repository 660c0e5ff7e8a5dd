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

package delivery

import (
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// DialFunc dials one connection, as net.Dialer.DialContext does.
type DialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// Default bounds of ConnectionLimits, as the manager's flags default them.
const (
	DefaultMaxSinkConnections             = 256
	DefaultMaxSinkConnectionsPerNamespace = 64
)

// ConnectionLimits bound the database and broker connections the senders of
// every sink hold open together, and those of the sinks of one namespace, so
// that a tenant creating many sinks cannot make the process hold connections
// (and the goroutines reading them) without end, nor take them all. A slot is
// taken when a connection is dialled and given back when it is closed. A nil
// *ConnectionLimits bounds nothing.
type ConnectionLimits struct {
	max, perNamespace int

	mu    sync.Mutex
	total int
	byNS  map[string]int
}

// NewConnectionLimits bounds the connections to max in all and perNamespace
// for the sinks of one namespace; a bound below 1 is no bound.
func NewConnectionLimits(max, perNamespace int) *ConnectionLimits {
	return &ConnectionLimits{max: max, perNamespace: perNamespace, byNS: map[string]int{}}
}

// ConnectionLimitError is a connection not dialled because the sinks already
// hold as many as a limit allows. Nothing was sent.
type ConnectionLimitError struct {
	// Namespace is the sink's.
	Namespace string
	// Limit is the bound reached; PerNamespace says which one.
	Limit        int
	PerNamespace bool
}

func (e *ConnectionLimitError) Error() string {
	if e.PerNamespace {
		return fmt.Sprintf("the sinks of namespace %s hold %d open database and broker connections, the most one namespace may (--sink-max-connections-per-namespace); "+
			"a connection is made once another of them closes", e.Namespace, e.Limit)
	}
	return fmt.Sprintf("the operator holds %d open database and broker connections to sinks, the most it may (--sink-max-connections); "+
		"a connection is made once another closes", e.Limit)
}

// Bound returns dial limited to the slots of namespace: a dial takes one
// first, or fails with a *ConnectionLimitError; the connection gives it back
// when closed, once however often it is closed, and a failed dial at once.
func (l *ConnectionLimits) Bound(namespace string, dial DialFunc) DialFunc {
	if l == nil {
		return dial
	}
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		if err := l.acquire(namespace); err != nil {
			return nil, err
		}
		conn, err := dial(ctx, network, address)
		if err != nil {
			l.release(namespace)
			return nil, err
		}
		return &limitedConn{Conn: conn, release: sync.OnceFunc(func() { l.release(namespace) })}, nil
	}
}

// Open says how many connections are open in all and for namespace.
func (l *ConnectionLimits) Open(namespace string) (total, inNamespace int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, l.byNS[namespace]
}

func (l *ConnectionLimits) acquire(ns string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.perNamespace > 0 && l.byNS[ns] >= l.perNamespace:
		sinkConnectionsRefused.WithLabelValues("namespace").Inc()
		return &ConnectionLimitError{Namespace: ns, Limit: l.perNamespace, PerNamespace: true}
	case l.max > 0 && l.total >= l.max:
		sinkConnectionsRefused.WithLabelValues("total").Inc()
		return &ConnectionLimitError{Namespace: ns, Limit: l.max}
	}
	l.total++
	l.byNS[ns]++
	sinkConnections.Set(float64(l.total))
	return nil
}

func (l *ConnectionLimits) release(ns string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.byNS[ns]--; l.byNS[ns] <= 0 {
		delete(l.byNS, ns) // the map holds only namespaces with connections
	}
	sinkConnections.Set(float64(l.total))
}

// limitedConn gives its slot back when closed.
type limitedConn struct {
	net.Conn
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

var (
	sinkConnections = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "customer_operator_sink_connections",
		Help: "Database and broker connections the sinks' senders hold open (bounded by --sink-max-connections).",
	})
	sinkConnectionsRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "customer_operator_sink_connections_refused_total",
		Help: "Connections to sinks not made because a limit was reached, by limit (total, namespace).",
	}, []string{"limit"})
)

func init() {
	metrics.Registry.MustRegister(sinkConnections, sinkConnectionsRefused)
}
