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
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/delivery"
)

func kafkaSink(k crmv1alpha1.KafkaSink, withSecret bool) *crmv1alpha1.CustomerSink {
	s := &crmv1alpha1.CustomerSink{Spec: crmv1alpha1.CustomerSinkSpec{
		Type: crmv1alpha1.SinkTypeKafka, Kafka: &k, Timeout: &metav1.Duration{Duration: 3 * time.Second},
		Fields: []crmv1alpha1.CustomerField{"email"},
	}}
	if withSecret {
		s.Spec.SecretRef = &crmv1alpha1.SecretReference{Name: "kafka"}
	}
	return s
}

func TestConfigFromSink(t *testing.T) {
	certPEM, _ := selfSigned(t)
	cfg, err := ConfigFromSink(kafkaSink(crmv1alpha1.KafkaSink{
		Brokers: []string{"kafka-0.kafka:9093", "kafka-1.kafka:9093"}, Topic: "crm.customers",
		SASL: SASLSCRAMSHA512, TLS: true,
	}, true), map[string][]byte{KeyUsername: []byte("operator"), KeyPassword: []byte("s3cret"), KeyCA: certPEM})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Brokers) != 2 || cfg.Topic != "crm.customers" || cfg.SASL != SASLSCRAMSHA512 || cfg.Username != "operator" ||
		cfg.Password != "s3cret" || !cfg.TLS || len(cfg.CA) == 0 || cfg.Timeout != 3*time.Second || len(cfg.Fields) != 1 {
		t.Fatalf("config: %+v", cfg)
	}

	for _, tc := range []struct {
		name   string
		k      crmv1alpha1.KafkaSink
		secret map[string][]byte
		kind   error
		says   string
	}{
		{"no brokers", crmv1alpha1.KafkaSink{Topic: "t"}, nil, delivery.ErrInvalidSpec, "spec.kafka.brokers"},
		{"broker without port", crmv1alpha1.KafkaSink{Brokers: []string{"kafka"}, Topic: "t"}, nil, delivery.ErrInvalidSpec, "spec.kafka.brokers[0]"},
		{"bad topic", crmv1alpha1.KafkaSink{Brokers: []string{"k:9092"}, Topic: "a topic"}, nil, delivery.ErrInvalidSpec, "spec.kafka.topic"},
		{"SASL without password", crmv1alpha1.KafkaSink{Brokers: []string{"k:9092"}, Topic: "t", SASL: SASLPlain},
			map[string][]byte{KeyUsername: []byte("u")}, delivery.ErrInvalidSecret, `"password"`},
		{"CA without TLS", crmv1alpha1.KafkaSink{Brokers: []string{"k:9092"}, Topic: "t"},
			map[string][]byte{KeyCA: certPEM}, delivery.ErrInvalidSecret, `"ca.crt"`},
		{"CA not PEM", crmv1alpha1.KafkaSink{Brokers: []string{"k:9092"}, Topic: "t", TLS: true},
			map[string][]byte{KeyCA: []byte("s3cret-not-a-cert")}, delivery.ErrInvalidSecret, `"ca.crt"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ConfigFromSink(kafkaSink(tc.k, true), tc.secret)
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("err = %v, want %v naming %s", err, tc.kind, tc.says)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("the error repeats a secret: %v", err)
			}
		})
	}
	if _, err := ConfigFromSink(kafkaSink(crmv1alpha1.KafkaSink{Brokers: []string{"k:9092"}, Topic: "t", SASL: SASLPlain}, false), nil); !errors.Is(err, delivery.ErrInvalidSpec) {
		t.Fatalf("SASL without a Secret: %v", err)
	}
}
