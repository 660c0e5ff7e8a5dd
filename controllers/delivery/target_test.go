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
	"bytes"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/test/testcert"
)

// newSecret is a second valid secret (32 bytes), distinct from the vector's.
const newSecret = "whsec_bmV3LXNlY3JldC1mb3ItdGhlLXJvdGF0aW9uLXRlc3Q="

func testSink(format crmv1alpha1.SinkFormat, withSecretRef bool) *crmv1alpha1.CustomerSink {
	s := &crmv1alpha1.CustomerSink{
		ObjectMeta: metav1.ObjectMeta{Name: "erp", Namespace: "tenant-a"},
		Spec: crmv1alpha1.CustomerSinkSpec{
			URL:     "https://erp.example.com/hooks/customers",
			Format:  format,
			Timeout: &metav1.Duration{Duration: 3 * time.Second},
		},
	}
	if withSecretRef {
		s.Spec.SecretRef = &crmv1alpha1.SecretReference{Name: "erp-sink"}
	}
	return s
}

func selfSignedPEM(t testing.TB) []byte {
	t.Helper()
	ca, err := testcert.SelfSignedCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestTargetFromSink(t *testing.T) {
	ca := selfSignedPEM(t)
	tgt, err := TargetFromSink(testSink(crmv1alpha1.FormatStandardWebhooks, true), map[string][]byte{
		KeySecret:         []byte(newSecret + "\n"),
		KeyPreviousSecret: []byte(vectorSecret),
		KeyCA:             ca,
		KeyHeaders:        []byte("Authorization: Bearer t0ken\r\nX-Tenant:  a \n\nx-tenant: b\n"),
	})
	if err != nil {
		t.Fatal(err)
	}
	newKey, _ := ParseSecret(newSecret)
	oldKey, _ := ParseSecret(vectorSecret)
	if len(tgt.Secrets) != 2 || !bytes.Equal(tgt.Secrets[0], newKey) || !bytes.Equal(tgt.Secrets[1], oldKey) {
		t.Errorf("Secrets: want [current, previous], got %d keys", len(tgt.Secrets))
	}
	if tgt.URL != "https://erp.example.com/hooks/customers" || tgt.Format != crmv1alpha1.FormatStandardWebhooks || tgt.Timeout != 3*time.Second {
		t.Errorf("target = %s %s %s", tgt.URL, tgt.Format, tgt.Timeout)
	}
	if !bytes.Equal(tgt.CA, ca) {
		t.Error("CA not kept")
	}
	if got := tgt.Header.Get("Authorization"); got != "Bearer t0ken" {
		t.Errorf("Authorization = %q", got)
	}
	if got := tgt.Header.Values("X-Tenant"); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("X-Tenant = %q", got)
	}

	// Defaults: format, timeout; cloudevents needs no Secret at all.
	sink := testSink("", true)
	sink.Spec.Timeout = nil
	tgt, err = TargetFromSink(sink, map[string][]byte{KeySecret: []byte(vectorSecret)})
	if err != nil || tgt.Format != crmv1alpha1.FormatStandardWebhooks || tgt.Timeout != DefaultTimeout {
		t.Errorf("defaults: %+v, %v", tgt, err)
	}
	tgt, err = TargetFromSink(testSink(crmv1alpha1.FormatCloudEvents, false), nil)
	if err != nil || len(tgt.Secrets) != 0 {
		t.Errorf("cloudevents without secretRef: %+v, %v", tgt, err)
	}
	tgt, err = TargetFromSink(testSink(crmv1alpha1.FormatCloudEvents, true), map[string][]byte{KeyHeaders: []byte("X-A: 1")})
	if err != nil || len(tgt.Secrets) != 0 || tgt.Header.Get("X-A") != "1" {
		t.Errorf("cloudevents with headers only: %+v, %v", tgt, err)
	}
	tgt, err = TargetFromSink(testSink(crmv1alpha1.FormatCloudEvents, true), map[string][]byte{KeySecret: []byte(vectorSecret)})
	if err != nil || len(tgt.Secrets) != 1 {
		t.Errorf("signed cloudevents: %+v, %v", tgt, err)
	}
}

