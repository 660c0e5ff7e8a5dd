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

package controllers

import (
	"context"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/handler"
)

// QueueDrained follows controller-runtime's own queue of a controller: it waits
// while items of any priority are queued, and returns once they are processed.
func TestQueueDrainedFollowsTheControllersQueue(t *testing.T) {
	const name = "queue-drained-test"
	q := priorityqueue.New[string](name)
	defer q.ShutDown()
	low := handler.LowPriority
	q.AddWithOpts(priorityqueue.AddOpts{Priority: &low}, "a", "b")
	q.Add("c")
	// The metrics are updated as the queue's own goroutine takes the adds in.
	deadline := time.Now().Add(5 * time.Second)
	for {
		depth, err := QueueDepth(name)
		if err != nil {
			t.Fatal(err)
		}
		if depth == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue depth %v with 3 items queued", depth)
		}
		time.Sleep(10 * time.Millisecond)
	}

	done := make(chan error, 1)
	go func() { done <- QueueDrained(context.Background(), name, 20*time.Millisecond) }()
	select {
	case err := <-done:
		t.Fatalf("QueueDrained returned (%v) while 3 items were queued", err)
	case <-time.After(200 * time.Millisecond):
	}
	for range 3 {
		item, _ := q.Get()
		q.Done(item)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("QueueDrained did not return once the queue was empty")
	}

	ctx, cancel := context.WithCancel(context.Background())
	q.Add("d")
	cancel()
	if err := QueueDrained(ctx, name, 20*time.Millisecond); err == nil {
		t.Fatal("QueueDrained returned nil for a cancelled wait")
	}
	if depth, _ := QueueDepth("no-such-controller"); depth != 0 {
		t.Fatalf("a controller with no queue has depth %v", depth)
	}
}
