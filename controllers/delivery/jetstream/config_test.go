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
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/delivery"
)

func natsSink(n crmv1alpha1.NATSSink) *crmv1alpha1.CustomerSink {
	return &crmv1alpha1.CustomerSink{Spec: crmv1alpha1.CustomerSinkSpec{Type: crmv1alpha1.SinkTypeNATS, NATS: &n}}
}

func TestConfigFromSink(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	seed, _ := kp.Seed()
	cfg, err := ConfigFromSink(natsSink(crmv1alpha1.NATSSink{URL: "tls://nats.messaging:4222", Stream: "CUSTOMERS", KVBucket: "customers"}),
		map[string][]byte{KeyNKey: append(seed, '\n')})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SubjectPrefix != DefaultSubjectPrefix || string(cfg.NKeySeed) != string(seed) || cfg.KVBucket != "customers" {
		t.Fatalf("config: %+v", cfg)
	}
	good := crmv1alpha1.NATSSink{URL: "nats://nats:4222", Stream: "CUSTOMERS"}
	for _, tc := range []struct {
		name   string
		n      crmv1alpha1.NATSSink
		secret map[string][]byte
		kind   error
		says   string
	}{
		{"http URL", crmv1alpha1.NATSSink{URL: "http://nats:4222", Stream: "S"}, nil, delivery.ErrInvalidSpec, "spec.nats.url"},
		{"credentials in the URL", crmv1alpha1.NATSSink{URL: "nats://u:s3cret@nats:4222", Stream: "S"}, nil, delivery.ErrInvalidSpec, "spec.nats.url"},
		{"bad stream", crmv1alpha1.NATSSink{URL: "nats://nats:4222", Stream: "a.b"}, nil, delivery.ErrInvalidSpec, "spec.nats.stream"},
		{"wildcard prefix", crmv1alpha1.NATSSink{URL: "nats://nats:4222", Stream: "S", SubjectPrefix: "crm.>"}, nil, delivery.ErrInvalidSpec, "spec.nats.subjectPrefix"},
		{"two kinds of credentials", good, map[string][]byte{KeyToken: []byte("s3cret"), KeyUser: []byte("u"), KeyPassword: []byte("s3cret")}, delivery.ErrInvalidSecret, `"token"`},
		{"user without password", good, map[string][]byte{KeyUser: []byte("u")}, delivery.ErrInvalidSecret, `"password"`},
		{"bad seed", good, map[string][]byte{KeyNKey: []byte("s3cret")}, delivery.ErrInvalidSecret, `"nkey"`},
		{"bad creds", good, map[string][]byte{KeyCreds: []byte("s3cret")}, delivery.ErrInvalidSecret, `"creds"`},
		{"bad CA", good, map[string][]byte{KeyCA: []byte("s3cret")}, delivery.ErrInvalidSecret, `"ca.crt"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ConfigFromSink(natsSink(tc.n), tc.secret)
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("err = %v, want %v naming %s", err, tc.kind, tc.says)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("the error repeats a secret: %v", err)
			}
		})
	}
}
