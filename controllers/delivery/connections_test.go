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

package delivery

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
)

func pipeDial(context.Context, string, string) (net.Conn, error) {
	a, b := net.Pipe()
	_ = b.Close()
	return a, nil
}

func TestConnectionLimitsBoundEachNamespaceAndTheTotal(t *testing.T) {
	l := NewConnectionLimits(3, 2)
	dial := func(ns string) (net.Conn, error) {
		return l.Bound(ns, pipeDial)(context.Background(), "tcp", "db:5432")
	}
	a1, err := dial("a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dial("a"); err != nil {
		t.Fatal(err)
	}
	var limit *ConnectionLimitError
	_, err = dial("a")
	if !errors.As(err, &limit) || !limit.PerNamespace || limit.Limit != 2 || limit.Namespace != "a" ||
		!strings.Contains(err.Error(), "--sink-max-connections-per-namespace") {
		t.Fatalf("a third connection of namespace a: %v, want the per-namespace limit of 2", err)
	}
	if _, err := dial("b"); err != nil {
		t.Fatalf("namespace b's first connection: %v", err)
	}
	_, err = dial("b")
	if !errors.As(err, &limit) || limit.PerNamespace || limit.Limit != 3 || !strings.Contains(err.Error(), "--sink-max-connections)") {
		t.Fatalf("a fourth connection: %v, want the total limit of 3", err)
	}
	// A slot comes back once, however often the connection is closed.
	_ = a1.Close()
	_ = a1.Close()
	if total, inA := l.Open("a"); total != 2 || inA != 1 {
		t.Fatalf("after a close: %d open, %d in a; want 2 and 1", total, inA)
	}
	if _, err := dial("b"); err != nil {
		t.Fatalf("after a close: %v", err)
	}
	if _, err := dial("b"); !errors.As(err, &limit) {
		t.Fatalf("a closed connection gave back more than its slot: %v", err)
	}
}

func TestConnectionLimitsGiveBackTheSlotOfAFailedDial(t *testing.T) {
	l := NewConnectionLimits(1, 1)
	refused := errors.New("connection refused")
	for range 3 {
		_, err := l.Bound("a", func(context.Context, string, string) (net.Conn, error) { return nil, refused })(context.Background(), "tcp", "db:5432")
		if !errors.Is(err, refused) {
			t.Fatalf("got %v, want the dial's own error", err)
		}
	}
	if total, inA := l.Open("a"); total != 0 || inA != 0 {
		t.Fatalf("failed dials hold %d slots (%d of a)", total, inA)
	}
}

func TestNilConnectionLimitsBoundNothing(t *testing.T) {
	var l *ConnectionLimits
	for range 100 {
		if _, err := l.Bound("a", pipeDial)(context.Background(), "tcp", "db:5432"); err != nil {
			t.Fatal(err)
		}
	}
}
