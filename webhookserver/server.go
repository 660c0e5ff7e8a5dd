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
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
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
}

// DefaultOptions are the limits used when a field is zero.
var DefaultOptions = Options{
	BindAddress:       ":9292",
	MaxBodyBytes:      1 << 20,
	ReadHeaderTimeout: 5 * time.Second,
	ReadTimeout:       15 * time.Second,
	WriteTimeout:      30 * time.Second,
	APITimeout:        10 * time.Second,
	RetryAfter:        5 * time.Second,
}

// DefaultTimestampTolerance applies when a source does not set one.
const DefaultTimestampTolerance = 5 * time.Minute

// Server is the webhook server. It is a manager.Runnable that runs on every
// replica: it keeps no state that needs a leader.
type Server struct {
	opts     Options
	client   client.Client
	secrets  *secretcache.Store
	ingester *Ingester
	now      func() time.Time

	limitersMu sync.Mutex
	limiters   map[types.UID]*sourceLimiter

	touchedMu sync.Mutex
	touched   map[types.NamespacedName]time.Time

	listener net.Listener
}

type sourceLimiter struct {
	generation int64
	limiter    *rate.Limiter
}

// New returns a Server. c reads CustomerSources and Customers from the manager's
// cache and writes to the API server; apiReader reads from the API server.
func New(opts Options, c client.Client, apiReader client.Reader, secrets *secretcache.Store) *Server {
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
	fill(&opts.ReadHeaderTimeout, DefaultOptions.ReadHeaderTimeout)
	fill(&opts.ReadTimeout, DefaultOptions.ReadTimeout)
	fill(&opts.WriteTimeout, DefaultOptions.WriteTimeout)
	fill(&opts.APITimeout, DefaultOptions.APITimeout)
	fill(&opts.RetryAfter, DefaultOptions.RetryAfter)
	return &Server{
		opts:     opts,
		client:   c,
		secrets:  secrets,
		ingester: &Ingester{Client: c, APIReader: apiReader},
		now:      time.Now,
		limiters: map[types.UID]*sourceLimiter{},
		touched:  map[types.NamespacedName]time.Time{},
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
	log.FromContext(ctx).WithName("webhook-server").Info("serving provider webhooks", "address", ln.Addr().String())
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
}

// errorBody is the body of every error answer.
type errorBody struct {
	Error  string `json:"error"`
	Reason string `json:"reason"`
	Field  string `json:"field,omitempty"`
}

// rejection is an answer other than 2xx.
type rejection struct {
	status     int
	reason     string
	field      string
	message    string
	retryAfter time.Duration
}

func (s *Server) serveHook(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	key := types.NamespacedName{Namespace: r.PathValue("namespace"), Name: r.PathValue("source")}
	logger := log.FromContext(r.Context()).WithName("webhook-server").WithValues("source", key.String())
	provider := "unknown"

	counts, rej := s.handle(r, key, &provider, logger)

	code := http.StatusOK
	switch {
	case rej != nil:
		code = rej.status
		if rej.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(rej.retryAfter.Seconds()))))
		}
		writeJSON(w, code, errorBody{Error: rej.message, Reason: rej.reason, Field: rej.field})
		rejectionsTotal.WithLabelValues(provider, rej.reason).Inc()
		logger.Info("webhook rejected", "provider", provider, "code", code, "reason", rej.reason,
			"field", rej.field, "message", rej.message, "remote", r.RemoteAddr)
	case counts.Applied+counts.Duplicate+counts.Stale == 0:
		code = http.StatusNoContent
		w.WriteHeader(code)
	default:
		writeJSON(w, code, counts)
	}
	requestsTotal.WithLabelValues(provider, strconv.Itoa(code)).Inc()
	requestDuration.WithLabelValues(provider).Observe(s.now().Sub(start).Seconds())
}

