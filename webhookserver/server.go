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

// Package webhookserver receives the providers' customer webhooks at
// POST /hooks/{namespace}/{source}, authenticates them with the source's provider
// package, and persists their events as Customers before it acknowledges them.
package webhookserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/internal/secretcache"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
	"github.com/customer-operator/customer-operator/webhookserver/providers/registry"
)

// Options are the server's limits, all in one place.
type Options struct {
	// BindAddress is where the server listens, e.g. ":9292".
	BindAddress string
	// MaxBodyBytes bounds a request body; a larger one is answered 413 unread.
	MaxBodyBytes int64
	// MaxBufferedBytes bounds the body bytes buffered at once across the server;
	// a request whose body does not fit is answered 503 with Retry-After.
	// Decoding a body is charged to the same budget (see decodedEventBytes).
	MaxBufferedBytes int64
	// MaxEventsPerRequest bounds the events (customer events or not) one request
	// may carry; the providers stop decoding at the first one past it, and the
	// answer is 413 too_many_events.
	MaxEventsPerRequest int
	// AuthFailuresPerMinute is how many failed authentications (and bodies that
	// stalled or broke off) one client address may make at one source at once,
	// and then per minute; past it its requests to that source are answered 429.
	// Negative: no limit.
	AuthFailuresPerMinute int
	// AddressFailuresPerMinute is the same across every source and unknown path:
	// looser, because providers send all tenants' webhooks from a few shared
	// addresses, and one tenant's failing source must not lock them out of the
	// others. Negative: no limit.
	AddressFailuresPerMinute int
	// MaxBodyReadsPerAddress bounds the request bodies one client address may
	// have being read at once before they are authenticated; past it the answer
	// is 429. Negative: no limit.
	MaxBodyReadsPerAddress int
	// TrustedProxies are the reverse proxies (an Ingress controller) whose
	// X-Forwarded-For header names the client address. Empty: the peer is.
	TrustedProxies []netip.Prefix
	// ReadHeaderTimeout and ReadTimeout bound slow clients.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	// WriteTimeout bounds the whole handling, API writes included.
	WriteTimeout time.Duration
	// APITimeout bounds the Kubernetes API calls of one request; past it the answer
	// is 503 and the provider retries.
	APITimeout time.Duration
	// RetryAfter is what a 503 asks the provider to wait.
	RetryAfter time.Duration
	// Namespaces, when set, are the only namespaces served (--watch-namespaces):
	// the caches hold nothing else, so a path into another namespace is unknown.
	Namespaces []string
	// EventInterval is the least time between two Warning Events about the same
	// kind of rejection at one source.
	EventInterval time.Duration
	// SweepInterval is how often the state of deleted sources and of client
	// addresses is pruned.
	SweepInterval time.Duration
	// CreateCustomer creates Customers (NewMetadataCreate); the client's Create
	// when nil.
	CreateCustomer CreateFunc
}

// DefaultOptions are the limits used when a field is zero.
var DefaultOptions = Options{
	BindAddress:  ":9292",
	MaxBodyBytes: 1 << 20,
	// 32 MiB of bodies in flight fits the Deployment's 256Mi limit beside the
	// caches and the Go runtime's headroom: thousands of typical (few KiB)
	// deliveries, or 32 of the largest (16 carrying a thousand events each,
	// whose decoding is charged too), at once.
	MaxBufferedBytes: 32 << 20,
	// A SmarterPay customer event is about 1 KB of JSON, so a 1 MiB body holds
	// about 1000 real ones: the cap refuses only bodies padded with tiny
	// elements. It bounds what one request costs beyond its body: about 1 KiB
	// of decoded event each, and one Customer write each.
	MaxEventsPerRequest:   1000,
	AuthFailuresPerMinute: 30,
	// Ten sources failing at once behind one provider address before the
	// address is blocked everywhere.
	AddressFailuresPerMinute: 300,
	// A provider's deliveries are read in milliseconds; more bodies than this
	// being read at once from one address are clients holding connections.
	MaxBodyReadsPerAddress: 8,
	ReadHeaderTimeout:      5 * time.Second,
	ReadTimeout:            15 * time.Second,
	WriteTimeout:           30 * time.Second,
	APITimeout:             10 * time.Second,
	RetryAfter:             5 * time.Second,
	EventInterval:          time.Minute,
	SweepInterval:          time.Minute,
}

