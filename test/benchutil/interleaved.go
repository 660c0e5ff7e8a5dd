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

package benchutil

import "testing"

// Interleaved runs b.N rounds of blocks, one per contender, each block
// delivering blockSize events from workers goroutines, the contenders' order
// turning each round, so that noise on a shared machine falls on every
// contender alike. It reports each contender's median ns per event over the
// rounds, and the median per-round throughput ratio of the first against each
// other ("ratio-vs-NAME": above 1, the first is faster).
func Interleaved(b *testing.B, blockSize, workers int, names []string, contenders []func(i int) error) {
	b.Helper()
	perEvent := make([][]float64, len(contenders))
	ratios := make([][]float64, len(contenders))
	b.ResetTimer()
	for round := range b.N {
		took := make([]float64, len(contenders))
		for k := range contenders {
			c := (k + round) % len(contenders)
			d, err := Parallel(blockSize, workers, contenders[c])
			if err != nil {
				b.Errorf("%s: %v", names[c], err)
			}
			took[c] = float64(d.Nanoseconds())
		}
		for c := range contenders {
			perEvent[c] = append(perEvent[c], took[c]/float64(blockSize))
			ratios[c] = append(ratios[c], took[c]/took[0])
		}
	}
	b.StopTimer()
	for c, name := range names {
		b.ReportMetric(Median(perEvent[c]), name+"-ns/event")
		if c > 0 {
			b.ReportMetric(Median(ratios[c]), "ratio-vs-"+name)
		}
	}
}
