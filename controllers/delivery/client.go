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
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
)

// Limits of the client, in one place.
const (
	// maxDrain bounds how much of an answer is read. Reading it lets the connection
	// be reused; the bound keeps a misbehaving sink from streaming at us forever.
	maxDrain = 64 << 10
	// maxErrorBody bounds the part of an error answer quoted in Result.Err, which
	// goes to the debug log (never to status or Events).
	maxErrorBody = 120
	// maxCachedClients bounds the transport cache: each distinct CA bundle has
	// its own, and bundles change over time.
	maxCachedClients = 32
	// MaxRetryAfter caps Retry-After, so a sink (or a typo in its config) cannot
	// park deliveries for days.
	MaxRetryAfter = time.Hour
	// MaxResponseHeaderBytes bounds an answer's status line and headers. Go's
	// default, 10 MiB, would let every sink in flight hold that much of the
	// controllers' memory with its headers alone.
	MaxResponseHeaderBytes = 64 << 10
	// MaxTimeout bounds one delivery whatever the sink asks, as the CRD's schema
	// bounds spec.timeout; it also holds for sinks stored before that bound.
	MaxTimeout = 60 * time.Second
)

// DefaultUserAgent is sent when Client.UserAgent is empty.
const DefaultUserAgent = "customer-operator"

// Result is the outcome of one delivery attempt.
type Result struct {
	// StatusCode is the sink's HTTP status; 0 when no answer arrived.
	StatusCode int
	// RetryAfter is what a 429 or 503 answer asked for (Retry-After in seconds or
	// as an HTTP date), capped at MaxRetryAfter; 0 when it asked nothing.
	RetryAfter time.Duration
	// Gone is true on 410: the sink says the endpoint will never accept again.
	Gone bool
	// Refused is true when a sink that is not HTTP rejected this Customer's
	// content (a constraint, a record too large): like an HTTP 4xx, the Customer
	// is retried with its own backoff and the sink is not paused.
	Refused bool
	// Err is nil only when the sink answered 2xx. Its message is short, meant
	// for status and Events, and free of secrets and of anything the sink sent:
	// an answer is an *HTTPError (status code, reason phrase, Retry-After); a
	// refused address an *AddressNotAllowedError; anything else is named by its
	// class (timeout, connection refused, a TLS failure, ...).
	Err error
	// Duration is how long the attempt took.
	Duration time.Duration
}

// Client delivers events. The zero value is ready to use, and a Client is safe
// for concurrent use; share one so connections are reused across deliveries.
type Client struct {
	// UserAgent overrides DefaultUserAgent.
	UserAgent string
	// Policy says which addresses deliveries may connect to; the zero value
	// denies DefaultDenyCIDRs. It must not change once the Client is in use.
	Policy AddressPolicy
	// Log receives what must not reach status: the start of a sink's error
	// answer and the full transport error, at V(1). A logger in the context of
	// Deliver takes precedence.
	Log logr.Logger
	// ResponseHeaderTimeout bounds the wait for an answer's headers once the
	// request is sent; 0 means MaxTimeout. The sink's own timeout bounds the
	// whole delivery within it. It must not change once the Client is in use.
	ResponseHeaderTimeout time.Duration

	mu      sync.Mutex
	clients map[string]*cachedClient
	clock   uint64
}

type cachedClient struct {
	hc      *http.Client
	lastUse uint64
}

// Deliver makes one attempt to deliver ev to t. It never retries or sleeps: the
// caller owns backoff (see the package documentation).
func (c *Client) Deliver(ctx context.Context, t *Target, ev Event) Result {
	start := time.Now()
	res := c.deliver(ctx, t, ev)
	res.Duration = time.Since(start)
	return res
}