// decodedEventBytes is what one decoded customer event holds beyond its
// strings (measured: 1,000 SmarterPay events decoded from a 380 KB body keep
// 1.0 MB). A request's decoding is charged to the body budget: its body's
// reservation is held until its events are written, since the strings they
// keep are copies of at most the body's bytes, and this much per customer event
// kept is reserved after Parse. The providers decode one element at a time, so
// what Parse holds beyond that is one element; MaxEventsPerRequest bounds the
// count.
const decodedEventBytes = 1 << 10

// DefaultTimestampTolerance applies when a source does not set one.
const DefaultTimestampTolerance = 5 * time.Minute

// Rejection reasons of the server itself; the providers' are in package providers.
const (
	reasonUnknownSource   = "unknown_source"
	reasonSourceNotReady  = "source_not_ready"
	reasonSourceSuspended = "source_suspended"
	reasonAPIUnavailable  = "api_unavailable"
	reasonBodyTooLarge    = "body_too_large"
	reasonReadError       = "read_error"
	reasonServerBusy      = "server_busy"
	reasonRateLimited     = "rate_limited"
	reasonAuthFailures    = "too_many_auth_failures"
	reasonTooManyReads    = "too_many_body_reads"
	reasonDeleting        = "customer_deleting"
)

// publicMessages are what answers given before authentication say: the status
// and a reason, never a Secret key name, a key length or an API server error.
// The details go to the log and to Events on the CustomerSource.
var publicMessages = map[string]string{
	providers.ReasonUnauthorized: "authentication failed",
	providers.ReasonTimestamp:    "signed timestamp outside the tolerance",
	providers.ReasonDecrypt:      "authentication failed",
	reasonSourceNotReady:         "the source is not ready",
	reasonAPIUnavailable:         "temporarily unavailable, retry later",
}

// Server is the webhook server. It is a manager.Runnable that runs on every
// replica: it keeps no state that needs a leader.
type Server struct {
	opts     Options
	client   client.Client
	secrets  *secretcache.Store
	recorder events.EventRecorder
	ingester *Ingester
	budget   *bodyBudget
	guard    *addressGuard
	reads    *readSlots
	now      func() time.Time

	// mu guards sources: the per-source limiters, last-event touches and
	// Event bursts, pruned by sweep when their source is gone.
	mu      sync.Mutex
	sources map[types.UID]*sourceState

	logSamplersMu sync.Mutex
	logSamplers   map[string]*logSampler

	listener net.Listener
}

