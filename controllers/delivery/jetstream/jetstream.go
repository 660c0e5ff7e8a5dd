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

// Package jetstream delivers Customer changes to a NATS JetStream stream.
//
// Each event is one message on {prefix}.{namespace}.{name}, its value the
// CloudEvent the HTTP sink sends in its structured form, with Nats-Msg-Id set
// to the event's ID ({uid}.{generation}): JetStream drops a message whose ID
// it has seen within the stream's duplicate window, so the engine's retries
// are stored once. A delivery counts only once the stream has acknowledged the
// message. A delete publishes the customer.deleted CloudEvent.
//
// With a KV bucket, the bucket also holds each live Customer's latest
// CloudEvent under {namespace}.{name}: an upsert writes it unless the bucket
// already holds that Customer (same uid) at the same or a newer generation, and
// a delete removes the key only if it still belongs to the deleted uid, so a
// retry or a late event never rolls the bucket back.
package jetstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/delivery"
)

// DefaultSubjectPrefix is the subject prefix when the sink names none.
const DefaultSubjectPrefix = "customers"

// dialTimeout bounds one connection attempt to the server.
const dialTimeout = 10 * time.Second

// Config is everything a Sender needs, resolved from the CustomerSink and its
// Secret.
type Config struct {
	// URL is the server, nats:// or tls://.
	URL string
	// Stream must capture the subjects; a message stored by another stream
	// fails the delivery.
	Stream string
	// SubjectPrefix defaults to DefaultSubjectPrefix.
	SubjectPrefix string
	// KVBucket, when set, also keeps the live Customers in this KV bucket.
	KVBucket string
	// Credentials: at most one of Creds (a .creds file), NKeySeed,
	// User+Password, Token.
	Creds    []byte
	NKeySeed []byte
	User     string
	Password string
	Token    string
	// CA is a PEM bundle trusted in addition to the system roots; it turns
	// TLS on.
	CA []byte
	// Fields, when not nil, are the Customer spec fields sent (with
	// delivery.IdentityFields); nil sends the whole spec.
	Fields []crmv1alpha1.CustomerField
	// Timeout bounds one delivery; 0 means delivery.DefaultTimeout.
	Timeout time.Duration
}

// Sender publishes a sink's events. It holds one connection, made at the
// first delivery and kept (reconnecting on its own) until Close.
type Sender struct {
	cfg     Config
	opts    []nats.Option
	timeout time.Duration

	mu     sync.Mutex
	nc     *nats.Conn
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	closed bool

	// lastDialErr is the latest failed connection attempt, cleared by a
	// successful one, so that a failed delivery says why (a refused address,
	// a refused connection) rather than only that it failed.
	lastDialErr atomic.Pointer[error]
}

var _ delivery.Sender = &Sender{}

// policyDialer dials every server address, the configured one and any the
// cluster announces, through the address policy.
type policyDialer struct {
	dial    func(ctx context.Context, network, address string) (net.Conn, error)
	timeout time.Duration
	s       *Sender
}

func (d policyDialer) Dial(network, address string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	conn, err := d.dial(ctx, network, address)
	if err != nil {
		d.s.lastDialErr.Store(&err)
		return nil, err
	}
	d.s.lastDialErr.Store(nil)
	return conn, nil
}

// Option adjusts a Sender.
type Option func(*settings)

type settings struct {
	limits    *delivery.ConnectionLimits
	namespace string
}

// WithConnectionLimits counts every connection against the limits of the
// sink's namespace.
func WithConnectionLimits(l *delivery.ConnectionLimits, namespace string) Option {
	return func(o *settings) { o.limits, o.namespace = l, namespace }
}

