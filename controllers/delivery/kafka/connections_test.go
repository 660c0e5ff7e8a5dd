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
	"errors"
	"testing"
	"time"

	"github.com/customer-operator/customer-operator/controllers/delivery"
	"github.com/customer-operator/customer-operator/controllers/delivery/deliverytest"
)

func TestConnectionLimitsHoldTheSinksConnections(t *testing.T) {
	cluster := newCluster(t)
	createCompactedTopic(t, cluster, 1)
	limits := delivery.NewConnectionLimits(8, 8)
	others := deliverytest.HoldConnections(t, limits, "tenant", 8)
	s, err := New(Config{Brokers: cluster.ListenAddrs(), Topic: topic, Timeout: time.Second}, allowAll,
		WithConnectionLimits(limits, "tenant"))
	if err != nil {
		t.Fatal(err)
	}
	res := s.Deliver(context.Background(), upsert(customer("ada", "uid-ada", 1, "ada@example.com")))
	var limit *delivery.ConnectionLimitError
	if !errors.As(res.Err, &limit) || res.Refused || !limit.PerNamespace {
		t.Fatalf("Err = %v (refused %v), want the namespace's ConnectionLimitError failing the sink", res.Err, res.Refused)
	}
	// The namespace's other connections close: the sink connects.
	for _, c := range others {
		_ = c.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		res = s.Deliver(context.Background(), upsert(customer("ada", "uid-ada", 1, "ada@example.com")))
		if res.Err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no delivery once the namespace had room: %v", res.Err)
		}
	}
	if _, n := limits.Open("tenant"); n < 1 {
		t.Fatalf("the sink's connections are not counted: %d", n)
	}
	// Closed, it gives every slot back.
	s.Close()
	if total, n := limits.Open("tenant"); total != 0 || n != 0 {
		t.Fatalf("a closed sink still holds %d connections (%d in all)", n, total)
	}
}
