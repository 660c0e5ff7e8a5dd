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

package localcluster

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/customer-operator/customer-operator/controllers/delivery"
)

// Receiver is a CustomerSink endpoint: it verifies each delivery's Standard
// Webhooks signature and records when each Customer first arrived.
type Receiver struct {
	secret string

	mu       sync.Mutex
	received map[string]Receipt // by Customer name

	failing  atomic.Bool
	rejected atomic.Int64
	total    atomic.Int64

	srv *http.Server
	ln  net.Listener
}

// Receipt is what the receiver saw of one Customer.
type Receipt struct {
	// First is when the first verified delivery of the Customer arrived.
	First time.Time
	// Type and Generation are the last delivery's.
	Type       string
	Generation int64
	UID        string
	Deliveries int
}

// NewReceiver returns a receiver that verifies with secret ("whsec_...").
func NewReceiver(secret string) *Receiver {
	return &Receiver{secret: secret, received: map[string]Receipt{}}
}

// Listen serves on addr until Close; a closed receiver refuses connections.
func (r *Receiver) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	r.ln = ln
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return nil
}

// Addr is where the receiver listens.
func (r *Receiver) Addr() string { return r.ln.Addr().String() }

// Close stops serving; connections are refused until the next Listen.
func (r *Receiver) Close() {
	if r.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = r.srv.Shutdown(ctx)
		r.srv = nil
	}
}

// SetFailing makes the receiver answer 503 to every delivery (true) or accept
// them again (false).
func (r *Receiver) SetFailing(v bool) { r.failing.Store(v) }

// Rejected counts deliveries whose signature did not verify.
func (r *Receiver) Rejected() int64 { return r.rejected.Load() }

// Total counts the deliveries that were accepted.
func (r *Receiver) Total() int64 { return r.total.Load() }

// Get returns the receipt of the Customer name.
func (r *Receiver) Get(name string) (Receipt, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rc, ok := r.received[name]
	return rc, ok
}

// Count is how many distinct Customers arrived.
func (r *Receiver) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.received)
}

// ServeHTTP implements http.Handler.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	now := time.Now()
	if r.failing.Load() {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, "reading the body", http.StatusBadRequest)
		return
	}
	if err := delivery.Verify(r.secret, req.Header, body, 0, now); err != nil {
		r.rejected.Add(1)
		status := http.StatusUnauthorized
		if errors.Is(err, delivery.ErrMissingHeaders) {
			status = http.StatusBadRequest
		}
		http.Error(w, err.Error(), status)
		return
	}
	var ev struct {
		Type string `json:"type"`
		Data struct {
			Metadata struct {
				Name       string `json:"name"`
				UID        string `json:"uid"`
				Generation int64  `json:"generation"`
			} `json:"metadata"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || ev.Data.Metadata.Name == "" {
		http.Error(w, "not a customer event", http.StatusBadRequest)
		return
	}
	m := ev.Data.Metadata
	r.mu.Lock()
	rc, seen := r.received[m.Name]
	if !seen {
		rc.First = now
	}
	rc.Type, rc.Generation, rc.UID = ev.Type, m.Generation, m.UID
	rc.Deliveries++
	r.received[m.Name] = rc
	r.mu.Unlock()
	r.total.Add(1)
	w.WriteHeader(http.StatusNoContent)
}
