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
	"bytes"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/nats-io/nkeys"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/delivery"
)

// Secret keys a NATS sink reads; at most one kind of credentials.
const (
	KeyCreds    = "creds"
	KeyNKey     = "nkey"
	KeyUser     = "user"
	KeyPassword = "password"
	KeyToken    = "token"
	KeyCA       = "ca.crt"
)

var (
	namePattern    = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,255}$`)
	subjectPattern = regexp.MustCompile(`^[a-zA-Z0-9_-]+(\.[a-zA-Z0-9_-]+)*$`)
)

// ConfigFromSink checks a nats CustomerSink and its Secret's data (nil when it
// has none) and resolves them into a Config. Errors name the field or key at
// fault, never a value from the Secret or the URL's credentials.
func ConfigFromSink(sink *crmv1alpha1.CustomerSink, secret map[string][]byte) (Config, error) {
	if sink == nil {
		return Config{}, delivery.ErrNoSink
	}
	spec := &sink.Spec
	n := spec.NATS
	if n == nil {
		return Config{}, delivery.SpecError("nats", "is required when type is nats")
	}
	u, err := url.Parse(n.URL)
	if err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" {
		return Config{}, delivery.SpecError("nats.url", "must be an absolute nats:// or tls:// URL")
	}
	if u.User != nil {
		return Config{}, delivery.SpecError("nats.url", "must not hold credentials; put them in the Secret")
	}
	if !namePattern.MatchString(n.Stream) {
		return Config{}, delivery.SpecError("nats.stream", "%q is not a stream name", n.Stream)
	}
	cfg := Config{
		URL: n.URL, Stream: n.Stream, SubjectPrefix: n.SubjectPrefix, KVBucket: n.KVBucket,
		Fields: slices.Clone(spec.Fields), Timeout: delivery.DefaultTimeout,
	}
	if cfg.SubjectPrefix == "" {
		cfg.SubjectPrefix = DefaultSubjectPrefix
	}
	if !subjectPattern.MatchString(cfg.SubjectPrefix) {
		return Config{}, delivery.SpecError("nats.subjectPrefix", "%q is not dot-separated tokens of letters, digits, _ and -", cfg.SubjectPrefix)
	}
	if cfg.KVBucket != "" && !namePattern.MatchString(cfg.KVBucket) {
		return Config{}, delivery.SpecError("nats.kvBucket", "%q is not a bucket name", cfg.KVBucket)
	}
	if spec.Timeout != nil && spec.Timeout.Duration > 0 {
		cfg.Timeout = min(spec.Timeout.Duration, delivery.MaxTimeout)
	}

	var kinds []string
	for _, k := range []string{KeyCreds, KeyNKey, KeyUser, KeyToken} {
		if _, ok := secret[k]; ok {
			kinds = append(kinds, fmt.Sprintf("%q", k))
		}
	}
	if len(kinds) > 1 {
		return Config{}, delivery.SecretError(strings.Trim(kinds[1], `"`), "is set together with %s; use one kind of credentials", kinds[0])
	}
	switch {
	case secret[KeyCreds] != nil:
		if _, err := nkeys.ParseDecoratedJWT(secret[KeyCreds]); err != nil {
			return Config{}, delivery.SecretError(KeyCreds, "is not a NATS credentials file")
		}
		if _, err := nkeys.ParseDecoratedNKey(secret[KeyCreds]); err != nil {
			return Config{}, delivery.SecretError(KeyCreds, "holds no nkey seed")
		}
		cfg.Creds = bytes.Clone(secret[KeyCreds])
	case secret[KeyNKey] != nil:
		seed := bytes.TrimSpace(secret[KeyNKey])
		if _, err := nkeys.FromSeed(seed); err != nil {
			return Config{}, delivery.SecretError(KeyNKey, "is not an nkey seed")
		}
		cfg.NKeySeed = bytes.Clone(seed)
	case secret[KeyUser] != nil:
		if len(secret[KeyPassword]) == 0 {
			return Config{}, delivery.SecretError(KeyPassword, "is missing; %q needs it", KeyUser)
		}
		cfg.User, cfg.Password = string(secret[KeyUser]), string(secret[KeyPassword])
	case secret[KeyToken] != nil:
		cfg.Token = string(bytes.TrimSpace(secret[KeyToken]))
	}
	if ca, ok := secret[KeyCA]; ok {
		if err := delivery.CheckCA(ca); err != nil {
			return Config{}, delivery.SecretError(KeyCA, "%v", err)
		}
		cfg.CA = bytes.Clone(ca)
	}
	return cfg, nil
}

// AddressURLs is the server's URL, for the address policy's readiness check
// (the policy itself holds at dial time, for every server the cluster
// announces too).
func (c Config) AddressURLs() []string { return []string{c.URL} }
