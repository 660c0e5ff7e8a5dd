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

package engine

import (
	"errors"
	"testing"
	"time"

	"github.com/customer-operator/customer-operator/controllers/delivery"
)

func TestClassify(t *testing.T) {
	failure := errors.New("failed")
	for _, tc := range []struct {
		name string
		res  delivery.Result
		want class
	}{
		{"2xx", delivery.Result{StatusCode: 204}, acknowledged},
		{"400 is the content", delivery.Result{StatusCode: 400, Err: failure}, refused},
		{"422 is the content", delivery.Result{StatusCode: 422, Err: failure}, refused},
		{"408 is the sink", delivery.Result{StatusCode: 408, Err: failure}, failed},
		{"409 is the sink", delivery.Result{StatusCode: 409, Err: failure}, failed},
		{"429 without Retry-After", delivery.Result{StatusCode: 429, Err: failure}, failed},
		{"429 with Retry-After", delivery.Result{StatusCode: 429, RetryAfter: time.Minute, Err: failure}, throttled},
		{"503 with Retry-After", delivery.Result{StatusCode: 503, RetryAfter: time.Second, Err: failure}, throttled},
		{"500", delivery.Result{StatusCode: 500, Err: failure}, failed},
		{"302 is not followed", delivery.Result{StatusCode: 302, Err: failure}, failed},
		{"a refused record is the content", delivery.Result{Refused: true, Err: failure}, refused},
		{"a broker down is the sink", delivery.Result{Err: failure}, failed},
		{"no answer", delivery.Result{Err: failure}, failed},
		{"410", delivery.Result{StatusCode: 410, Gone: true, Err: failure}, gone},
	} {
		if got := classify(tc.res); got != tc.want {
			t.Errorf("%s: class %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestJitteredBackoffDoublesWithinBounds(t *testing.T) {
	base, limit := time.Second, 5*time.Minute
	for n := 1; n <= 12; n++ {
		want := min(base<<(n-1), limit)
		for range 200 {
			d := jittered(base, limit, n)
			if d < want/2 || d > want {
				t.Fatalf("after %d failures: %s, want within [%s, %s]", n, d, want/2, want)
			}
		}
	}
	seen := map[time.Duration]bool{}
	for range 50 {
		seen[jittered(base, limit, 4)] = true
	}
	if len(seen) < 10 {
		t.Errorf("backoff barely varies: %d distinct values in 50", len(seen))
	}
}