// New returns a Server. c reads CustomerSources and Customers from the manager's
// cache and writes to the API server; apiReader reads from the API server;
// recorder (may be nil) raises Warning Events on CustomerSources.
func New(opts Options, c client.Client, apiReader client.Reader, secrets *secretcache.Store, recorder events.EventRecorder) *Server {
	fill := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if opts.BindAddress == "" {
		opts.BindAddress = DefaultOptions.BindAddress
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = DefaultOptions.MaxBodyBytes
	}
	if opts.MaxBufferedBytes == 0 {
		opts.MaxBufferedBytes = DefaultOptions.MaxBufferedBytes
	}
	// A body up to the limit must always fit when nothing else is buffered: a
	// chunked one reserves one byte more to see that it ends, and a growing
	// buffer is held twice while it is copied.
	opts.MaxBufferedBytes = max(opts.MaxBufferedBytes, 2*(opts.MaxBodyBytes+1))
	fillInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	if opts.MaxEventsPerRequest <= 0 {
		opts.MaxEventsPerRequest = DefaultOptions.MaxEventsPerRequest
	}
	fillInt(&opts.AuthFailuresPerMinute, DefaultOptions.AuthFailuresPerMinute)
	fillInt(&opts.AddressFailuresPerMinute, DefaultOptions.AddressFailuresPerMinute)
	fillInt(&opts.MaxBodyReadsPerAddress, DefaultOptions.MaxBodyReadsPerAddress)
	fill(&opts.ReadHeaderTimeout, DefaultOptions.ReadHeaderTimeout)
	fill(&opts.ReadTimeout, DefaultOptions.ReadTimeout)
	fill(&opts.WriteTimeout, DefaultOptions.WriteTimeout)
	fill(&opts.APITimeout, DefaultOptions.APITimeout)
	fill(&opts.RetryAfter, DefaultOptions.RetryAfter)
	fill(&opts.EventInterval, DefaultOptions.EventInterval)
	fill(&opts.SweepInterval, DefaultOptions.SweepInterval)
	return &Server{
		opts:        opts,
		client:      c,
		secrets:     secrets,
		recorder:    recorder,
		ingester:    &Ingester{Client: c, APIReader: apiReader, Create: opts.CreateCustomer},
		budget:      newBodyBudget(opts.MaxBufferedBytes),
		guard:       newAddressGuard(opts.AuthFailuresPerMinute, opts.AddressFailuresPerMinute),
		reads:       newReadSlots(opts.MaxBodyReadsPerAddress),
		now:         time.Now,
		sources:     map[types.UID]*sourceState{},
		logSamplers: map[string]*logSampler{},
	}
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	// The method in the pattern makes the mux answer 405 (with Allow) to any other.
	mux.HandleFunc("POST /hooks/{namespace}/{source}", s.serveHook)
	return mux
}

// NeedLeaderElection is false: every replica serves webhooks.
func (s *Server) NeedLeaderElection() bool { return false }

// Start serves until ctx is done, then drains in-flight requests.
func (s *Server) Start(ctx context.Context) error {
	logger := log.FromContext(ctx).WithName("webhook-server")
	ln := s.listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.opts.BindAddress); err != nil {
			return fmt.Errorf("webhook server: listening on %s: %w", s.opts.BindAddress, err)
		}
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		ReadTimeout:       s.opts.ReadTimeout,
		WriteTimeout:      s.opts.WriteTimeout,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	logger.Info("serving provider webhooks", "address", ln.Addr().String())
	go func() {
		t := time.NewTicker(s.opts.SweepInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := s.sweep(ctx); err != nil {
					logger.V(1).Info("could not prune the state of deleted sources", "error", err.Error())
				}
			}
		}
	}()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("webhook server: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.opts.WriteTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("webhook server: shutting down: %w", err)
	}
	return nil
}

// Listen binds the server's address now; Start then serves on it. Tests use it
// with port 0 to learn the address before Start.
func (s *Server) Listen() (net.Addr, error) {
	ln, err := net.Listen("tcp", s.opts.BindAddress)
	if err != nil {
		return nil, fmt.Errorf("webhook server: listening on %s: %w", s.opts.BindAddress, err)
	}
	s.listener = ln
	return ln.Addr(), nil
}

// Counts is the body of a 200 answer.
type Counts struct {
	Applied   int `json:"applied"`
	Duplicate int `json:"duplicate"`
	Stale     int `json:"stale"`
	Ignored   int `json:"ignored"`
	// Rejected counts the events that can never be applied (RejectedEvents says
	// which); the rest of the request was applied.
	Rejected       int             `json:"rejected"`
	RejectedEvents []RejectedEvent `json:"rejectedEvents,omitempty"`
}