func (s *Server) handle(r *http.Request, key types.NamespacedName, providerName *string, logger logr.Logger) (Counts, *rejection) {
	var counts Counts
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.APITimeout)
	defer cancel()

	src := &crmv1alpha1.CustomerSource{}
	if err := s.client.Get(ctx, key, src); err != nil {
		if apierrors.IsNotFound(err) {
			return counts, &rejection{status: http.StatusNotFound, reason: "unknown_source", message: "no CustomerSource " + key.String()}
		}
		return counts, s.unavailable("reading CustomerSource", err)
	}
	*providerName = string(src.Spec.Provider)
	provider := registry.Lookup(src.Spec.Provider)
	if provider == nil {
		return counts, &rejection{status: http.StatusServiceUnavailable, reason: "source_not_ready", message: "unknown provider " + string(src.Spec.Provider), retryAfter: s.opts.RetryAfter}
	}
	if src.Spec.Suspend {
		return counts, &rejection{status: http.StatusServiceUnavailable, reason: "source_suspended", message: "source is suspended", retryAfter: s.opts.RetryAfter}
	}
	secret, err := s.secrets.Get(ctx, types.NamespacedName{Namespace: src.Namespace, Name: src.Spec.SecretRef.Name})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return counts, &rejection{status: http.StatusServiceUnavailable, reason: "source_not_ready", message: "source is not ready: its Secret is missing", retryAfter: s.opts.RetryAfter}
		}
		return counts, s.unavailable("reading the source's Secret", err)
	}
	if err := provider.ValidateSecret(secret); err != nil {
		return counts, &rejection{status: http.StatusServiceUnavailable, reason: "source_not_ready", message: "source is not ready: " + err.Error(), retryAfter: s.opts.RetryAfter}
	}
	if d, ok := s.allow(src); !ok {
		return counts, &rejection{status: http.StatusTooManyRequests, reason: "rate_limited", message: "rate limit of the source exceeded", retryAfter: d}
	}

	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return counts, &rejection{status: http.StatusRequestEntityTooLarge, reason: "body_too_large", message: fmt.Sprintf("body larger than %d bytes", s.opts.MaxBodyBytes)}
		}
		return counts, &rejection{status: http.StatusBadRequest, reason: "read_error", message: "reading the body failed"}
	}

	tolerance := DefaultTimestampTolerance
	if src.Spec.TimestampTolerance != nil {
		tolerance = src.Spec.TimestampTolerance.Duration
	}
	receivedAt := s.now()
	res, err := provider.Parse(&providers.Request{Header: r.Header, Body: body, Secret: secret, Now: receivedAt, Tolerance: tolerance})
	if err != nil {
		var perr *providers.Error
		if !errors.As(err, &perr) {
			perr = &providers.Error{Status: http.StatusBadRequest, Reason: providers.ReasonMalformed, Message: err.Error()}
		}
		eventsTotal.WithLabelValues(*providerName, OutcomeRejected).Inc()
		return counts, &rejection{status: perr.Status, reason: perr.Reason, field: perr.Field, message: perr.Message}
	}

	counts.Ignored = res.Ignored
	if res.Ignored > 0 {
		eventsTotal.WithLabelValues(*providerName, OutcomeIgnored).Add(float64(res.Ignored))
	}
	for i := range res.Events {
		ev := &res.Events[i]
		outcome, err := s.ingester.Apply(ctx, src, ev, receivedAt)
		if err != nil {
			eventsTotal.WithLabelValues(*providerName, OutcomeRejected).Inc()
			if apierrors.IsInvalid(err) {
				return counts, &rejection{status: http.StatusBadRequest, reason: "invalid_customer", message: err.Error()}
			}
			if errors.Is(err, errNameTaken) {
				return counts, &rejection{status: http.StatusConflict, reason: "name_taken", message: err.Error()}
			}
			return counts, s.unavailable("writing the Customer", err)
		}
		eventsTotal.WithLabelValues(*providerName, outcome).Inc()
		switch outcome {
		case OutcomeApplied:
			counts.Applied++
		case OutcomeDuplicate:
			counts.Duplicate++
		case OutcomeStale:
			counts.Stale++
		}
		logger.V(1).Info("event", "provider", *providerName, "event", ev.ID, "type", ev.Type, "outcome", outcome)
	}
	if counts.Applied > 0 {
		s.touchSource(r.Context(), src, receivedAt, logger)
	}
	return counts, nil
}

// unavailable answers a failed Kubernetes API call: 503 with Retry-After, so the
// provider retries and nothing that was not persisted is acknowledged.
func (s *Server) unavailable(what string, err error) *rejection {
	retry := s.opts.RetryAfter
	if secs, ok := apierrors.SuggestsClientDelay(err); ok && secs > 0 {
		retry = time.Duration(secs) * time.Second
	}
	return &rejection{status: http.StatusServiceUnavailable, reason: "api_unavailable", message: what + " failed: " + err.Error(), retryAfter: retry}
}

// allow applies the source's rate limit. Limiters are per source UID and are
// rebuilt when the source's generation changes, so a new limit applies at once.
func (s *Server) allow(src *crmv1alpha1.CustomerSource) (time.Duration, bool) {
	if src.Spec.RateLimit == nil {
		return 0, true
	}
	s.limitersMu.Lock()
	l, ok := s.limiters[src.UID]
	if !ok || l.generation != src.Generation {
		burst := int(src.Spec.RateLimit.Burst)
		if burst < 1 {
			burst = int(src.Spec.RateLimit.EventsPerSecond)
		}
		l = &sourceLimiter{generation: src.Generation, limiter: rate.NewLimiter(rate.Limit(src.Spec.RateLimit.EventsPerSecond), burst)}
		s.limiters[src.UID] = l
	}
	s.limitersMu.Unlock()

	now := s.now()
	res := l.limiter.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return max(d, time.Second), false
	}
	return 0, true
}

// touchSource records the source's last event time, at most once every 30s per
// source: it is for people, and a status write per request would double the load.
func (s *Server) touchSource(ctx context.Context, src *crmv1alpha1.CustomerSource, at time.Time, logger logr.Logger) {
	key := types.NamespacedName{Namespace: src.Namespace, Name: src.Name}
	s.touchedMu.Lock()
	if last, ok := s.touched[key]; ok && at.Sub(last) < 30*time.Second {
		s.touchedMu.Unlock()
		return
	}
	s.touched[key] = at
	s.touchedMu.Unlock()

	patch := []byte(fmt.Sprintf(`{"status":{"lastEventTime":%q}}`, at.UTC().Format(time.RFC3339)))
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.APITimeout)
	defer cancel()
	if err := s.client.Status().Patch(ctx, src.DeepCopy(), client.RawPatch(types.MergePatchType, patch)); err != nil {
		logger.V(1).Info("could not record the source's last event time", "error", err.Error())
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