func TestTargetFromSinkErrors(t *testing.T) {
	sw, ce := crmv1alpha1.FormatStandardWebhooks, crmv1alpha1.FormatCloudEvents
	good := []byte(vectorSecret)
	withKeyFile := append(selfSignedPEM(t), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte("k3y-m4t3r14l")})...)
	for _, tc := range []struct {
		name   string
		sink   *crmv1alpha1.CustomerSink
		data   map[string][]byte
		kind   error
		phrase string // the message must contain it
	}{
		{"no secretRef", testSink(sw, false), nil, ErrInvalidSpec, "spec.secretRef"},
		{"missing secret", testSink(sw, true), map[string][]byte{}, ErrInvalidSecret, `Secret key "secret": is missing`},
		{"secret without prefix", testSink(sw, true), map[string][]byte{KeySecret: []byte("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")}, ErrInvalidSecret, `Secret key "secret"`},
		{"secret not base64", testSink(sw, true), map[string][]byte{KeySecret: []byte("whsec_hunter2!!")}, ErrInvalidSecret, `Secret key "secret"`},
		{"secret empty", testSink(ce, true), map[string][]byte{KeySecret: nil}, ErrInvalidSecret, `Secret key "secret"`},
		{"bad previous", testSink(sw, true), map[string][]byte{KeySecret: good, KeyPreviousSecret: []byte("hunter2")}, ErrInvalidSecret, `Secret key "previousSecret"`},
		{"previous alone", testSink(ce, true), map[string][]byte{KeyPreviousSecret: good}, ErrInvalidSecret, `Secret key "previousSecret"`},
		{"ca not PEM", testSink(sw, true), map[string][]byte{KeySecret: good, KeyCA: []byte("not a certificate")}, ErrInvalidSecret, `Secret key "ca.crt": holds no PEM certificate`},
		{"ca garbage cert", testSink(sw, true), map[string][]byte{KeySecret: good, KeyCA: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")})}, ErrInvalidSecret, `Secret key "ca.crt": certificate 1 does not parse`},
		{"ca with a key", testSink(sw, true), map[string][]byte{KeySecret: good, KeyCA: withKeyFile}, ErrInvalidSecret, `"EC PRIVATE KEY"`},
		{"header without colon", testSink(sw, true), map[string][]byte{KeySecret: good, KeyHeaders: []byte("X-Ok: 1\nAuthorization Bearer s3cr3t")}, ErrInvalidSecret, `Secret key "headers": line 2`},
		{"header name with space", testSink(sw, true), map[string][]byte{KeySecret: good, KeyHeaders: []byte("X Api Key: s3cr3t")}, ErrInvalidSecret, "line 1"},
		{"header empty value", testSink(sw, true), map[string][]byte{KeySecret: good, KeyHeaders: []byte("X-Api-Key:")}, ErrInvalidSecret, "empty value"},
		{"header control char", testSink(sw, true), map[string][]byte{KeySecret: good, KeyHeaders: []byte("X-Api-Key: s3c\x00r3t")}, ErrInvalidSecret, "control characters"},
		{"reserved webhook-id", testSink(sw, true), map[string][]byte{KeySecret: good, KeyHeaders: []byte("webhook-id: s3cr3t")}, ErrInvalidSecret, `"webhook-id" is set by the delivery`},
		{"reserved content-type", testSink(ce, true), map[string][]byte{KeyHeaders: []byte("Content-Type: text/s3cr3t")}, ErrInvalidSecret, `"Content-Type"`},
		{"reserved host", testSink(ce, true), map[string][]byte{KeyHeaders: []byte("Host: s3cr3t.example.com")}, ErrInvalidSecret, `"Host"`},
		{"reserved ce-", testSink(ce, true), map[string][]byte{KeyHeaders: []byte("ce-type: s3cr3t")}, ErrInvalidSecret, `"ce-type"`},
		{"bad format", testSink("protobuf", true), map[string][]byte{KeySecret: good}, ErrInvalidSpec, "spec.format"},
		{"negative timeout", func() *crmv1alpha1.CustomerSink {
			s := testSink(sw, true)
			s.Spec.Timeout.Duration = -time.Second
			return s
		}(), map[string][]byte{KeySecret: good}, ErrInvalidSpec, "spec.timeout"},
		{"relative url", func() *crmv1alpha1.CustomerSink {
			s := testSink(sw, true)
			s.Spec.URL = "/hooks?token=s3cr3t"
			return s
		}(), map[string][]byte{KeySecret: good}, ErrInvalidSpec, "spec.url"},
		{"ftp url", func() *crmv1alpha1.CustomerSink {
			s := testSink(sw, true)
			s.Spec.URL = "ftp://user:s3cr3t@example.com/"
			return s
		}(), map[string][]byte{KeySecret: good}, ErrInvalidSpec, "spec.url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := TargetFromSink(tc.sink, tc.data)
			if err == nil {
				t.Fatal("TargetFromSink accepted it")
			}
			if !errors.Is(err, tc.kind) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.kind)
			}
			if !strings.Contains(err.Error(), tc.phrase) {
				t.Errorf("error %q does not contain %q", err, tc.phrase)
			}
			for _, secret := range []string{"s3cr3t", "hunter2", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "k3y-m4t3r14l"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q repeats secret material", err)
				}
			}
		})
	}
}
