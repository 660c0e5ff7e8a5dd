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
	"fmt"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/delivery"
	"github.com/customer-operator/customer-operator/controllers/delivery/jetstream"
	"github.com/customer-operator/customer-operator/controllers/delivery/kafka"
	"github.com/customer-operator/customer-operator/controllers/delivery/postgres"
)

// sinkConfig is a CustomerSink resolved with its Secret for its type: exactly one
// member is set. Both controllers build it to judge the sink; only the engine's
// targets build a Sender from it.
type sinkConfig struct {
	typ      crmv1alpha1.SinkType
	http     *delivery.Target
	postgres *postgres.Config
	kafka    *kafka.Config
	nats     *jetstream.Config
}

// configFromSink checks a sink of any type and its Secret's data. Its errors wrap
// delivery.ErrInvalidSpec or delivery.ErrInvalidSecret.
//
// A sink type is one case here and one in newSender, each calling its package's
// ConfigFromSink and New. A type this build does not know is not Ready, with a
// message saying so.
func configFromSink(sink *crmv1alpha1.CustomerSink, secret map[string][]byte) (sinkConfig, error) {
	typ := sink.Spec.Type
	if typ == "" {
		typ = crmv1alpha1.SinkTypeHTTP // objects stored before the field existed
	}
	switch typ {
	case crmv1alpha1.SinkTypeHTTP:
		t, err := delivery.TargetFromSink(sink, secret)
		if err != nil {
			return sinkConfig{}, err
		}
		return sinkConfig{typ: typ, http: t}, nil
	case crmv1alpha1.SinkTypePostgres:
		c, err := postgres.ConfigFromSink(sink, secret)
		if err != nil {
			return sinkConfig{}, err
		}
		return sinkConfig{typ: typ, postgres: &c}, nil
	case crmv1alpha1.SinkTypeKafka:
		c, err := kafka.ConfigFromSink(sink, secret)
		if err != nil {
			return sinkConfig{}, err
		}
		return sinkConfig{typ: typ, kafka: &c}, nil
	case crmv1alpha1.SinkTypeNATS:
		c, err := jetstream.ConfigFromSink(sink, secret)
		if err != nil {
			return sinkConfig{}, err
		}
		return sinkConfig{typ: typ, nats: &c}, nil
	default:
		return sinkConfig{}, &unsupportedTypeError{typ: typ}
	}
}

// unsupportedTypeError is a sink of a type this build of the operator cannot
// deliver to.
type unsupportedTypeError struct{ typ crmv1alpha1.SinkType }

func (e *unsupportedTypeError) Error() string {
	return fmt.Sprintf("spec.type: sinks of type %q are not supported by this version of the operator", e.typ)
}
func (e *unsupportedTypeError) Unwrap() error { return delivery.ErrInvalidSpec }

// addressURLs are the URLs whose hosts the sink connects to, for the address
// policy's readiness check (the policy itself holds at dial time).
func (c sinkConfig) addressURLs() []string {
	switch {
	case c.http != nil:
		return []string{c.http.URL}
	case c.postgres != nil:
		return []string{"postgres://" + c.postgres.Address()}
	case c.kafka != nil:
		return c.kafka.AddressURLs()
	case c.nats != nil:
		return c.nats.AddressURLs()
	}
	return nil
}

// senderDeps is what senders share: the HTTP client (its connection pools),
// the address policy every connection is dialled through, and the limits
// every database and broker connection counts against.
type senderDeps struct {
	client *delivery.Client
	policy delivery.AddressPolicy
	limits *delivery.ConnectionLimits
}

// newSender builds the Sender of a resolved sink of namespace.
func newSender(c sinkConfig, deps senderDeps, namespace string) (delivery.Sender, error) {
	switch {
	case c.http != nil:
		return delivery.NewHTTPSender(deps.client, c.http), nil
	case c.postgres != nil:
		s, err := postgres.New(*c.postgres, deps.policy, postgres.WithConnectionLimits(deps.limits, namespace))
		if err != nil {
			return nil, fmt.Errorf("building the PostgreSQL sender: %w", err)
		}
		return s, nil
	case c.kafka != nil:
		s, err := kafka.New(*c.kafka, deps.policy, kafka.WithConnectionLimits(deps.limits, namespace))
		if err != nil {
			return nil, fmt.Errorf("building the Kafka sender: %w", err)
		}
		return s, nil
	case c.nats != nil:
		s, err := jetstream.New(*c.nats, deps.policy, jetstream.WithConnectionLimits(deps.limits, namespace))
		if err != nil {
			return nil, fmt.Errorf("building the NATS JetStream sender: %w", err)
		}
		return s, nil
	}
	return nil, &unsupportedTypeError{typ: c.typ}
}
