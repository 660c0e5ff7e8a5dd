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
	"bytes"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/delivery"
)

// Secret keys a Kafka sink reads.
const (
	KeyUsername = "username"
	KeyPassword = "password"
	KeyCA       = "ca.crt"
)

// MaxBrokers bounds spec.kafka.brokers, as the CRD does.
const MaxBrokers = 16

var topicPattern = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// ConfigFromSink checks a kafka CustomerSink and its Secret's data (nil when
// it has none) and resolves them into a Config. Errors name the field or key
// at fault, never a value from the Secret. The CRD checks the same; this also
// covers objects stored before a rule existed.
func ConfigFromSink(sink *crmv1alpha1.CustomerSink, secret map[string][]byte) (Config, error) {
	if sink == nil {
		return Config{}, delivery.ErrNoSink
	}
	spec := &sink.Spec
	k := spec.Kafka
	if k == nil {
		return Config{}, delivery.SpecError("kafka", "is required when type is kafka")
	}
	if len(k.Brokers) == 0 || len(k.Brokers) > MaxBrokers {
		return Config{}, delivery.SpecError("kafka.brokers", "must list 1 to %d brokers", MaxBrokers)
	}
	for i, b := range k.Brokers {
		host, port, err := net.SplitHostPort(b)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return Config{}, delivery.SpecError(fmt.Sprintf("kafka.brokers[%d]", i), "%q is not host:port", b)
		}
	}
	if !topicPattern.MatchString(k.Topic) {
		return Config{}, delivery.SpecError("kafka.topic", "%q is not a Kafka topic name", k.Topic)
	}
	cfg := Config{
		Brokers: slices.Clone(k.Brokers), Topic: k.Topic, SASL: k.SASL, TLS: k.TLS,
		Fields: slices.Clone(spec.Fields), Timeout: delivery.DefaultTimeout,
	}
	if spec.Timeout != nil && spec.Timeout.Duration > 0 {
		cfg.Timeout = min(spec.Timeout.Duration, delivery.MaxTimeout)
	}
	switch cfg.SASL {
	case "":
	case SASLPlain, SASLSCRAMSHA256, SASLSCRAMSHA512:
		if spec.SecretRef == nil {
			return Config{}, delivery.SpecError("secretRef", "is required with spec.kafka.sasl: it holds %q and %q", KeyUsername, KeyPassword)
		}
		user, pass := secret[KeyUsername], secret[KeyPassword]
		if len(user) == 0 {
			return Config{}, delivery.SecretError(KeyUsername, "is missing; spec.kafka.sasl needs it")
		}
		if len(pass) == 0 {
			return Config{}, delivery.SecretError(KeyPassword, "is missing; spec.kafka.sasl needs it")
		}
		cfg.Username, cfg.Password = string(user), string(pass)
	default:
		return Config{}, delivery.SpecError("kafka.sasl", "%q is not one of %s, %s, %s", cfg.SASL, SASLPlain, SASLSCRAMSHA256, SASLSCRAMSHA512)
	}
	if ca, ok := secret[KeyCA]; ok {
		if !cfg.TLS {
			// Trusting a CA for a plaintext connection would be silently
			// meaningless; say so instead.
			return Config{}, delivery.SecretError(KeyCA, "is set but spec.kafka.tls is false")
		}
		if err := delivery.CheckCA(ca); err != nil {
			return Config{}, delivery.SecretError(KeyCA, "%v", err)
		}
		cfg.CA = bytes.Clone(ca)
	}
	return cfg, nil
}

// AddressURLs are the seed brokers as URLs, for the address policy's
// readiness check (the policy itself holds at dial time, for every broker the
// cluster announces too).
func (c Config) AddressURLs() []string {
	out := make([]string, 0, len(c.Brokers))
	for _, b := range c.Brokers {
		out = append(out, "kafka://"+b)
	}
	return out
}