// RejectedEvent is one event of a request that can never be applied.
type RejectedEvent struct {
	// ID is the provider's event id.
	ID     string `json:"id"`
	Reason string `json:"reason"`
	// Field is the Customer field refused, e.g. "spec.companyName".
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// errorBody is the body of every error answer.
type errorBody struct {
	Error          string          `json:"error"`
	Reason         string          `json:"reason"`
	Field          string          `json:"field,omitempty"`
	RejectedEvents []RejectedEvent `json:"rejectedEvents,omitempty"`
}

// rejection is an answer other than 2xx.
type rejection struct {
	status int
	reason string
	field  string
	// message is what the answer says; detail, if any, goes only to the log and
	// to the source's Events.
	message    string
	detail     string
	retryAfter time.Duration
	events     []RejectedEvent
}

// request is what serveHook learns of a request while handling it.
type request struct {
	key      types.NamespacedName
	addr     netip.Prefix
	provider string
	src      *crmv1alpha1.CustomerSource
	bodyRead bool
}

func (s *Server) serveHook(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	req := &request{
		key:      types.NamespacedName{Namespace: r.PathValue("namespace"), Name: r.PathValue("source")},
		addr:     clientAddress(r, s.opts.TrustedProxies),
		provider: "unknown",
	}
	logger := log.FromContext(r.Context()).WithName("webhook-server").WithValues("source", req.key.String())

	counts, rej := s.handle(r, req, logger)

	// Only existing sources label the metrics: a stranger cannot grow them by
	// inventing paths.
	source := ""
	if req.src != nil {
		source = req.key.String()
		// The source's series are dropped with its state, once it is gone.
		s.mu.Lock()
		s.state(req.src)
		s.mu.Unlock()
	}
	code := http.StatusOK
	switch {
	case rej != nil:
		code = rej.status
		if rej.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(rej.retryAfter.Seconds()))))
		}
		if !req.bodyRead {
			// Close rather than read what is left of the body for the next
			// request on the connection: that would cost what refusing it saved.
			w.Header().Set("Connection", "close")
		}
		writeJSON(w, code, errorBody{Error: rej.message, Reason: rej.reason, Field: rej.field, RejectedEvents: rej.events})
		rejectionsTotal.WithLabelValues(req.provider, source, rej.reason).Inc()
		s.sampled(rej.reason, func(suppressed int64) {
			logger.Info("webhook rejected", "provider", req.provider, "code", code, "reason", rej.reason,
				"field", rej.field, "message", rej.message, "detail", rej.detail, "remote", r.RemoteAddr,
				"client", req.addr.String(), "suppressedSinceLast", suppressed)
		})
		if req.src != nil && rej.events == nil {
			detail := rej.message
			if rej.detail != "" {
				detail = rej.detail
			}
			s.noteRejection(req.src, code, rej.reason, detail)
		}
	case counts.Applied+counts.Duplicate+counts.Stale+counts.Rejected == 0:
		code = http.StatusNoContent
		w.WriteHeader(code)
	default:
		writeJSON(w, code, counts)
	}
	requestsTotal.WithLabelValues(req.provider, source, strconv.Itoa(code)).Inc()
	requestDuration.WithLabelValues(req.provider, source).Observe(s.now().Sub(start).Seconds())
}

// handle takes a request through its steps, each of which may refuse it:
// admit the cheap refusals, route it to a ready source, authenticate its
// headers, read and parse its body, charge the source's rate limit, ingest its
// events, and answer.
func (s *Server) handle(r *http.Request, req *request, logger logr.Logger) (Counts, *rejection) {
	if rej := s.admit(r, req); rej != nil {
		return Counts{}, rej
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.APITimeout)
	defer cancel()

	rt, rej := s.route(ctx, req)
	if rej != nil {
		return Counts{}, rej
	}
	if rej := s.authenticate(r, req, rt); rej != nil {
		return Counts{}, rej
	}
	body, done, rej := s.readBody(r, req, rt.authenticated)
	if rej != nil {
		return Counts{}, rej
	}
	req.bodyRead = true
	// The body's reservation is held until the events are written, as the
	// decoded events' strings: see decodedEventBytes.
	defer done()
	receivedAt := s.now()
	res, rej := s.parse(r, req, rt, body, receivedAt)
	if rej != nil {
		return Counts{}, rej
	}
	if decoded := int64(len(res.Events)) * decodedEventBytes; decoded > 0 {
		if !s.budget.reserve(decoded) {
			return Counts{}, serverBusy(s.opts.RetryAfter)
		}
		defer s.budget.release(decoded)
	}
	if rej := s.allow(req.src, max(1, len(res.Events)+res.Ignored), rt.prepaid()); rej != nil {
		return Counts{}, rej
	}
	counts, rej := s.ingest(ctx, req, res, receivedAt, logger)
	if rej != nil {
		return counts, rej
	}
	if counts.Applied > 0 {
		s.touchSource(r.Context(), req.src, receivedAt)
	}
	return counts, s.answer(counts)
}

