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

// Package delivery sends Customer changes to CustomerSinks. Both sink formats,
// Standard Webhooks and CloudEvents, share one path (TargetFromSink, NewEvent,
// Client.Deliver) so that transport, signing, timeouts and the reading of answers
// cannot drift apart between them.
//
// The package makes exactly one attempt per call and never sleeps: the Customer
// controller owns retries and backoff, because it is the one that can persist where
// each sink stands (status.sinks[]) and survive a restart. Result says enough for
// it to decide: whether the sink took the event, asked to be left alone for a
// while (RetryAfter) or is gone for good (Gone).
//
// The Client's AddressPolicy decides where deliveries may connect, on the address
// actually dialled, so DNS rebinding cannot get past it; a refusal is an
// *AddressNotAllowedError. Result.Err never quotes what a sink sent (its body,
// reason phrase or anything a TLS or HTTP parsing error would echo): callers put
// it in status and Events, which whoever may create a sink may read.
package delivery
