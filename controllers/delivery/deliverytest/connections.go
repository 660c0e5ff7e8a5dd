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

// Package deliverytest holds what the tests of the sink types share.
package deliverytest

import (
	"context"
	"net"
	"testing"

	"github.com/customer-operator/customer-operator/controllers/delivery"
)

// HoldConnections takes n of namespace's connection slots in l, as another
// sink's open connections would. Closing a returned connection gives its slot
// back.
func HoldConnections(t testing.TB, l *delivery.ConnectionLimits, namespace string, n int) []net.Conn {
	t.Helper()
	dial := l.Bound(namespace, func(context.Context, string, string) (net.Conn, error) {
		a, b := net.Pipe()
		_ = b.Close()
		return a, nil
	})
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := dial(context.Background(), "tcp", "elsewhere:1")
		if err != nil {
			t.Fatalf("holding a connection slot of %s: %v", namespace, err)
		}
		conns = append(conns, c)
	}
	return conns
}
