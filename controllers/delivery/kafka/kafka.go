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

// Package kafka delivers Customer changes to a Kafka topic, meant to be
// compacted, so that the topic holds exactly the live Customers.
//
// Each Customer is one key, its uid: a name can be reused after a delete, and
// the new Customer must not inherit, or be compacted together with, the old
// one's records; the uid never changes and is never reused. With the default
// key hashing all records of a key go to one partition, and the idempotent
// producer (acks from all in-sync replicas) keeps them in the order produced
// and drops its own retries within a session.
//
// An upsert's value is the CloudEvent the HTTP sink sends in its structured
// form, with the event's attributes repeated as ce_* headers. A delete produces
// the customer.deleted CloudEvent and then a tombstone (a null value) for the
// key, in that order, on the same partition: consumers reading the stream see
// the deletion with its data, and compaction eventually drops the key.
package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/delivery"
)

// SASL mechanisms a sink may name.
const (
	SASLPlain       = "PLAIN"
	SASLSCRAMSHA256 = "SCRAM-SHA-256"
	SASLSCRAMSHA512 = "SCRAM-SHA-512"
)

// Limits of one sink's producer, so that a sink whose brokers are slow or gone
// holds a bounded amount of the operator's memory.
const (
	// MaxBufferedRecords bounds the records one sink's producer holds before
	// the brokers acknowledge them; Deliver waits for room.
	MaxBufferedRecords = 1024
	// MaxBufferedBytes bounds the same in bytes.
	MaxBufferedBytes = 16 << 20
	// dialTimeout bounds one connection attempt to a broker.
	dialTimeout = 10 * time.Second
)

// Header names of the CloudEvents Kafka binding.
const (
	HeaderContentType = "content-type"
	headerPrefix      = "ce_"
)

// Config is everything a Sender needs, resolved from the CustomerSink and its
// Secret.
type Config struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string
	// Topic receives the records.
	Topic string
	// SASL is "" (none), SASLPlain, SASLSCRAMSHA256 or SASLSCRAMSHA512, with
	// Username and Password.
	SASL     string
	Username string
	Password string
	// TLS dials the brokers with TLS, trusting CA (PEM) in addition to the
	// system roots.
	TLS bool
	CA  []byte
	// Fields, when not nil, are the Customer spec fields sent (with
	// delivery.IdentityFields); nil sends the whole spec.
	Fields []crmv1alpha1.CustomerField
	// Timeout bounds one delivery; 0 means delivery.DefaultTimeout.
	Timeout time.Duration
}

// Sender produces a sink's events to its topic. It holds one franz-go client:
// at most one connection per broker of the cluster.
type Sender struct {
	cfg     Config
	client  *kgo.Client
	timeout time.Duration
	// lastDialErr is the latest failed connection attempt, cleared by a
	// successful one: franz-go retries dials on its own, so a delivery that
	// times out says why from here (a refused address, a refused connection).
	lastDialErr atomic.Pointer[error]
}

var _ delivery.Sender = &Sender{}

// Option adjusts a Sender.
type Option func(*settings)

type settings struct {
	kopts     []kgo.Opt
	limits    *delivery.ConnectionLimits
	namespace string
}

// WithClientOptions appends franz-go options (after the Sender's own); for
// tests and benchmarks.
func WithClientOptions(opts ...kgo.Opt) Option {
	return func(o *settings) { o.kopts = append(o.kopts, opts...) }
}

// WithConnectionLimits counts every connection against the limits of the
// sink's namespace.
func WithConnectionLimits(l *delivery.ConnectionLimits, namespace string) Option {
	return func(o *settings) { o.limits, o.namespace = l, namespace }
}

// New builds a Sender. It connects lazily: a cluster that is down makes
// deliveries fail, not New. Every connection is dialled through policy.
func New(cfg Config, policy delivery.AddressPolicy, opts ...Option) (*Sender, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("kafka: no brokers")
	}
	if cfg.Topic == "" {
		return nil, errors.New("kafka: no topic")
	}
	s := &Sender{cfg: cfg, timeout: cfg.Timeout}
	if s.timeout <= 0 {
		s.timeout = delivery.DefaultTimeout
	}
	s.timeout = min(s.timeout, delivery.MaxTimeout)

	var tlsCfg *tls.Config
	if cfg.TLS {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if len(cfg.CA) > 0 && !pool.AppendCertsFromPEM(cfg.CA) {
			return nil, errors.New("kafka: ca.crt holds no usable certificate")
		}
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	}
	var set settings
	for _, o := range opts {
		o(&set)
	}
	dial := set.limits.Bound(set.namespace, policy.DialContext(&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}))

	kopts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.ClientID("customer-operator"),
		kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
			conn, err := s.dial(ctx, dial, tlsCfg, network, host)
			if err != nil {
				s.lastDialErr.Store(&err)
				return nil, err
			}
			s.lastDialErr.Store(nil)
			return conn, nil
		}),
		// Idempotence is franz-go's default; with it, at most five requests
		// per partition are in flight and the broker keeps them in order.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.MaxBufferedRecords(MaxBufferedRecords),
		kgo.MaxBufferedBytes(MaxBufferedBytes),
		// A topic that does not exist is the sink's configuration, not a
		// passing state: fail the delivery after a few metadata refreshes.
		kgo.UnknownTopicRetries(3),
	}
	if cfg.SASL != "" {
		m, err := mechanism(cfg)
		if err != nil {
			return nil, err
		}
		kopts = append(kopts, kgo.SASL(m))
	}
	kopts = append(kopts, set.kopts...)
	client, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	s.client = client
	return s, nil
}

