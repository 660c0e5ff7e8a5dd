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

// Package providers holds what every provider package implements: authenticate a
// webhook request and decode it into provider-neutral customer events. The shared
// ingest path (identity, de-duplication, order, tombstones) lives in webhookserver
// and never looks at a provider's wire format.
package providers

import (
	"fmt"
	"net/http"
	"time"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
)

// Action is what an event does to a customer.
type Action string

const (
	// ActionUpsert creates the customer or replaces its record.
	ActionUpsert Action = "upsert"
	// ActionDelete turns the customer into a tombstone (lifecycle Deleted).
	ActionDelete Action = "delete"
)

// Event is one customer event, decoded and authenticated.
type Event struct {
	// ID identifies the event for de-duplication (stable across the provider's retries).
	ID string
	// Type is the provider's event type, e.g. "customer.updated".
	Type string
	// Time is when the provider says the event happened; it orders events.
	Time time.Time
	// Action says whether the event upserts or deletes.
	Action Action
	// Customer is the mapped record. Provider and ExternalID are always set.
	Customer crmv1alpha1.CustomerSpec
	// Fields name the request's fields that carried ID, Type and Time (e.g.
	// "events[2].created_at"), so that a rejection of the event names what the
	// sender sent. An empty name means the field is not the sender's (the
	// provider derives the value).
	Fields EventFields
	// Rejection, when set, is why the event cannot be applied although the
	// request was authentic (a generic source's expression failed on it): the
	// ingest path rejects it and applies the request's other events.
	Rejection *Error
}

// EventFields name where an event's identity and time were in the request.
type EventFields struct {
	ID, Type, Time string
}

// Request is what a provider sees of one delivery.
type Request struct {
	Header http.Header
	// Body is the raw body, already bounded by the server's size limit.
	Body []byte
	// Secret is the data of the source's Secret.
	Secret map[string][]byte
	// Now and Tolerance bound signed timestamps.
	Now       time.Time
	Tolerance time.Duration
	// MaxEvents bounds the events (customer events or not) one request may
	// carry; a decoder stops at the first one past it and Parse answers
	// TooManyEvents. Zero means DefaultMaxEvents.
	MaxEvents int
}

// DefaultMaxEvents applies when a Request carries no MaxEvents, so a caller that
// forgets to set one still decodes a bounded number of events.
const DefaultMaxEvents = 1000

// EventLimit returns the request's MaxEvents, or DefaultMaxEvents when unset.
func EventLimit(r *Request) int {
	if r.MaxEvents <= 0 {
		return DefaultMaxEvents
	}
	return r.MaxEvents
}

// Result is what a request carried.
type Result struct {
	// Events are the customer events, in the order the request carried them.
	Events []Event
	// Ignored counts the valid events that are not customer events.
	Ignored int
}

// Provider authenticates and decodes one provider's webhooks.
type Provider interface {
	// Name is the provider's name in CustomerSource.spec.provider.
	Name() crmv1alpha1.Provider
	// ValidateSecret says whether a Secret's data can authenticate this provider's
	// requests; the error names the missing or unusable key.
	ValidateSecret(data map[string][]byte) error
	// Parse authenticates the request and decodes its customer events. Errors are
	// *Error values carrying the HTTP answer.
	Parse(req *Request) (*Result, error)
}

// HeaderAuthenticator is implemented by providers whose credentials may travel in
// headers (HTTP Basic, bearer tokens). The server calls it before it reads the
// body, so that a request with missing or wrong header credentials is refused
// without buffering its body, and counts against no source's rate limit.
type HeaderAuthenticator interface {
	// AuthenticateHeader checks the header credentials the Secret's data
	// configures. It returns an *Error with the provider's answer (401, or
	// SmarterPay's 498) when they are missing or wrong. Otherwise complete says
	// whether the header alone authenticated the request; when it is false the
	// body carries a signature that Parse verifies. Parse checks the header
	// credentials again, so a provider stays correct on its own.
	AuthenticateHeader(header http.Header, secret map[string][]byte) (complete bool, err *Error)
}

// AuthFailure says whether a rejection reason is a failed authentication: the
// server limits those per client address, and answers them without detail.
func AuthFailure(reason string) bool {
	switch reason {
	case ReasonUnauthorized, ReasonTimestamp, ReasonDecrypt:
		return true
	}
	return false
}

// Simulator signs (and, for Phasio, encrypts) a plaintext payload exactly as the
// provider does. The provider simulator under hack/ and the tests use it.
type Simulator interface {
	Prepare(plaintext []byte, secret map[string][]byte, now time.Time) (body []byte, header http.Header, err error)
}

// Rejection reasons, used as the "reason" label of the rejection metrics and in logs.
const (
	ReasonUnauthorized = "unauthorized"
	ReasonTimestamp    = "timestamp"
	ReasonDecrypt      = "decrypt"
	ReasonMalformed    = "malformed"
	ReasonMissingField = "missing_field"
	// ReasonTooManyEvents is a request with more events than the server accepts
	// in one request.
	ReasonTooManyEvents = "too_many_events"
	// ReasonTooManyItems is a customer event with a list longer than the
	// Customer API allows (Phasio's contacts or addresses).
	ReasonTooManyItems = "too_many_items"
)

// Error is a rejection with its HTTP answer.
type Error struct {
	// Status is the HTTP status code to answer.
	Status int
	// Reason is a short machine-readable reason (one of the Reason constants).
	Reason string
	// Field names the offending JSON field, when there is one.
	Field string
	// Message is safe to return to the sender and to log: it never holds a secret.
	Message string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s (field %q)", e.Message, e.Field)
	}
	return e.Message
}

// Unauthorized is a failed authentication (401).
func Unauthorized(format string, args ...any) *Error {
	return &Error{Status: http.StatusUnauthorized, Reason: ReasonUnauthorized, Message: fmt.Sprintf(format, args...)}
}

// Malformed is a body that cannot be parsed (400).
func Malformed(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Reason: ReasonMalformed, Field: field, Message: fmt.Sprintf(format, args...)}
}

// MissingField is a customer event without a required field (400).
func MissingField(field string) *Error {
	return &Error{Status: http.StatusBadRequest, Reason: ReasonMissingField, Field: field, Message: "customer event without " + field}
}

// TooManyEvents is a request carrying more than limit events (413): the decoder
// stops at the first one past the limit, before decoding it.
func TooManyEvents(field string, limit int) *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Reason: ReasonTooManyEvents, Field: field,
		Message: fmt.Sprintf("more than %d events in one request", limit)}
}

// TooManyItems is a customer event whose list field holds more than limit items
// (422): the Customer API would refuse it, so it is refused while decoding,
// before the rest of the list is allocated.
func TooManyItems(field string, limit int) *Error {
	return &Error{Status: http.StatusUnprocessableEntity, Reason: ReasonTooManyItems, Field: field,
		Message: fmt.Sprintf("more than %d items", limit)}
}
