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
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks headers. CloudEvents deliveries carry them too when the sink
// has a secret, so a receiver authenticates both formats the same way.
const (
	HeaderID        = "Webhook-Id"
	HeaderTimestamp = "Webhook-Timestamp"
	HeaderSignature = "Webhook-Signature"
)

// SecretPrefix starts every Standard Webhooks secret; it keeps a secret from being
// mistaken for (or pasted as) some other credential.
const SecretPrefix = "whsec_"

// MinSecretBytes is the shortest decoded key accepted. The Standard Webhooks spec
// asks for 24 to 64 random bytes; shorter keys are too easy to brute-force
// offline from one captured signature.
const MinSecretBytes = 24

// DefaultTolerance is how far webhook-timestamp may be from the receiver's clock
// when Verify is given no tolerance; it is the Standard Webhooks default and bounds
// how long a captured request can be replayed.
const DefaultTolerance = 5 * time.Minute

// Errors Verify returns, so that a receiver can answer (or log) each differently.
var (
	ErrMissingHeaders = errors.New("missing webhook-id, webhook-timestamp or webhook-signature header")
	ErrTimestamp      = errors.New("webhook-timestamp invalid or outside the tolerance")
	ErrSignature      = errors.New("no matching webhook-signature")
)

// ParseSecret decodes a "whsec_" + base64 secret into the HMAC key. Surrounding
// white space is ignored because Secrets created from files usually end in a newline.
// Errors never repeat the secret.
func ParseSecret(s string) ([]byte, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), SecretPrefix)
	if !ok {
		return nil, fmt.Errorf("must be a Standard Webhooks secret: %q followed by base64", SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		// Some generators drop the padding; the key is the same.
		key, err = base64.RawStdEncoding.DecodeString(rest)
	}
	if err != nil {
		return nil, fmt.Errorf("must be a Standard Webhooks secret: %q followed by base64 (the base64 does not decode)", SecretPrefix)
	}
	if len(key) < MinSecretBytes {
		return nil, fmt.Errorf("decodes to %d bytes, want at least %d", len(key), MinSecretBytes)
	}
	return key, nil
}

// Sign returns one webhook-signature entry, "v1,<base64 HMAC-SHA256>", over
// "{id}.{timestamp}.{body}".
func Sign(secret []byte, id string, timestamp int64, body []byte) string {
	var ts [20]byte
	sum := mac(secret, id, strconv.AppendInt(ts[:0], timestamp, 10), body)
	return "v1," + base64.StdEncoding.EncodeToString(sum)
}

func mac(secret []byte, id string, timestamp, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write(timestamp)
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify is the receiver's side of Standard Webhooks: it accepts the request when
// webhook-timestamp is within tolerance of now (DefaultTolerance when tolerance is
// not positive) and any v1 entry of webhook-signature is the HMAC of the request
// under secret. body must be the raw bytes received, before any JSON decoding,
// since re-encoding changes them.
func Verify(secret string, header http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	key, err := ParseSecret(secret)
	if err != nil {
		return fmt.Errorf("secret: %w", err)
	}
	id, ts, sigs := header.Get(HeaderID), header.Get(HeaderTimestamp), header.Get(HeaderSignature)
	if id == "" || ts == "" || sigs == "" {
		return ErrMissingHeaders
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrTimestamp
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if skew := now.Sub(time.Unix(sec, 0)); skew > tolerance || skew < -tolerance {
		return ErrTimestamp
	}
	// The MAC covers the timestamp as sent, not as re-formatted: that is what the
	// sender signed.
	want := mac(key, id, []byte(ts), body)
	for _, entry := range strings.Fields(sigs) {
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			// Other versions (v1a, asymmetric) may appear next to v1; they are not ours.
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrSignature
}
