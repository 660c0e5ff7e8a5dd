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
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/customer-operator/customer-operator/webhookserver/providers/gettrx"
)

// Sender plays GETTRX: it posts signed customer.created events, each for a new
// customer, and retries like a provider does on 429, 502, 503, 504 and on
// connection errors, honouring Retry-After. Each attempt goes to the next of
// Targets, as an ingress in front of several webhook servers would route it.
type Sender struct {
	// Targets are webhook server base URLs, e.g. "http://127.0.0.1:9292".
	Targets []string
	// Namespace and Source name the CustomerSource.
	Namespace, Source string
	// Secret is the source's Secret data.
	Secret map[string][]byte
	// RetryFor bounds the retries of one event, from its first attempt.
	RetryFor time.Duration
	// Timeout bounds one attempt.
	Timeout time.Duration

	next   atomic.Uint64
	client *http.Client
	once   sync.Once
}

// Result is what happened to one event.
type Result struct {
	EventID    string
	CustomerID string
	// Sent is the first attempt's start; Acked the 2xx's arrival (zero without one).
	Sent, Acked time.Time
	// Status is the last answer's status, 0 for a connection error.
	Status   int
	Attempts int
	// Unavailable counts 503 answers; NoRetryAfter those of them without Retry-After.
	Unavailable, NoRetryAfter int
	// UnavailableAt are the times of the 503 answers.
	UnavailableAt []time.Time
	Err           error
}

// OK is true when the event was acknowledged with a 2xx.
func (r *Result) OK() bool { return r.Status >= 200 && r.Status < 300 }

// Event is the plaintext of a GETTRX customer.created event for a new customer.
func Event(eventID, customerID string, created time.Time) []byte {
	b, _ := json.Marshal(map[string]any{
		"id": eventID, "object": "event", "type": gettrx.EventCustomerCreated, "created": strconv.FormatInt(created.Unix(), 10),
		"attemptId": "wha_" + eventID,
		"data": map[string]any{"object": map[string]any{
			"id": customerID, "object": "customer", "name": "Customer " + customerID, "email": customerID + "@example.com",
			"phone": "+44 20 7946 0000", "description": "load test",
			"address": map[string]any{"line1": "1 Test Street", "city": "London", "postalCode": "N1 9GU", "country": "GB"},
		}},
	})
	return b
}

func (s *Sender) init() {
	s.once.Do(func() {
		if s.Timeout == 0 {
			s.Timeout = 30 * time.Second
		}
		s.client = &http.Client{Timeout: s.Timeout, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	})
}

// Send posts one event until it is acknowledged, refused for good, or RetryFor passes.
func (s *Sender) Send(ctx context.Context, eventID, customerID string) *Result {
	s.init()
	res := &Result{EventID: eventID, CustomerID: customerID, Sent: time.Now()}
	deadline := res.Sent.Add(s.RetryFor)
	plaintext := Event(eventID, customerID, res.Sent)
	backoff := 200 * time.Millisecond
	for {
		res.Attempts++
		target := s.Targets[int(s.next.Add(1)-1)%len(s.Targets)]
		status, header, err := s.post(ctx, target, plaintext)
		res.Status, res.Err = status, err
		if err == nil && status >= 200 && status < 300 {
			res.Acked = time.Now()
			return res
		}
		wait := backoff
		if status == http.StatusServiceUnavailable {
			res.Unavailable++
			res.UnavailableAt = append(res.UnavailableAt, time.Now())
			if header.Get("Retry-After") == "" {
				res.NoRetryAfter++
			}
		}
		if ra, err := strconv.Atoi(header.Get("Retry-After")); err == nil && ra > 0 {
			// A provider honours Retry-After; capped so a bounded test stays bounded.
			wait = min(time.Duration(ra)*time.Second, 5*time.Second)
		}
		retryable := err != nil || status == http.StatusTooManyRequests || status == http.StatusBadGateway ||
			status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
		if !retryable || time.Now().Add(wait).After(deadline) {
			if err == nil {
				res.Err = fmt.Errorf("answered %d", status)
			}
			return res
		}
		select {
		case <-ctx.Done():
			res.Err = ctx.Err()
			return res
		case <-time.After(wait):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

func (s *Sender) post(ctx context.Context, target string, plaintext []byte) (int, http.Header, error) {
	// Signed again for every attempt, as a provider's retry is: fresh timestamp.
	body, header, err := gettrx.New().Prepare(plaintext, s.Secret, time.Now())
	if err != nil {
		return 0, nil, fmt.Errorf("signing: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target+"/hooks/"+s.Namespace+"/"+s.Source, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header = header
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, http.Header{}, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	return resp.StatusCode, resp.Header, nil
}

// Load sends rate events per second for d, each a new customer whose external id
// starts with prefix, and returns every event's result once all are settled.
func (s *Sender) Load(ctx context.Context, prefix string, rate float64, d time.Duration) []*Result {
	n := int(rate * d.Seconds())
	results := make([]*Result, n)
	var wg sync.WaitGroup
	start := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	for i := range n {
		// Paced from the start, not from the previous send: a slow answer does not
		// slow the offered load, as with a real provider.
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			select {
			case <-ctx.Done():
				results = results[:i]
				wg.Wait()
				return results
			case <-time.After(wait):
			}
		}
		wg.Go(func() {
			id := fmt.Sprintf("%s%05d", prefix, i)
			results[i] = s.Send(ctx, "evt_"+id, "cus_"+id)
		})
	}
	wg.Wait()
	return results
}