func (s *Sender) dial(ctx context.Context, dial func(context.Context, string, string) (net.Conn, error),
	tlsCfg *tls.Config, network, host string) (net.Conn, error) {
	conn, err := dial(ctx, network, host)
	if err != nil || tlsCfg == nil {
		return conn, err
	}
	c := tlsCfg.Clone()
	if c.ServerName, _, err = net.SplitHostPort(host); err != nil {
		_ = conn.Close()
		return nil, err
	}
	tc := tls.Client(conn, c)
	hctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("TLS handshake with %s: %w", host, err)
	}
	return tc, nil
}

func mechanism(cfg Config) (sasl.Mechanism, error) {
	switch cfg.SASL {
	case SASLPlain:
		return plain.Auth{User: cfg.Username, Pass: cfg.Password}.AsMechanism(), nil
	case SASLSCRAMSHA256:
		return scram.Auth{User: cfg.Username, Pass: cfg.Password}.AsSha256Mechanism(), nil
	case SASLSCRAMSHA512:
		return scram.Auth{User: cfg.Username, Pass: cfg.Password}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("kafka: unknown SASL mechanism %q", cfg.SASL)
}

// records returns what Deliver produces for ev: the CloudEvent, then for a
// delete the tombstone.
func records(cfg Config, ev delivery.Event) ([]*kgo.Record, error) {
	body, contentType, err := delivery.Encode(crmv1alpha1.FormatCloudEvents, cfg.Fields, ev)
	if err != nil {
		return nil, err
	}
	a := delivery.CloudEventsAttributesOf(ev)
	key := []byte(ev.Customer.UID)
	rec := &kgo.Record{
		Key:       key,
		Value:     body,
		Timestamp: ev.Time,
		Headers: []kgo.RecordHeader{
			{Key: headerPrefix + "specversion", Value: []byte(a.SpecVersion)},
			{Key: headerPrefix + "id", Value: []byte(a.ID)},
			{Key: headerPrefix + "source", Value: []byte(a.Source)},
			{Key: headerPrefix + "type", Value: []byte(a.Type)},
			{Key: headerPrefix + "subject", Value: []byte(a.Subject)},
			{Key: headerPrefix + "time", Value: []byte(a.Time)},
			{Key: HeaderContentType, Value: []byte(contentType)},
		},
	}
	if ev.Type != delivery.TypeDeleted {
		return []*kgo.Record{rec}, nil
	}
	// The tombstone carries no CloudEvents headers: it is not an event of its
	// own, only the compaction marker of the one before it.
	return []*kgo.Record{rec, {Key: key, Value: nil, Timestamp: ev.Time}}, nil
}

// Deliver produces ev and returns once every replica in sync has it, or the
// sink's timeout has passed.
func (s *Sender) Deliver(ctx context.Context, ev delivery.Event) delivery.Result {
	start := time.Now()
	res := s.deliver(ctx, ev)
	res.Duration = time.Since(start)
	return res
}

func (s *Sender) deliver(ctx context.Context, ev delivery.Event) delivery.Result {
	recs, err := records(s.cfg, ev)
	if err != nil {
		return delivery.Result{Refused: true, Err: fmt.Errorf("encoding the event: %w", err)}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	// ProduceSync rather than Produce with a promise: it sends a lingering
	// partition's batch at once, and records of concurrent deliveries still
	// share a request. It waits for a request already sent whatever the
	// context (an idempotent producer cannot take it back), so the wait is
	// bounded here; the goroutine ends with the broker's answer or the
	// client's request timeout, and there are at most MaxBufferedRecords.
	done := make(chan error, 1)
	go func() { done <- s.client.ProduceSync(ctx, recs...).FirstErr() }()
	var first error
	select {
	case first = <-done:
	case <-ctx.Done():
		// The records may still be written; the engine retries the event,
		// and a consumer sees it again, with the same ce_id.
		return delivery.Result{Err: s.unreachable(ctx.Err())}
	}
	if first == nil {
		return delivery.Result{}
	}
	return s.classify(first)
}

// classify tells a record the brokers refuse (too large, invalid: the
// Customer's content, so the sink is not paused) from a sink that is unwell.
func (s *Sender) classify(err error) delivery.Result {
	switch {
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge),
		errors.Is(err, kerr.InvalidRecord), errors.Is(err, kerr.CorruptMessage),
		errors.Is(err, kerr.InvalidTimestamp):
		return delivery.Result{Refused: true, Err: fmt.Errorf("kafka refused the record for topic %q: %w", s.cfg.Topic, err)}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, kgo.ErrRecordTimeout), errors.Is(err, kgo.ErrRecordRetries):
		return delivery.Result{Err: s.unreachable(err)}
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return delivery.Result{Err: fmt.Errorf("kafka topic %q: %s: %s", s.cfg.Topic, ke.Message, ke.Description)}
	}
	return delivery.Result{Err: fmt.Errorf("kafka topic %q: %w", s.cfg.Topic, err)}
}

// unreachable explains a delivery that got no answer, with the latest failed
// connection when there is one: the address policy's refusal keeps its type,
// so the engine and status can name the denied range.
func (s *Sender) unreachable(cause error) error {
	if p := s.lastDialErr.Load(); p != nil {
		return fmt.Errorf("no acknowledgement from the Kafka brokers (%s) within %s: %w",
			strings.Join(s.cfg.Brokers, ","), s.timeout, *p)
	}
	return fmt.Errorf("no acknowledgement from the Kafka brokers (%s) within %s: %w",
		strings.Join(s.cfg.Brokers, ","), s.timeout, cause)
}

// Close closes the sink's connections.
func (s *Sender) Close() { s.client.Close() }
