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

package kafka

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"k8s.io/apimachinery/pkg/types"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/delivery"
)

// benchConcurrency is the number of goroutines delivering at once, as a
// sink's workers would.
const benchConcurrency = 16

// benchEvents are distinct Customers' upserts, so that records spread over
// the partitions as a sink's do.
func benchEvents(n int) []delivery.Event {
	evs := make([]delivery.Event, n)
	for i := range evs {
		evs[i] = upsert(customer("c"+strconv.Itoa(i), types.UID("uid-"+strconv.Itoa(i)), 1, "c"+strconv.Itoa(i)+"@example.com"))
	}
	return evs
}

// BenchmarkSenderAgainstRawProduce compares the sender's Deliver with a bare
// franz-go ProduceSync of the same events (same acks, same idempotent
// producer), at the same concurrency, against one kfake cluster: "raw"
// encodes each event as any producer of it must (delivery.Encode, the same
// key and headers), "raw-preencoded" sends records encoded before the clock
// starts, the client's bare cost.
//
//	go test ./controllers/delivery/kafka -run '^$' -bench SenderAgainstRawProduce -count 5
func BenchmarkSenderAgainstRawProduce(b *testing.B) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, topic))
	if err != nil {
		b.Fatal(err)
	}
	defer cluster.Close()
	addrs := cluster.ListenAddrs()
	cfg := Config{Brokers: addrs, Topic: topic}
	evs := benchEvents(4096)

	b.Run("sender", func(b *testing.B) {
		s, err := New(cfg, allowAll)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		// Connected, with a producer ID, before the clock starts, as the raw
		// client below.
		if res := s.Deliver(context.Background(), evs[0]); res.Err != nil {
			b.Fatal(res.Err)
		}
		var next atomic.Int64
		b.SetParallelism(max(1, benchConcurrency/runtimeProcs()))
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				ev := evs[int(next.Add(1))%len(evs)]
				if res := s.Deliver(context.Background(), ev); res.Err != nil {
					b.Error(res.Err)
					return
				}
			}
		})
	})

	rawRun := func(preencoded bool) func(b *testing.B) {
		return func(b *testing.B) {
			cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()))
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			encoded := make([]*kgo.Record, len(evs))
			for i, ev := range evs {
				recs, err := records(cfg, ev)
				if err != nil {
					b.Fatal(err)
				}
				encoded[i] = recs[0]
			}
			if err := cl.ProduceSync(context.Background(), &kgo.Record{Key: encoded[0].Key, Value: encoded[0].Value}).FirstErr(); err != nil {
				b.Fatal(err)
			}
			var next atomic.Int64
			b.SetParallelism(max(1, benchConcurrency/runtimeProcs()))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(next.Add(1)) % len(evs)
					r := encoded[i]
					rec := &kgo.Record{Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp}
					if !preencoded {
						ev := evs[i]
						body, contentType, err := delivery.Encode(crmv1alpha1.FormatCloudEvents, nil, ev)
						if err != nil {
							b.Error(err)
							return
						}
						a := delivery.CloudEventsAttributesOf(ev)
						rec = &kgo.Record{Key: []byte(ev.Customer.UID), Value: body, Timestamp: ev.Time, Headers: []kgo.RecordHeader{
							{Key: "ce_specversion", Value: []byte(a.SpecVersion)},
							{Key: "ce_id", Value: []byte(a.ID)},
							{Key: "ce_source", Value: []byte(a.Source)},
							{Key: "ce_type", Value: []byte(a.Type)},
							{Key: "ce_subject", Value: []byte(a.Subject)},
							{Key: "ce_time", Value: []byte(a.Time)},
							{Key: "content-type", Value: []byte(contentType)},
						}}
					}
					if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
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