// admit makes the cheap refusals, before any API call: an address that keeps
// failing across sources, and a body announced too large.
func (s *Server) admit(r *http.Request, req *request) *rejection {
	if d, blocked := s.guard.addressBlocked(req.addr, s.now()); blocked {
		return tooManyFailures(d)
	}
	if r.ContentLength > s.opts.MaxBodyBytes {
		return bodyTooLarge(s.opts.MaxBodyBytes)
	}
	return nil
}

// route is what a request needs of the source its path names.
type route struct {
	provider providers.Provider
	secret   map[string][]byte
	// authenticated is set when the headers alone authenticated the request.
	authenticated bool
}

// prepaid is how many events the request paid the rate limit for before its
// body was read.
func (rt *route) prepaid() int {
	if rt.authenticated {
		return 1
	}
	return 0
}

// route finds the source the request's path names, and refuses the request
// unless the source can take it: served here, not blocked for the client's
// address, a known provider, not suspended, and a usable Secret.
func (s *Server) route(ctx context.Context, req *request) (*route, *rejection) {
	if len(s.opts.Namespaces) > 0 && !slices.Contains(s.opts.Namespaces, req.key.Namespace) {
		return nil, s.unknownSource(req)
	}
	src := &crmv1alpha1.CustomerSource{}
	if err := s.client.Get(ctx, req.key, src); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, s.unknownSource(req)
		}
		return nil, s.unavailable("reading CustomerSource", err)
	}
	req.src = src
	if d, blocked := s.guard.sourceBlocked(req.addr, src.UID, s.now()); blocked {
		return nil, tooManyFailures(d)
	}
	req.provider = string(src.Spec.Provider)
	provider, err := registry.ForSource(src)
	if err != nil {
		return nil, s.notReady(err.Error())
	}
	if src.Spec.Suspend {
		return nil, &rejection{status: http.StatusServiceUnavailable, reason: reasonSourceSuspended, message: "the source is suspended", retryAfter: s.opts.RetryAfter}
	}
	secret, err := s.secrets.Get(ctx, types.NamespacedName{Namespace: src.Namespace, Name: src.Spec.SecretRef.Name})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, s.notReady(fmt.Sprintf("its Secret %q is missing", src.Spec.SecretRef.Name))
		}
		return nil, s.unavailable("reading the source's Secret", err)
	}
	if err := provider.ValidateSecret(secret); err != nil {
		return nil, s.notReady(fmt.Sprintf("its Secret %q: %v", src.Spec.SecretRef.Name, err))
	}
	return &route{provider: provider, secret: secret}, nil
}

// authenticate checks credentials in headers before the body is read. The
// source's rate limit counts authenticated requests only: a request the headers
// authenticate pays for one event here, before its body costs anything.
func (s *Server) authenticate(r *http.Request, req *request, rt *route) *rejection {
	ha, ok := rt.provider.(providers.HeaderAuthenticator)
	if !ok {
		return nil
	}
	complete, perr := ha.AuthenticateHeader(r.Header, rt.secret)
	if perr != nil {
		return s.authFailed(req, perr)
	}
	if !complete {
		return nil
	}
	rt.authenticated = true
	return s.allow(req.src, 1, 0)
}

