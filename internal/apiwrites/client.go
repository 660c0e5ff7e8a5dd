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

// Package apiwrites builds the HTTP client the manager's requests to the API
// server go through, apart from its watches.
//
// A request over HTTP/2 costs the client three TLS records, each its own
// write to the socket (the headers, the body, and the flow-control window its
// answer used), and hands the request and its answer between three goroutines
// (the caller, the stream's writer, the connection's read loop). Over HTTP/1.1
// the request leaves in one write and the caller reads its own answer. Each new
// customer costs the manager two such requests (the create and the status
// write), and the manager's CPU per customer is what the operator is sized by.
// Watches stay on HTTP/2, where one connection carries all of them: a
// manager watching many namespaces holds a watch per namespace and kind.
package apiwrites

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"

	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/rest"
)

// MaxConns bounds the connections the client holds to the API server, idle
// ones included, and the requests in flight on them: a burst of webhooks never
// opens a connection (and a TLS handshake on both sides) per request, and a
// connection once opened is kept and reused. A request beyond them waits for
// one to be free, within its context's deadline, and says so when that ends.
const MaxConns = 25

// NewHTTPClient returns an HTTP client for cfg's API server that speaks
// HTTP/1.1 with at most MaxConns requests in flight, with cfg's credentials and
// everything else client-go's own transport has (certificate rotation, proxy,
// timeouts).
func NewHTTPClient(cfg *rest.Config) (*http.Client, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.NextProtos = []string{"http/1.1"}
	slots := make(chan struct{}, MaxConns)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return &limitedTransport{rt: bounded(rt), slots: slots}
	})
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("building the API server's HTTP/1.1 client: %w", err)
	}
	return hc, nil
}

// bounded returns client-go's transport with its connections to a host
// bounded by MaxConns, idle ones included. The slots alone bound the requests
// in flight, but a connection whose answer was just read goes back to the
// idle pool a moment after its caller moves on, and a request started in that
// moment would dial one more.
func bounded(rt http.RoundTripper) http.RoundTripper {
	inner := rt
	if w, ok := rt.(utilnet.RoundTripperWrapper); ok {
		inner = w.WrappedRoundTripper()
	}
	t, ok := inner.(*http.Transport)
	if !ok {
		return rt
	}
	// A copy: client-go shares one transport between the clients of one TLS
	// configuration. It keeps the dialer, and with it the closing of every
	// connection when a client certificate rotates.
	t = t.Clone()
	t.MaxConnsPerHost, t.MaxIdleConnsPerHost = MaxConns, MaxConns
	return &boundedTransport{Transport: t, shared: rt}
}

// boundedTransport is the copy, holding on to client-go's own transport: the
// certificate rotation behind the shared dialer lasts as long as that does.
type boundedTransport struct {
	*http.Transport
	shared http.RoundTripper
}

// WrappedRoundTripper lets client-go's debugging wrappers see through.
func (b *boundedTransport) WrappedRoundTripper() http.RoundTripper { return b.Transport }

// limitedTransport holds a slot from a request's start until its answer's body
// is closed: over HTTP/1.1 that is how long the request holds its connection.
type limitedTransport struct {
	rt    http.RoundTripper
	slots chan struct{}
}

func (l *limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	select {
	case l.slots <- struct{}{}:
	case <-req.Context().Done():
		return nil, fmt.Errorf("waiting for one of the %d connections to the API server: %w", cap(l.slots), context.Cause(req.Context()))
	}
	resp, err := l.rt.RoundTrip(req)
	if err != nil {
		<-l.slots
		return nil, err
	}
	resp.Body = &releasingBody{ReadCloser: resp.Body, release: func() { <-l.slots }}
	return resp, nil
}

// WrappedRoundTripper lets client-go's debugging wrappers see through.
func (l *limitedTransport) WrappedRoundTripper() http.RoundTripper { return l.rt }

type releasingBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}
