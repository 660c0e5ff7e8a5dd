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

package webhookserver

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
)

// bodyBudget bounds the request body bytes buffered at once across the whole
// server, so that many slow or large requests cannot take more memory than the
// budget, whoever sends them. A request that does not fit is answered 503 with
// Retry-After at once: waiting for room would hold its connection and memory.
type bodyBudget struct {
	sem *semaphore.Weighted
}

func newBodyBudget(bytes int64) *bodyBudget {
	return &bodyBudget{sem: semaphore.NewWeighted(bytes)}
}

func (b *bodyBudget) reserve(n int64) bool {
	if n == 0 {
		return true
	}
	if !b.sem.TryAcquire(n) {
		return false
	}
	bufferedBytes.Add(float64(n))
	return true
}

func (b *bodyBudget) release(n int64) {
	if n == 0 {
		return
	}
	b.sem.Release(n)
	bufferedBytes.Sub(float64(n))
}

// firstChunk is what a body's buffer starts at, and so what a connection that
// has announced a body but sent none of it holds of the budget.
const firstChunk = 16 << 10

// readBody reads a request body of at most limit bytes within the budget. The
// bytes are reserved as they arrive, not as announced: the buffer starts at
// firstChunk and doubles, each growth reserved before it is made, up to the
// Content-Length (already known not to exceed limit), or to one byte past the
// limit for a body without one, to see that it ends. So a client that announces
// a large body and stalls holds little, and the peak of a body of n bytes is
// under 2n (the old and the new buffer while the bytes are copied). done gives
// the reservation back; the caller calls it once it no longer needs the body.
func (b *bodyBudget) readBody(r *http.Request, limit int64, retryAfter time.Duration) (body []byte, done func(), rej *rejection) {
	want, known := limit+1, r.ContentLength >= 0
	if known {
		want = r.ContentLength
	}
	if want == 0 {
		return []byte{}, func() {}, nil
	}
	var reserved int64
	done = func() { b.release(reserved) }
	size := min(int64(firstChunk), want)
	if !b.reserve(size) {
		return nil, nil, serverBusy(retryAfter)
	}
	reserved = size
	buf := make([]byte, 0, size)
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) >= want {
				break
			}
			next := min(2*int64(cap(buf)), want)
			if !b.reserve(next) {
				done()
				return nil, nil, serverBusy(retryAfter)
			}
			grown := make([]byte, len(buf), next)
			copy(grown, buf)
			b.release(int64(cap(buf)))
			reserved = next
			buf = grown
		}
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			done()
			return nil, nil, readFailed(err)
		}
	}
	if known && int64(len(buf)) < want {
		done()
		return nil, nil, readFailed(io.ErrUnexpectedEOF)
	}
	if int64(len(buf)) > limit {
		done()
		return nil, nil, bodyTooLarge(limit)
	}
	return buf, done, nil
}

// readSlots caps the request bodies being read at once per client address
// before the request is authenticated: reading is where a slow client holds a
// connection, a goroutine and its part of the body budget, and an address that
// holds many of them at once is not a provider delivering webhooks. The map
// holds only addresses with a read in flight, so it is bounded by the server's
// connections.
type readSlots struct {
	perAddress int

	mu     sync.Mutex
	active map[netip.Prefix]int
}

func newReadSlots(perAddress int) *readSlots {
	return &readSlots{perAddress: perAddress, active: map[netip.Prefix]int{}}
}

// acquire takes a slot for addr; release gives it back.
func (s *readSlots) acquire(addr netip.Prefix) bool {
	if s.perAddress <= 0 || !addr.IsValid() {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active[addr] >= s.perAddress {
		return false
	}
	s.active[addr]++
	return true
}

func (s *readSlots) release(addr netip.Prefix) {
	if s.perAddress <= 0 || !addr.IsValid() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active[addr] <= 1 {
		delete(s.active, addr)
		return
	}
	s.active[addr]--
}

func tooManyReads(retryAfter time.Duration) *rejection {
	return &rejection{status: http.StatusTooManyRequests, reason: reasonTooManyReads,
		message: "too many request bodies being read from this address, retry later", retryAfter: retryAfter}
}

func serverBusy(retryAfter time.Duration) *rejection {
	return &rejection{status: http.StatusServiceUnavailable, reason: reasonServerBusy,
		message: "too many request bodies in flight, retry later", retryAfter: retryAfter}
}

func bodyTooLarge(limit int64) *rejection {
	return &rejection{status: http.StatusRequestEntityTooLarge, reason: reasonBodyTooLarge, message: fmt.Sprintf("body larger than %d bytes", limit)}
}

func readFailed(err error) *rejection {
	return &rejection{status: http.StatusBadRequest, reason: reasonReadError, message: "reading the body failed", detail: err.Error()}
}
