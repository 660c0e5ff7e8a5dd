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
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
)

// Keys of a CustomerSink's Secret.
const (
	KeySecret         = "secret"
	KeyPreviousSecret = "previousSecret"
	KeyCA             = "ca.crt"
	KeyHeaders        = "headers"
)

// DefaultTimeout bounds one delivery when the sink sets none (the CRD defaults
// spec.timeout to the same value; this covers objects written before that).
const DefaultTimeout = 10 * time.Second

// Errors TargetFromSink wraps, so that the CustomerSink controller can tell an
// unusable spec (ReasonInvalidSpec) from an unusable Secret (ReasonSecretInvalid)
// with errors.Is, without parsing messages.
var (
	ErrInvalidSpec   = errors.New("invalid CustomerSink spec")
	ErrInvalidSecret = errors.New("invalid CustomerSink Secret")
)

// Target is everything needed to deliver to one sink, resolved from the
// CustomerSink and its Secret once, so that a delivery does no parsing.
type Target struct {
	URL    string
	Format crmv1alpha1.SinkFormat
	// Secrets are decoded signing keys, the current one first, then the previous
	// one during a rotation; every delivery is signed with each, so receivers
	// holding either key accept it.
	Secrets [][]byte
	// Header holds extra headers sent with every delivery. Names that the
	// delivery itself sets (webhook-*, Content-Type, ...) are ignored here.
	Header http.Header
	// Timeout bounds one delivery, from dialling to draining the answer.
	Timeout time.Duration
	// CA is an optional PEM bundle trusted in addition to the system roots.
	CA []byte
	// Fields, when not nil, are the Customer spec fields the sink receives (with
	// IdentityFields); nil sends the whole spec.
	Fields []crmv1alpha1.CustomerField
}

// TargetFromSink checks a CustomerSink and the data of the Secret named by its
// secretRef (nil when it has none) and resolves them into a Target. Errors name
// the field or Secret key at fault and never repeat secret material.
func TargetFromSink(sink *crmv1alpha1.CustomerSink, secretData map[string][]byte) (*Target, error) {
	if sink == nil {
		return nil, ErrNoSink
	}
	spec := &sink.Spec
	if err := checkURL(spec.URL); err != nil {
		return nil, err
	}
	t := &Target{URL: spec.URL, Format: spec.Format, Timeout: DefaultTimeout}
	if t.Format == "" {
		t.Format = crmv1alpha1.FormatStandardWebhooks
	}
	switch t.Format {
	case crmv1alpha1.FormatStandardWebhooks, crmv1alpha1.FormatCloudEvents:
	default:
		return nil, SpecError("format", "%q is not one of %q, %q", t.Format,
			crmv1alpha1.FormatStandardWebhooks, crmv1alpha1.FormatCloudEvents)
	}
	if spec.Timeout != nil {
		if spec.Timeout.Duration < 0 {
			return nil, SpecError("timeout", "must not be negative")
		}
		if spec.Timeout.Duration > 0 {
			t.Timeout = spec.Timeout.Duration
		}
	}
	if spec.Fields != nil {
		for _, f := range spec.Fields {
			if _, ok := specFieldIndex[f]; !ok {
				return nil, SpecError("fields", "%q is not a field of a Customer's spec", f)
			}
		}
		t.Fields = slices.Clone(spec.Fields)
	}
	if spec.SecretRef == nil {
		if t.Format == crmv1alpha1.FormatStandardWebhooks {
			return nil, SpecError("secretRef", "is required for the %s format", t.Format)
		}
		return t, nil
	}

	current, hasCurrent := secretData[KeySecret]
	if !hasCurrent && t.Format == crmv1alpha1.FormatStandardWebhooks {
		return nil, SecretError(KeySecret, "is missing; the %s format needs a whsec_ signing secret", t.Format)
	}
	if hasCurrent {
		key, err := ParseSecret(string(current))
		if err != nil {
			return nil, SecretError(KeySecret, "%v", err)
		}
		t.Secrets = append(t.Secrets, key)
	}
	if previous, ok := secretData[KeyPreviousSecret]; ok {
		if !hasCurrent {
			// Signing with only the old key would keep a rotation from ever finishing.
			return nil, SecretError(KeyPreviousSecret, "is set but %q is missing", KeySecret)
		}
		key, err := ParseSecret(string(previous))
		if err != nil {
			return nil, SecretError(KeyPreviousSecret, "%v", err)
		}
		t.Secrets = append(t.Secrets, key)
	}
	if ca, ok := secretData[KeyCA]; ok {
		if err := CheckCA(ca); err != nil {
			return nil, SecretError(KeyCA, "%v", err)
		}
		t.CA = bytes.Clone(ca)
	}
	if raw, ok := secretData[KeyHeaders]; ok {
		h, err := parseHeaders(raw)
		if err != nil {
			return nil, SecretError(KeyHeaders, "%v", err)
		}
		t.Header = h
	}
	return t, nil
}

// checkURL repeats the CRD's CEL rule, for sinks the API server accepted before
// the rule existed. The URL itself stays out of the message: it may carry
// credentials.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return SpecError("url", "must be an absolute http or https URL")
	}
	return nil
}

// reservedHeader says whether a header is the delivery's own: letting a Secret set
// it would break signing, framing or the format's meaning. ce-* are CloudEvents
// binary-mode attributes, which would contradict the structured body.
func reservedHeader(name string) bool {
	n := strings.ToLower(name)
	if strings.HasPrefix(n, "webhook-") || strings.HasPrefix(n, "ce-") {
		return true
	}
	switch n {
	case "content-type", "content-length", "content-encoding", "host", "transfer-encoding",
		"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "expect":
		return true
	}
	return false
}

// parseHeaders reads "Name: value" lines. Messages name the line and header but
// never the value: headers are kept in a Secret because values are often tokens.
func parseHeaders(raw []byte) (http.Header, error) {
	h := http.Header{}
	for i, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !validHeaderName(name) {
			return nil, fmt.Errorf("line %d: want \"Name: value\" with a header name made of letters, digits and !#$%%&'*+-.^_`|~", i+1)
		}
		if reservedHeader(name) {
			return nil, fmt.Errorf("line %d: header %q is set by the delivery itself", i+1, name)
		}
		value = strings.TrimSpace(value)
		if value == "" {
			return nil, fmt.Errorf("line %d: header %q has an empty value", i+1, name)
		}
		if !validHeaderValue(value) {
			return nil, fmt.Errorf("line %d: header %q has control characters in its value", i+1, name)
		}
		h.Add(name, value)
	}
	return h, nil
}

// validHeaderName checks an RFC 9110 token; net/http would reject anything else
// only at send time, turning a configuration error into a delivery failure.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