func (c *Client) deliver(ctx context.Context, t *Target, ev Event) Result {
	where := "POST " + displayURL(t.URL)
	body, contentType, err := encode(t.Format, t.Fields, ev)
	if err != nil {
		return Result{Err: fmt.Errorf("%s: %w", where, err)}
	}
	if len(t.Secrets) == 0 && t.Format != crmv1alpha1.FormatCloudEvents {
		return Result{Err: fmt.Errorf("%s: no signing secret for the %s format", where, crmv1alpha1.FormatStandardWebhooks)}
	}
	hc, err := c.httpClient(t.CA)
	if err != nil {
		return Result{Err: fmt.Errorf("%s: %w", where, err)}
	}

	timeout := t.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	timeout = min(timeout, MaxTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(body))
	if err != nil {
		// The parse error would quote the URL, credentials included.
		return Result{Err: fmt.Errorf("%s: invalid URL", where)}
	}
	for name, values := range t.Header {
		if reservedHeader(name) {
			continue
		}
		for _, v := range values {
			req.Header.Add(name, v)
		}
	}
	req.Header.Set("Content-Type", contentType)
	ua := c.UserAgent
	if ua == "" {
		ua = DefaultUserAgent
	}
	req.Header.Set("User-Agent", ua)
	if len(t.Secrets) > 0 {
		// The timestamp is the send time, not the event time: receivers reject
		// stale timestamps to stop replays, and a retry hours later is no replay.
		ts := time.Now().Unix()
		sigs := make([]string, len(t.Secrets))
		for i, s := range t.Secrets {
			sigs[i] = Sign(s, ev.ID, ts, body)
		}
		req.Header.Set(HeaderID, ev.ID)
		req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
		req.Header.Set(HeaderSignature, strings.Join(sigs, " "))
	}

	resp, err := hc.Do(req)
	if err != nil {
		return Result{Err: fmt.Errorf("%s: %w", where, c.transportError(ctx, err, timeout))}
	}
	defer resp.Body.Close()

	res := Result{StatusCode: resp.StatusCode}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
		return res
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxDrain))

	// The message names the status by our own table, never by the sink's reason
	// phrase or body: whoever may create a sink may read its status, and a sink
	// pointed at an internal service would otherwise read that service's answers.
	status := "HTTP " + strconv.Itoa(resp.StatusCode)
	if text := http.StatusText(resp.StatusCode); text != "" {
		status += " " + text
	}
	switch resp.StatusCode {
	case http.StatusGone:
		res.Gone = true
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		res.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	c.logger(ctx).V(1).Info("sink refused a delivery", "url", displayURL(t.URL), "status", resp.StatusCode,
		"answer", errorSnippet(answer, resp.Header.Get("Content-Type"), t))
	msg := where + ": " + status
	if res.RetryAfter > 0 {
		// In seconds, as the header says it (RetryAfter is whole seconds).
		msg += ", Retry-After " + strconv.FormatInt(int64(res.RetryAfter/time.Second), 10) + "s"
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		// Following would send a signed customer record wherever the sink points;
		// the sink's URL is the only place it may go.
		msg += " (redirects are not followed)"
	}
	res.Err = &HTTPError{StatusCode: resp.StatusCode, RetryAfter: res.RetryAfter, msg: msg}
	return res
}

// HTTPError is a sink's answer other than 2xx. Its message carries the status
// code, its standard reason phrase and any Retry-After; never the answer's body.
type HTTPError struct {
	StatusCode int
	RetryAfter time.Duration
	msg        string
}

func (e *HTTPError) Error() string { return e.msg }

// transportError describes a failure to get an answer by its class only. The
// errors of net/http, crypto/tls and x509 quote what the far end sent (a
// malformed status line, certificate names, an alert's text): those go to the
// debug log, not to status and Events. The returned error still wraps what code
// may test with errors.Is and errors.As (context errors, *AddressNotAllowedError).
func (c *Client) transportError(ctx context.Context, err error, timeout time.Duration) error {
	c.logger(ctx).V(1).Info("delivery failed before an answer", "error", err.Error())
	var (
		notAllowed *AddressNotAllowedError
		dnsErr     *net.DNSError
		hostErr    x509.HostnameError
		authErr    x509.UnknownAuthorityError
		invalidErr x509.CertificateInvalidError
		verifyErr  *tls.CertificateVerificationError
		alertErr   tls.AlertError
		recordErr  tls.RecordHeaderError
		netErr     net.Error
		opErr      *net.OpError
	)
	switch {
	case errors.As(err, &notAllowed):
		return notAllowed
	case strings.Contains(err.Error(), "server response headers exceeded"):
		return classified{fmt.Sprintf("the sink's answer headers exceed %d KiB", MaxResponseHeaderBytes>>10), nil}
	case strings.Contains(err.Error(), "timeout awaiting response headers"):
		return classified{fmt.Sprintf("no answer headers within %s", c.responseHeaderTimeout()), nil}
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return classified{fmt.Sprintf("timeout after %s", timeout), context.DeadlineExceeded}
	case errors.Is(err, context.Canceled):
		return classified{"canceled", context.Canceled}
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return classified{"DNS: no such host", nil}
		}
		return classified{"DNS lookup failed", nil}
	case errors.As(err, &hostErr):
		return classified{"TLS: the certificate is not valid for this host", nil}
	case errors.As(err, &authErr):
		return classified{"TLS: the certificate is signed by an unknown authority (is ca.crt set?)", nil}
	case errors.As(err, &invalidErr):
		if invalidErr.Reason == x509.Expired {
			return classified{"TLS: the certificate has expired or is not yet valid", nil}
		}
		return classified{"TLS: the certificate is invalid", nil}
	case errors.As(err, &verifyErr):
		return classified{"TLS: the certificate does not verify", nil}
	case errors.As(err, &alertErr), errors.As(err, &opErr) && opErr.Op == "remote error":
		return classified{"TLS: the sink refused the handshake", nil}
	case errors.As(err, &recordErr), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		// net/http replaces the RecordHeaderError with that text of its own.
		return classified{"TLS: the sink did not answer in TLS", nil}
	case errors.Is(err, syscall.ECONNREFUSED):
		return classified{"connection refused", nil}
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return classified{"connection closed by the sink before it answered", nil}
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return classified{"host unreachable", nil}
	case errors.As(err, &netErr) && netErr.Timeout():
		return classified{"network timeout", nil}
	}
	return classified{"request failed (details in the debug log)", nil}
}

