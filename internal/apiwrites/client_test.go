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

package apiwrites_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/customer-operator/customer-operator/internal/apiwrites"
	"github.com/customer-operator/customer-operator/test/envtestutil"
)

// countingDialer counts the connections it opened and how many are open.
type countingDialer struct {
	dialed, open, maxOpen atomic.Int64
}

func (d *countingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	d.dialed.Add(1)
	n := d.open.Add(1)
	for {
		m := d.maxOpen.Load()
		if n <= m || d.maxOpen.CompareAndSwap(m, n) {
			break
		}
	}
	return &countedConn{Conn: c, d: d}, nil
}

type countedConn struct {
	net.Conn
	d    *countingDialer
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.d.open.Add(-1) })
	return c.Conn.Close()
}

// TestRequestsGoOverHTTP1OnBoundedConnections sends a burst of requests four
// times larger than the connection bound through the client, to a real API
// server: every request is answered, over HTTP/1.1, and the connections
// opened stay within the bound and are reused, never opened again per request.
func TestRequestsGoOverHTTP1OnBoundedConnections(t *testing.T) {
	cfg := envtestutil.StartAPIServer(t)
	d := &countingDialer{}
	cfg = rest.CopyConfig(cfg)
	cfg.Dial = d.DialContext
	hc, err := apiwrites.NewHTTPClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	url := strings.TrimSuffix(cfg.Host, "/") + "/api/v1/namespaces"

	const senders, each = 4 * apiwrites.MaxConns, 10
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr sync.Once
	fail := func(err error) {
		failed.Add(1)
		firstErr.Do(func() { t.Logf("first failure: %v", err) })
	}
	var protos sync.Map
	for range senders {
		wg.Go(func() {
			for range each {
				resp, err := hc.Get(url)
				if err != nil {
					fail(err)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				protos.Store(resp.Proto, true)
				if resp.StatusCode != http.StatusOK {
					fail(fmt.Errorf("%s", resp.Status))
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed", n, senders*each)
	}
	var seen []string
	protos.Range(func(k, _ any) bool { seen = append(seen, fmt.Sprint(k)); return true })
	if len(seen) != 1 || seen[0] != "HTTP/1.1" {
		t.Errorf("answers came over %v, want HTTP/1.1 only", seen)
	}
	if m := d.maxOpen.Load(); m > apiwrites.MaxConns {
		t.Errorf("%d connections were open at once, want at most %d", m, apiwrites.MaxConns)
	}
	if n := d.dialed.Load(); n > apiwrites.MaxConns {
		t.Errorf("%d connections were opened for %d requests, want at most %d: idle ones are kept and reused", n, senders*each, apiwrites.MaxConns)
	}
	t.Logf("%d requests from %d senders: %d connections opened, at most %d open at once", senders*each, senders, d.dialed.Load(), d.maxOpen.Load())
}

// TestARequestBeyondTheBoundWaitsWithinItsDeadline holds every connection with
// a watch whose answer is still being read: a further request waits, and ends
// with its context, saying why; once one answer is closed, the next request
// gets its connection.
func TestARequestBeyondTheBoundWaitsWithinItsDeadline(t *testing.T) {
	cfg := envtestutil.StartAPIServer(t)
	hc, err := apiwrites.NewHTTPClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	base := strings.TrimSuffix(cfg.Host, "/")
	var held []io.Closer
	t.Cleanup(func() {
		for _, b := range held {
			_ = b.Close()
		}
	})
	for range apiwrites.MaxConns {
		resp, err := hc.Get(base + "/api/v1/namespaces?watch=1") //nolint:bodyclose // held open, closed below and by the cleanup
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, resp.Body)
	}

	get := func(timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/namespaces", nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}
	err = get(300 * time.Millisecond)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), fmt.Sprintf("waiting for one of the %d connections", apiwrites.MaxConns)) {
		t.Fatalf("a request beyond the bound: err = %v, want it to wait and end with its deadline", err)
	}
	_ = held[0].Close()
	held = held[1:]
	if err := get(10 * time.Second); err != nil {
		t.Fatalf("a request after one connection was freed: %v", err)
	}
}
