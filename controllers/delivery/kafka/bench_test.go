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
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"k8s.io/apimachinery/pkg/types"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/delivery"
	"github.com/customer-operator/customer-operator/test/benchutil"
)

// benchConcurrency is the number of goroutines delivering at once, as a
// sink's workers would.
const benchConcurrency = 16

// BenchmarkSenderAgainstRawProduce compares the sender's Deliver with a bare
// franz-go ProduceSync of the same events (same acks, same idempotent
// producer), at the same concurrency, against one kfake cluster: "raw"
// encodes each event as any producer of it must (delivery.Encode, the same
// key and headers), "preencoded" sends records encoded before the clock
// starts, the client's bare cost. Each of b.N rounds delivers 512 events per
// contender, in turn.
//
//	go test ./controllers/delivery/kafka -run '^$' -bench SenderAgainstRawProduce -benchtime 20x
func BenchmarkSenderAgainstRawProduce(b *testing.B) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, topic))
	if err != nil {
		b.Fatal(err)
	}
	defer cluster.Close()
	addrs := cluster.ListenAddrs()
	cfg := Config{Brokers: addrs, Topic: topic}
	evs := make([]delivery.Event, 4096)
	encoded := make([]*kgo.Record, len(evs))
	for i := range evs {
		n := strconv.Itoa(i)
		evs[i] = upsert(customer("c"+n, types.UID("uid-"+n), 1, "c"+n+"@example.com"))
		recs, err := records(cfg, evs[i])
		if err != nil {
			b.Fatal(err)
		}
		encoded[i] = recs[0]
	}

	s, err := New(cfg, allowAll)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	// Both connected, with a producer ID, before the clock starts.
	if res := s.Deliver(context.Background(), evs[0]); res.Err != nil {
		b.Fatal(res.Err)
	}
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Key: encoded[0].Key, Value: encoded[0].Value}).FirstErr(); err != nil {
		b.Fatal(err)
	}

	benchutil.Interleaved(b, 512, benchConcurrency, []string{"sender", "raw", "preencoded"}, []func(int) error{
		func(i int) error { return s.Deliver(context.Background(), evs[i%len(evs)]).Err },
		func(i int) error {
			ev := evs[i%len(evs)]
			body, contentType, err := delivery.Encode(crmv1alpha1.FormatCloudEvents, nil, ev)
			if err != nil {
				return err
			}
			a := delivery.CloudEventsAttributesOf(ev)
			return cl.ProduceSync(context.Background(), &kgo.Record{Key: []byte(ev.Customer.UID), Value: body, Timestamp: ev.Time,
				Headers: []kgo.RecordHeader{
					{Key: "ce_specversion", Value: []byte(a.SpecVersion)},
					{Key: "ce_id", Value: []byte(a.ID)},
					{Key: "ce_source", Value: []byte(a.Source)},
					{Key: "ce_type", Value: []byte(a.Type)},
					{Key: "ce_subject", Value: []byte(a.Subject)},
					{Key: "ce_time", Value: []byte(a.Time)},
					{Key: "content-type", Value: []byte(contentType)},
				}}).FirstErr()
		},
		func(i int) error {
			r := encoded[i%len(encoded)]
			return cl.ProduceSync(context.Background(), &kgo.Record{Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp}).FirstErr()
		},
	})
}
