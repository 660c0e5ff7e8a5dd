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

package jetstream

import (
	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/apimachinery/pkg/types"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/delivery"
)

// benchConcurrency is the number of goroutines delivering at once, as a
// sink's workers would.
const benchConcurrency = 16

// BenchmarkSenderAgainstRawPublish compares the sender's Deliver (no KV
// bucket) with a bare js.PublishMsg of the same events (same Nats-Msg-Id,
// same expected stream), at the same concurrency, against one embedded
// server: "raw" encodes each event as any publisher of it must
// (delivery.Encode), "raw-preencoded" sends messages encoded before the clock
// starts, the client's bare cost. Every event is a new generation, so that
// none is short-cut by de-duplication.
//
//	go test ./controllers/delivery/jetstream -run '^$' -bench SenderAgainstRawPublish -count 5
func BenchmarkSenderAgainstRawPublish(b *testing.B) {
	srv := startServer(b, 0, b.TempDir(), nil)
	setUp(b, srv.ClientURL())
	parallelism := max(1, benchConcurrency/runtime.GOMAXPROCS(0))
	// Generations go on from one sub-benchmark run to the next, so no message
	// repeats an earlier Nats-Msg-Id.
	var generation atomic.Int64
	event := func() delivery.Event {
		g := generation.Add(1)
		i := strconv.FormatInt(g%4096, 10)
		return upsert(customer("c"+i, types.UID("uid-"+i), g, "c"+i+"@example.com"))
	}

	b.Run("sender", func(b *testing.B) {
		s := newSender(b, Config{URL: srv.ClientURL(), Stream: stream}, allowAll)
		if res := s.Deliver(context.Background(), event()); res.Err != nil {
			b.Fatal(res.Err)
		}
		b.SetParallelism(parallelism)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if res := s.Deliver(context.Background(), event()); res.Err != nil {
					b.Error(res.Err)
					return
				}
			}
		})
	})

	rawRun := func(preencoded bool) func(b *testing.B) {
		return func(b *testing.B) {
			encoder := newSender(b, Config{URL: srv.ClientURL(), Stream: stream}, allowAll)
			evs := make([]delivery.Event, b.N+1)
			msgs := make([]*nats.Msg, b.N+1)
			for i := range msgs {
				evs[i] = event()
				m, err := encoder.Message(evs[i])
				if err != nil {
					b.Fatal(err)
				}
				msgs[i] = m
			}
			nc, err := nats.Connect(srv.ClientURL())
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := js.PublishMsg(context.Background(), msgs[b.N], jetstream.WithExpectStream(stream)); err != nil {
				b.Fatal(err)
			}
			var next atomic.Int64
			b.SetParallelism(parallelism)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1) - 1
					m := msgs[i]
					if !preencoded {
						ev := evs[i]
						body, contentType, err := delivery.Encode(crmv1alpha1.FormatCloudEvents, nil, ev)
						if err != nil {
							b.Error(err)
							return
						}
						m = nats.NewMsg("customers." + ev.Customer.Namespace + "." + ev.Customer.Name)
						m.Data = body
						m.Header.Set(jetstream.MsgIDHeader, ev.ID)
						m.Header.Set("Content-Type", contentType)
					}
					if _, err := js.PublishMsg(context.Background(), m, jetstream.WithExpectStream(stream)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
	}
	b.Run("raw", rawRun(false))
	b.Run("raw-preencoded", rawRun(true))
}
