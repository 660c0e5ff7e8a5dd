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
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// ErrNoSink is the error of a check given no CustomerSink.
var ErrNoSink error = &configError{kind: ErrInvalidSpec, msg: "no CustomerSink"}

// configError carries a message for people (kubectl describe) and a sentinel for
// code.
type configError struct {
	kind error
	msg  string
}

func (e *configError) Error() string { return e.msg }
func (e *configError) Unwrap() error { return e.kind }

// SpecError says that a field of a CustomerSink's spec is unusable; every sink
// type's checks use it, so that the controller tells it from a Secret error.
func SpecError(field, format string, args ...any) error {
	return &configError{kind: ErrInvalidSpec, msg: "spec." + field + ": " + fmt.Sprintf(format, args...)}
}

// SecretError says that a key of a CustomerSink's Secret is unusable; the
// message names the key, never its value.
func SecretError(key, format string, args ...any) error {
	return &configError{kind: ErrInvalidSecret, msg: fmt.Sprintf("Secret key %q: ", key) + fmt.Sprintf(format, args...)}
}

// CheckCA checks a Secret's ca.crt as every sink type reads it: PEM
// certificates only, at least one, each parsing. Certificates only, since a
// private key pasted into ca.crt by mistake would otherwise sit silently next
// to them.
func CheckCA(data []byte) error {
	n := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return fmt.Errorf("holds a %q PEM block; only CERTIFICATE blocks are allowed", block.Type)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("certificate %d does not parse: %w", n+1, err)
		}
		n++
	}
	if n == 0 {
		return errors.New("holds no PEM certificate")
	}
	return nil
}