// classified is a transport error reduced to its class.
type classified struct {
	msg   string
	cause error
}

func (e classified) Error() string { return e.msg }
func (e classified) Unwrap() error { return e.cause }

func (c *Client) logger(ctx context.Context) logr.Logger {
	if l, err := logr.FromContext(ctx); err == nil {
		return l
	}
	return c.Log
}

// CloseIdleConnections closes the idle connections of every cached transport,
// for shutdown and tests.
func (c *Client) CloseIdleConnections() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.clients {
		e.hc.CloseIdleConnections()
	}
}

// httpClient returns the cached client for a CA bundle, building it on first use.
// Clients are keyed by the bundle's bytes, not by sink, so that sinks sharing a CA
// (or none) share connections.
func (c *Client) httpClient(ca []byte) (*http.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clock++
	if e, ok := c.clients[string(ca)]; ok {
		e.lastUse = c.clock
		return e.hc, nil
	}
	hc, err := newHTTPClient(ca, c.Policy, c.responseHeaderTimeout())
	if err != nil {
		return nil, err
	}
	if c.clients == nil {
		c.clients = map[string]*cachedClient{}
	}
	if len(c.clients) >= maxCachedClients {
		var oldest string
		oldestUse := ^uint64(0)
		for k, e := range c.clients {
			if e.lastUse < oldestUse {
				oldest, oldestUse = k, e.lastUse
			}
		}
		// Deliveries still using it finish; only its idle connections go.
		c.clients[oldest].hc.CloseIdleConnections()
		delete(c.clients, oldest)
	}
	c.clients[string(ca)] = &cachedClient{hc: hc, lastUse: c.clock}
	return hc, nil
}

func (c *Client) responseHeaderTimeout() time.Duration {
	if c.ResponseHeaderTimeout > 0 {
		return c.ResponseHeaderTimeout
	}
	return MaxTimeout
}

func newHTTPClient(ca []byte, policy AddressPolicy, responseHeaderTimeout time.Duration) (*http.Client, error) {
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(ca) > 0 {
		// A private CA is added to the system roots, not put in their place, so a
		// sink moving to a public certificate keeps working during the change.
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(ca) {
			return nil, errors.New("ca.crt holds no PEM certificate")
		}
		tlsConfig.RootCAs = pool
	}
	transport := &http.Transport{
		Proxy:                 proxyWithPolicy(policy),
		DialContext:           policy.DialContext(&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}),
		TLSClientConfig:       tlsConfig,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16, // the default 2 would close connections under concurrent reconciles
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Whatever a sink sends back, an answer's headers cost at most this
		// much memory and this much waiting.
		MaxResponseHeaderBytes: MaxResponseHeaderBytes,
		ResponseHeaderTimeout:  responseHeaderTimeout,
	}
	return &http.Client{
		Transport: transport,
		// Redirects are refused, not followed: a sink's URL is the only place its
		// deliveries go (and a 3xx is a failed delivery).
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}, nil
}

// proxyWithPolicy uses the environment's proxy (HTTPS_PROXY, NO_PROXY, ...).
// Through a proxy the connection checked at connect time is the proxy's, so the
// sink's host is checked here, on the addresses it resolves to; the proxy resolves
// it again on its own, so there an egress policy of the proxy's is the last word.
func proxyWithPolicy(policy AddressPolicy) func(*http.Request) (*url.URL, error) {
	return func(req *http.Request) (*url.URL, error) {
		proxy, err := http.ProxyFromEnvironment(req)
		if err != nil || proxy == nil {
			return proxy, err
		}
		if err := policy.checkHost(req.Context(), net.DefaultResolver, req.URL.Hostname()); err != nil {
			return nil, err
		}
		return proxy, nil
	}
}

// displayURL is the URL as error messages show it: without user info, query
// or fragment, any of which may carry a credential.
func displayURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return u.String()
}

// parseRetryAfter reads delay-seconds or an HTTP date (RFC 9110 10.2.3).
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(now).Round(time.Second)
	}
	return min(max(d, 0), MaxRetryAfter)
}

// errorSnippet quotes the start of an error answer for the debug log, since
// receivers often say there why they refused ("invalid signature"). HTML pages
// are skipped as noise, and so is any answer that echoes one of our header
// values back.
func errorSnippet(body []byte, contentType string, t *Target) string {
	if len(body) == 0 || strings.Contains(strings.ToLower(contentType), "html") {
		return ""
	}
	for _, values := range t.Header {
		for _, v := range values {
			if len(v) >= 4 && bytes.Contains(body, []byte(v)) {
				return ""
			}
		}
	}
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(body[:min(len(body), 4*maxErrorBody)]), "")), " ")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > maxErrorBody {
		cut := maxErrorBody
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
