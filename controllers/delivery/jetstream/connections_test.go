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
	"errors"
	"testing"
	"time"

	"github.com/customer-operator/customer-operator/controllers/delivery"
	"github.com/customer-operator/customer-operator/controllers/delivery/deliverytest"
)

func TestConnectionLimitsHoldTheSinksConnection(t *testing.T) {
	srv := startServer(t, 0, t.TempDir(), nil)
	setUp(t, srv.ClientURL())
	limits := delivery.NewConnectionLimits(1, 1)
	// Another namespace's sink holds the only connection.
	other := deliverytest.HoldConnections(t, limits, "other", 1)[0]
	s, err := New(Config{URL: srv.ClientURL(), Stream: stream, Timeout: time.Second}, allowAll, WithConnectionLimits(limits, "tenant"))
	if err != nil {
		t.Fatal(err)
	}
	res := s.Deliver(context.Background(), upsert(customer("ada", "uid-ada", 1, "ada@example.com")))
	var limit *delivery.ConnectionLimitError
	if !errors.As(res.Err, &limit) || res.Refused || limit.PerNamespace {
		t.Fatalf("Err = %v (refused %v), want the total ConnectionLimitError failing the sink", res.Err, res.Refused)
	}
	_ = other.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res = s.Deliver(context.Background(), upsert(customer("ada", "uid-ada", 1, "ada@example.com")))
		if res.Err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no delivery once a connection was free: %v", res.Err)
		}
	}
	if total, n := limits.Open("tenant"); total != 1 || n != 1 {
		t.Fatalf("%d connections of the sink counted (%d in all), want its one", n, total)
	}
	s.Close()
	if total, _ := limits.Open("tenant"); total != 0 {
		t.Fatalf("a closed sink still holds %d connections", total)
	}
}