// parse authenticates the body and decodes its events. A request refused here
// after authentication counts against the rate limit as one event; a failed
// authentication counts against the client's address instead. It returns the
// events, or nil and the refusal.
func (s *Server) parse(r *http.Request, req *request, rt *route, body []byte, receivedAt time.Time) (*providers.Result, *rejection) {
	tolerance := DefaultTimestampTolerance
	if req.src.Spec.TimestampTolerance != nil {
		tolerance = req.src.Spec.TimestampTolerance.Duration
	}
	res, err := rt.provider.Parse(&providers.Request{Header: r.Header, Body: body, Secret: rt.secret, Now: receivedAt, Tolerance: tolerance,
		MaxEvents: s.opts.MaxEventsPerRequest})
	if err == nil {
		return res, nil
	}
	var perr *providers.Error
	if !errors.As(err, &perr) {
		perr = &providers.Error{Status: http.StatusBadRequest, Reason: providers.ReasonMalformed, Message: err.Error()}
	}
	if providers.AuthFailure(perr.Reason) {
		return nil, s.authFailed(req, perr)
	}
	if rej := s.allow(req.src, 1, rt.prepaid()); rej != nil {
		return nil, rej
	}
	eventsTotal.WithLabelValues(req.provider, req.key.String(), OutcomeRejected).Inc()
	return nil, &rejection{status: perr.Status, reason: perr.Reason, field: perr.Field, message: perr.Message}
}

// ingest applies the events in order. An event that cannot be applied is
// reported and the others go on; a Customer being deleted, or a failed write,
// refuses the request so the provider retries it.
func (s *Server) ingest(ctx context.Context, req *request, res *providers.Result, receivedAt time.Time, logger logr.Logger) (Counts, *rejection) {
	var counts Counts
	src := req.src
	counts.Ignored = res.Ignored
	if res.Ignored > 0 {
		eventsTotal.WithLabelValues(req.provider, req.key.String(), OutcomeIgnored).Add(float64(res.Ignored))
	}
	for i := range res.Events {
		ev := &res.Events[i]
		outcome, err := s.ingester.Apply(ctx, src, ev, receivedAt)
		var evRej *EventRejection
		switch {
		case errors.As(err, &evRej):
			// Retrying cannot help: report it, tell the source's people, and go
			// on with the others.
			counts.Rejected++
			counts.RejectedEvents = append(counts.RejectedEvents, RejectedEvent{ID: shortEventID(ev.ID), Reason: evRej.Reason, Field: evRej.Field, Message: evRej.Message})
			eventsTotal.WithLabelValues(req.provider, req.key.String(), OutcomeRejected).Inc()
			s.noteInvalidEvent(src, ev, evRej)
			s.sampled(evRej.Reason, func(suppressed int64) {
				logger.Info("event rejected", "provider", req.provider, "event", shortEventID(ev.ID), "type", ev.Type,
					"reason", evRej.Reason, "field", evRej.Field, "message", evRej.Message, "suppressedSinceLast", suppressed)
			})
			continue
		case errors.Is(err, ErrCustomerDeleting):
			return counts, &rejection{status: http.StatusServiceUnavailable, reason: reasonDeleting,
				message: "the customer is being deleted, retry later", detail: err.Error(), retryAfter: s.opts.RetryAfter}
		case err != nil:
			return counts, s.unavailable("writing the Customer", err)
		}
		eventsTotal.WithLabelValues(req.provider, req.key.String(), outcome).Inc()
		switch outcome {
		case OutcomeApplied:
			counts.Applied++
		case OutcomeDuplicate:
			counts.Duplicate++
		case OutcomeStale:
			counts.Stale++
		}
		logger.V(1).Info("event", "provider", req.provider, "event", ev.ID, "type", ev.Type, "outcome", outcome)
	}
	return counts, nil
}

// answer refuses a request of which nothing can be applied, naming the field
// of its first rejected event; any other request is answered with its counts.
func (s *Server) answer(counts Counts) *rejection {
	if counts.Rejected == 0 || counts.Applied+counts.Duplicate+counts.Stale+counts.Ignored > 0 {
		return nil
	}
	first := counts.RejectedEvents[0]
	return &rejection{status: http.StatusUnprocessableEntity, reason: first.Reason, field: first.Field,
		message: fmt.Sprintf("event %q: %s", first.ID, first.Message), events: counts.RejectedEvents}
}

