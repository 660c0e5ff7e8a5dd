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

// readBody reads a request body of at most limit bytes within the budget. With
// a Content-Length (already known not to exceed limit) the whole length is
// reserved up front and read into a buffer of exactly that size; without one the
// buffer grows by doubling, each growth reserved before it is made. done gives
// the reservation back; the caller calls it once it no longer needs the body.
func (b *bodyBudget) readBody(r *http.Request, limit int64, retryAfter time.Duration) (body []byte, done func(), rej *rejection) {
	if n := r.ContentLength; n >= 0 {
		if !b.reserve(n) {
			return nil, nil, serverBusy(retryAfter)
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			b.release(n)
			return nil, nil, readFailed(err)
		}
		return buf, func() { b.release(n) }, nil
	}

	var reserved int64
	done = func() { b.release(reserved) }
	size := min(int64(64<<10), limit+1)
	if !b.reserve(size) {
		return nil, nil, serverBusy(retryAfter)
	}
	reserved = size
	buf := make([]byte, 0, size)
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > limit {
				done()
				return nil, nil, bodyTooLarge(limit)
			}
			// Both buffers exist while the bytes are copied: reserve the new one
			// before, give the old one back after.
			next := min(2*int64(cap(buf)), limit+1)
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
	if int64(len(buf)) > limit {
		done()
		return nil, nil, bodyTooLarge(limit)
	}
	return buf, done, nil
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
