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
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/apimachinery/pkg/types"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/delivery"
	"github.com/customer-operator/customer-operator/test/benchutil"
)

// benchConcurrency is the number of goroutines delivering at once, as a
// sink's workers would.
const benchConcurrency = 16

// BenchmarkSenderAgainstRawPublish compares the sender's Deliver (no KV
// bucket) with a bare js.PublishMsg of the same events (same Nats-Msg-Id,
// same expected stream), at the same concurrency, against one embedded
// server: "raw" encodes each event as any publisher of it must
// (delivery.Encode), "preencoded" sends messages encoded before the clock
// starts, the client's bare cost. Every event is a new generation, so that
// none is short-cut by de-duplication. Each of b.N rounds delivers 512 events
// per contender, in turn.
//
//	go test ./controllers/delivery/jetstream -run '^$' -bench SenderAgainstRawPublish -benchtime 20x
func BenchmarkSenderAgainstRawPublish(b *testing.B) {
	srv := startServer(b, 0, b.TempDir(), nil)
	setUp(b, srv.ClientURL())
	var generation atomic.Int64
	event := func() delivery.Event {
		g := generation.Add(1)
		i := strconv.FormatInt(g%4096, 10)
		return upsert(customer("c"+i, types.UID("uid-"+i), g, "c"+i+"@example.com"))
	}
	s := newSender(b, Config{URL: srv.ClientURL(), Stream: stream}, allowAll)
	if res := s.Deliver(context.Background(), event()); res.Err != nil {
		b.Fatal(res.Err)
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
	publish := func(m *nats.Msg) error {
		_, err := js.PublishMsg(context.Background(), m, jetstream.WithExpectStream(stream))
		return err
	}
	// Messages for the preencoded contender, made before the clock starts;
	// enough for the rounds asked.
	pre := make([]*nats.Msg, 512*(b.N+1))
	for i := range pre {
		m, err := s.Message(event())
		if err != nil {
			b.Fatal(err)
		}
		pre[i] = m
	}
	var preNext atomic.Int64
	if err := publish(pre[preNext.Add(1)-1]); err != nil {
		b.Fatal(err)
	}

	benchutil.Interleaved(b, 512, benchConcurrency, []string{"sender", "raw", "preencoded"}, []func(int) error{
		func(int) error { return s.Deliver(context.Background(), event()).Err },
		func(int) error {
			ev := event()
			body, contentType, err := delivery.Encode(crmv1alpha1.FormatCloudEvents, nil, ev)
			if err != nil {
				return err
			}
			m := nats.NewMsg("customers." + ev.Customer.Namespace + "." + ev.Customer.Name)
			m.Data = body
			m.Header.Set(jetstream.MsgIDHeader, ev.ID)
			m.Header.Set("Content-Type", contentType)
			return publish(m)
		},
		func(int) error { return publish(pre[preNext.Add(1)-1]) },
	})
}