// readBody reads the body within the server's budget. Before authentication it
// takes one of the client address's read slots; a body that stalls past the read
// timeout or breaks off counts against the sender as a failed authentication
// would, so holding connections open is not free.
func (s *Server) readBody(r *http.Request, req *request, authenticated bool) ([]byte, func(), *rejection) {
	if !authenticated {
		if !s.reads.acquire(req.addr) {
			return nil, nil, tooManyReads(s.opts.RetryAfter)
		}
		defer s.reads.release(req.addr)
	}
	body, done, rej := s.budget.readBody(r, s.opts.MaxBodyBytes, s.opts.RetryAfter)
	if rej != nil && rej.reason == reasonReadError {
		s.guard.failed(req.addr, req.src.UID, s.now())
	}
	return body, done, rej
}

// unknownSource answers a path that names no source, and counts it against the
// client's address: paths must not be free to enumerate.
func (s *Server) unknownSource(req *request) *rejection {
	s.guard.failed(req.addr, "", s.now())
	return &rejection{status: http.StatusNotFound, reason: reasonUnknownSource, message: "no CustomerSource at this path"}
}

func tooManyFailures(retryAfter time.Duration) *rejection {
	return &rejection{status: http.StatusTooManyRequests, reason: reasonAuthFailures,
		message: "too many failed authentications from this address, retry later", retryAfter: retryAfter}
}

// authFailed answers a failed authentication, without its detail, and counts it
// against the client's address at the source.
func (s *Server) authFailed(req *request, perr *providers.Error) *rejection {
	s.guard.failed(req.addr, req.src.UID, s.now())
	msg, ok := publicMessages[perr.Reason]
	if !ok {
		msg = "authentication failed"
	}
	return &rejection{status: perr.Status, reason: perr.Reason, message: msg, detail: perr.Message}
}

func (s *Server) notReady(detail string) *rejection {
	return &rejection{status: http.StatusServiceUnavailable, reason: reasonSourceNotReady,
		message: publicMessages[reasonSourceNotReady], detail: detail, retryAfter: s.opts.RetryAfter}
}

func rateLimited(retryAfter time.Duration) *rejection {
	return &rejection{status: http.StatusTooManyRequests, reason: reasonRateLimited, message: "rate limit of the source exceeded", retryAfter: retryAfter}
}

// unavailable answers a failed Kubernetes API call: 503 with Retry-After, so the
// provider retries and nothing that was not persisted is acknowledged.
func (s *Server) unavailable(what string, err error) *rejection {
	retry := s.opts.RetryAfter
	if secs, ok := apierrors.SuggestsClientDelay(err); ok && secs > 0 {
		retry = time.Duration(secs) * time.Second
	}
	return &rejection{status: http.StatusServiceUnavailable, reason: reasonAPIUnavailable,
		message: publicMessages[reasonAPIUnavailable], detail: what + " failed: " + err.Error(), retryAfter: retry}
}

// logSampler lets the first few log lines of a kind through, then one per
// interval, and counts the ones it held back: a flood of rejections must not
// become a flood of logs.
type logSampler struct {
	sometimes  rate.Sometimes
	suppressed atomic.Int64
}

func (s *Server) sampled(kind string, f func(suppressed int64)) {
	s.logSamplersMu.Lock()
	ls := s.logSamplers[kind]
	if ls == nil {
		ls = &logSampler{sometimes: rate.Sometimes{First: 5, Interval: 10 * time.Second}}
		s.logSamplers[kind] = ls
	}
	s.logSamplersMu.Unlock()
	ran := false
	ls.sometimes.Do(func() {
		ran = true
		f(ls.suppressed.Swap(0))
	})
	if !ran {
		ls.suppressed.Add(1)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
