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

import "context"

// Sender delivers the events of one sink to its external system: an HTTP
// receiver, a database table, a broker's topic or stream. The engine is the same
// for every type; only the Sender differs. A Sender is safe for concurrent use
// by the sink's workers and holds the sink's connections until Close.
type Sender interface {
	// Deliver sends one event and reports how it went. Result.Err is nil only
	// once the system has durably accepted the event; Result.Refused marks a
	// rejection of this Customer's content rather than of the sink.
	Deliver(ctx context.Context, ev Event) Result
	// Close releases the sink's connections; the engine calls it when the sink
	// changes or goes away, after its deliveries in flight have returned.
	Close()
}

// GroupSender is a Sender that delivers several events in one call, for
// systems that write many records as cheaply as one (a database's batch): the
// engine then hands it a few of a sink's queued Customers at once, and no
// goroutine waits for each.
type GroupSender interface {
	Sender
	// DeliverGroup delivers evs and reports each one's result, in their order;
	// each result means what Deliver's would.
	DeliverGroup(ctx context.Context, evs []Event) []Result
}

// NewHTTPSender is the Sender of an HTTP sink: deliveries through the shared
// Client, whose connection pools outlive any one sink, so Close leaves them.
func NewHTTPSender(c *Client, t *Target) Sender {
	return httpSender{client: c, target: t}
}

type httpSender struct {
	client *Client
	target *Target
}

func (s httpSender) Deliver(ctx context.Context, ev Event) Result {
	return s.client.Deliver(ctx, s.target, ev)
}

func (httpSender) Close() {}