// New builds a Sender; it connects at the first delivery, so a server that
// is down makes deliveries fail, not New. Every connection is dialled through
// policy.
func New(cfg Config, policy delivery.AddressPolicy, opts ...Option) (*Sender, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" {
		return nil, errors.New("jetstream: the URL must be nats://host:port or tls://host:port")
	}
	if cfg.Stream == "" {
		return nil, errors.New("jetstream: no stream")
	}
	if cfg.SubjectPrefix == "" {
		cfg.SubjectPrefix = DefaultSubjectPrefix
	}
	s := &Sender{cfg: cfg, timeout: cfg.Timeout}
	if s.timeout <= 0 {
		s.timeout = delivery.DefaultTimeout
	}
	s.timeout = min(s.timeout, delivery.MaxTimeout)
	// The first delivery connects while the sink's other workers wait for
	// the connection: the sink's timeout bounds that wait too.
	connectTimeout := min(dialTimeout, s.timeout)
	var set settings
	for _, o := range opts {
		o(&set)
	}
	s.opts = []nats.Option{
		nats.Name("customer-operator"),
		nats.SetCustomDialer(policyDialer{
			dial:    set.limits.Bound(set.namespace, policy.DialContext(&net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second})),
			timeout: connectTimeout, s: s,
		}),
		nats.Timeout(connectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		// While disconnected, publishing fails at once instead of filling a
		// buffer: the engine keeps the events and backs off.
		nats.ReconnectBufSize(-1),
		nats.NoEcho(),
	}
	if u.Scheme == "tls" || len(cfg.CA) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if len(cfg.CA) > 0 && !pool.AppendCertsFromPEM(cfg.CA) {
			return nil, errors.New("jetstream: ca.crt holds no usable certificate")
		}
		s.opts = append(s.opts, nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}))
	}
	switch {
	case len(cfg.Creds) > 0:
		s.opts = append(s.opts, nats.UserCredentialBytes(cfg.Creds))
	case len(cfg.NKeySeed) > 0:
		kp, err := nkeys.FromSeed(cfg.NKeySeed)
		if err != nil {
			return nil, errors.New("jetstream: the nkey seed does not parse")
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return nil, errors.New("jetstream: the nkey seed does not parse")
		}
		s.opts = append(s.opts, nats.Nkey(pub, kp.Sign))
	case cfg.User != "":
		s.opts = append(s.opts, nats.UserInfo(cfg.User, cfg.Password))
	case cfg.Token != "":
		s.opts = append(s.opts, nats.Token(cfg.Token))
	}
	return s, nil
}

// Subject is where ev is published.
func (s *Sender) Subject(ev delivery.Event) string {
	return s.cfg.SubjectPrefix + "." + ev.Customer.Namespace + "." + ev.Customer.Name
}

// Message returns what Deliver publishes for ev.
func (s *Sender) Message(ev delivery.Event) (*nats.Msg, error) {
	body, contentType, err := delivery.Encode(crmv1alpha1.FormatCloudEvents, s.cfg.Fields, ev)
	if err != nil {
		return nil, err
	}
	msg := nats.NewMsg(s.Subject(ev))
	msg.Data = body
	msg.Header.Set(jetstream.MsgIDHeader, ev.ID)
	msg.Header.Set("Content-Type", contentType)
	return msg, nil
}

// connection returns the sink's connection, making it on first use.
func (s *Sender) connection() (jetstream.JetStream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("jetstream: sender closed")
	}
	if s.js != nil {
		return s.js, nil
	}
	nc, err := nats.Connect(s.cfg.URL, s.opts...)
	if err != nil {
		return nil, s.unreachable(fmt.Errorf("connecting: %w", err))
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	s.nc, s.js = nc, js
	return js, nil
}

// bucket returns the KV bucket, looked up on first use.
func (s *Sender) bucket(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	s.mu.Lock()
	kv := s.kv
	s.mu.Unlock()
	if kv != nil {
		return kv, nil
	}
	kv, err := js.KeyValue(ctx, s.cfg.KVBucket)
	if err != nil {
		return nil, fmt.Errorf("KV bucket %q: %w", s.cfg.KVBucket, err)
	}
	s.mu.Lock()
	s.kv = kv
	s.mu.Unlock()
	return kv, nil
}

// Deliver publishes ev and returns once the stream has stored it (or found it
// a duplicate), and the KV bucket, if any, reflects it.
func (s *Sender) Deliver(ctx context.Context, ev delivery.Event) delivery.Result {
	start := time.Now()
	res := s.deliver(ctx, ev)
	res.Duration = time.Since(start)
	return res
}

