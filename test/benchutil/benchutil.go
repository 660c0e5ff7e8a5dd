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

// Package benchutil holds what the benchmarks share: spreading a fixed amount of
// work over a fixed number of workers, so a measured side and its baseline run
// at exactly the same concurrency, and the medians they quote.
package benchutil

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Parallel runs job(0) … job(n-1) on workers goroutines and returns how long all
// took, and the first error.
func Parallel(n, workers int, job func(i int) error) (time.Duration, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := job(i); err != nil {
					once.Do(func() { firstErr = err })
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start), firstErr
}

// Median is the middle of xs (the mean of the two middle values when even; 0
// when there are none): the figure the benchmarks quote, robust to a noisy
// round on a shared machine.
func Median[T int64 | float64](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Rounded is xs rounded to whole numbers, for printing every round's rate.
func Rounded(xs []float64) []int {
	out := make([]int, len(xs))
	for i, x := range xs {
		out[i] = int(x + 0.5)
	}
	return out
}