func (s *Sender) deliver(ctx context.Context, ev delivery.Event) delivery.Result {
	msg, err := s.Message(ev)
	if err != nil {
		return delivery.Result{Refused: true, Err: fmt.Errorf("encoding the event: %w", err)}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	js, err := s.connection()
	if err != nil {
		return delivery.Result{Err: err}
	}
	if _, err := js.PublishMsg(ctx, msg, jetstream.WithExpectStream(s.cfg.Stream)); err != nil {
		return s.classify(err)
	}
	if s.cfg.KVBucket == "" {
		return delivery.Result{}
	}
	if err := s.keep(ctx, js, ev, msg.Data); err != nil {
		return s.classify(err)
	}
	return delivery.Result{}
}

// stored is what the KV guard reads back of a value.
type stored struct {
	Data struct {
		Metadata struct {
			UID        string `json:"uid"`
			Generation int64  `json:"generation"`
		} `json:"metadata"`
	} `json:"data"`
}

// keep applies ev to the KV bucket with compare-and-set, so that concurrent
// writers and retries never move a key backwards.
func (s *Sender) keep(ctx context.Context, js jetstream.JetStream, ev delivery.Event, value []byte) error {
	kv, err := s.bucket(ctx, js)
	if err != nil {
		return err
	}
	key := ev.Customer.Namespace + "." + ev.Customer.Name
	entry, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		if ev.Type == delivery.TypeDeleted {
			return nil
		}
		if _, err := kv.Create(ctx, key, value); err != nil {
			return fmt.Errorf("KV bucket %q: creating %s: %w", s.cfg.KVBucket, key, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("KV bucket %q: reading %s: %w", s.cfg.KVBucket, key, err)
	}
	var cur stored
	_ = json.Unmarshal(entry.Value(), &cur) // a value not ours is overwritten
	sameCustomer := cur.Data.Metadata.UID == string(ev.Customer.UID)
	if ev.Type == delivery.TypeDeleted {
		if !sameCustomer {
			return nil // the name already belongs to a newer Customer
		}
		if err := kv.Delete(ctx, key, jetstream.LastRevision(entry.Revision())); err != nil {
			return fmt.Errorf("KV bucket %q: deleting %s: %w", s.cfg.KVBucket, key, err)
		}
		return nil
	}
	if sameCustomer && cur.Data.Metadata.Generation >= ev.Customer.Generation {
		return nil
	}
	if _, err := kv.Update(ctx, key, value, entry.Revision()); err != nil {
		return fmt.Errorf("KV bucket %q: updating %s: %w", s.cfg.KVBucket, key, err)
	}
	return nil
}

// classify tells a message the server refuses (too large: this Customer's
// content, so the sink is not paused) from a sink that is unwell.
func (s *Sender) classify(err error) delivery.Result {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, nats.ErrMaxPayload),
		errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum:
		return delivery.Result{Refused: true, Err: fmt.Errorf("stream %q refused the message: %w", s.cfg.Stream, err)}
	case errors.Is(err, jetstream.ErrNoStreamResponse):
		return delivery.Result{Err: fmt.Errorf("no JetStream stream answered for the subject (does stream %q exist and capture %s.>?): %w",
			s.cfg.Stream, s.cfg.SubjectPrefix, err)}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrReconnectBufExceeded), errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, nats.ErrNoServers):
		return delivery.Result{Err: s.unreachable(err)}
	}
	return delivery.Result{Err: fmt.Errorf("stream %q: %w", s.cfg.Stream, err)}
}

// unreachable explains a delivery that got no answer, with the latest failed
// connection when there is one: the address policy's refusal keeps its type.
func (s *Sender) unreachable(cause error) error {
	if errors.Is(cause, nats.ErrReconnectBufExceeded) {
		cause = errors.New("disconnected from the server, reconnecting")
	}
	if p := s.lastDialErr.Load(); p != nil {
		return fmt.Errorf("no acknowledgement from NATS at %s within %s: %w", s.host(), s.timeout, *p)
	}
	return fmt.Errorf("no acknowledgement from NATS at %s within %s: %w", s.host(), s.timeout, cause)
}

// host is the server without any credentials the URL may hold.
func (s *Sender) host() string {
	if u, err := url.Parse(s.cfg.URL); err == nil {
		return u.Host
	}
	return "the server"
}

// Close closes the sink's connection.
func (s *Sender) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.nc != nil {
		s.nc.Close()
	}
}
