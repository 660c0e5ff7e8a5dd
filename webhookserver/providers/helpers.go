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

package providers

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Secret keys of a CustomerSource's Secret. Every secret value has a rotation
// counterpart so a key can be replaced without refusing deliveries in between.
const (
	KeySecret           = "secret"
	KeyPreviousSecret   = "previousSecret"
	KeyUsername         = "username"
	KeyPassword         = "password"
	KeyPreviousPassword = "previousPassword"
	KeyToken            = "token"
	KeyPreviousToken    = "previousToken"
)

// DefaultTolerance applies when a Request carries no tolerance, so a caller that
// forgets to set one still refuses replays instead of accepting any timestamp.
const DefaultTolerance = 5 * time.Minute

// StatusSmarterPayUnauthorized is the answer SmarterPay's documentation asks
// receivers to give to a request they cannot authenticate.
const StatusSmarterPayUnauthorized = 498

// PreviousKey names the rotation counterpart of a secret key, or "" when it has none.
func PreviousKey(key string) string {
	switch key {
	case KeySecret:
		return KeyPreviousSecret
	case KeyPassword:
		return KeyPreviousPassword
	case KeyToken:
		return KeyPreviousToken
	}
	return ""
}

// SecretValue returns a Secret value with a trailing line break removed: values
// written with `kubectl create secret --from-file` or `echo` often carry one, and
// no provider's key, token or password ends in one.
func SecretValue(data map[string][]byte, key string) []byte {
	return bytes.TrimRight(data[key], "\r\n")
}

// SecretValues returns the non-empty values of key and of its rotation counterpart,
// current first, so the common case verifies with the first candidate.
func SecretValues(data map[string][]byte, key string) [][]byte {
	out := make([][]byte, 0, 2)
	if v := SecretValue(data, key); len(v) > 0 {
		out = append(out, v)
	}
	if prev := PreviousKey(key); prev != "" {
		if v := SecretValue(data, prev); len(v) > 0 {
			out = append(out, v)
		}
	}
	return out
}

// HasSecret says whether key carries a non-empty value.
func HasSecret(data map[string][]byte, key string) bool {
	return len(SecretValue(data, key)) > 0
}

// HasBasicPair says whether a Secret holds Basic credentials. Half a pair is an
// error: authentication would then require a password, or a user, it never has,
// and refuse every delivery.
func HasBasicPair(data map[string][]byte) (bool, error) {
	hasUser, hasPass := HasSecret(data, KeyUsername), HasSecret(data, KeyPassword)
	switch {
	case hasUser && !hasPass:
		return false, MissingSecretKey(KeyPassword)
	case hasPass && !hasUser:
		return false, MissingSecretKey(KeyUsername)
	}
	return hasUser, nil
}

// MissingSecretKey is the ValidateSecret error for an absent key. It names the key,
// never a value.
func MissingSecretKey(key string) error {
	return fmt.Errorf("secret key %q is missing or empty", key)
}

// HMACSHA256 computes the HMAC-SHA256 of the concatenated parts, so signed strings
// such as "<t>.<body>" need no intermediate copy of the body.
func HMACSHA256(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// HMACSHA256Hex is HMACSHA256 in lowercase hex, as the providers send it.
func HMACSHA256Hex(key []byte, parts ...[]byte) string {
	return hex.EncodeToString(HMACSHA256(key, parts...))
}

// DecodeHexMAC decodes a hex HMAC-SHA256 signature (either case), reporting false
// for anything that cannot be one.
func DecodeHexMAC(sig string) ([]byte, bool) {
	sig = strings.TrimSpace(sig)
	if len(sig) != 2*sha256.Size {
		return nil, false
	}
	mac, err := hex.DecodeString(sig)
	if err != nil {
		return nil, false
	}
	return mac, true
}

// MatchHMAC returns the index of the first key whose HMAC-SHA256 over parts equals
// one of macs, or -1. Comparison is constant-time per candidate; which key matched
// (current or previous) is not a secret.
func MatchHMAC(macs [][]byte, keys [][]byte, parts ...[]byte) int {
	if len(macs) == 0 {
		return -1
	}
	for i, k := range keys {
		sum := HMACSHA256(k, parts...)
		for _, mac := range macs {
			if hmac.Equal(sum, mac) {
				return i
			}
		}
	}
	return -1
}

// EqualAny compares got with every candidate in constant time. Both sides are
// hashed first so that neither the comparison time nor an early length check
// reveals the length of a secret.
func EqualAny(got []byte, candidates [][]byte) bool {
	g := sha256.Sum256(got)
	ok := 0
	for _, c := range candidates {
		h := sha256.Sum256(c)
		ok |= subtle.ConstantTimeCompare(g[:], h[:])
	}
	return ok == 1
}

// BasicAuth parses an "Authorization: Basic" header. The scheme is matched
// case-insensitively (RFC 7617); the password may contain colons.
func BasicAuth(h http.Header) (user, password string, ok bool) {
	v := h.Get("Authorization")
	const prefix = "Basic "
	if len(v) < len(prefix) || !strings.EqualFold(v[:len(prefix)], prefix) {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v[len(prefix):]))
	if err != nil {
		return "", "", false
	}
	user, password, ok = strings.Cut(string(raw), ":")
	return user, password, ok
}

// BearerToken parses an "Authorization: Bearer" header (scheme case-insensitive).
func BearerToken(h http.Header) (string, bool) {
	v := h.Get("Authorization")
	const prefix = "Bearer "
	if len(v) < len(prefix) || !strings.EqualFold(v[:len(prefix)], prefix) {
		return "", false
	}
	t := strings.TrimSpace(v[len(prefix):])
	return t, t != ""
}

// BasicHeader builds the "Authorization: Basic" value the simulators send.
func BasicHeader(user, password []byte) string {
	raw := make([]byte, 0, len(user)+1+len(password))
	raw = append(append(append(raw, user...), ':'), password...)
	return "Basic " + base64.StdEncoding.EncodeToString(raw)
}

// VerifyBasic checks the request's Basic credentials against the Secret's username
// and its password or previousPassword. Username and password are both compared
// in full, so the time taken does not say which of them was wrong.
func VerifyBasic(h http.Header, data map[string][]byte) bool {
	user, password, ok := BasicAuth(h)
	wantUser := SecretValue(data, KeyUsername)
	passwords := SecretValues(data, KeyPassword)
	if !ok || len(wantUser) == 0 || len(passwords) == 0 {
		return false
	}
	userOK := EqualAny([]byte(user), [][]byte{wantUser})
	passOK := EqualAny([]byte(password), passwords)
	return userOK && passOK
}

// VerifyBearer checks the request's bearer token against token and previousToken.
func VerifyBearer(h http.Header, data map[string][]byte) bool {
	tok, ok := BearerToken(h)
	tokens := SecretValues(data, KeyToken)
	if !ok || len(tokens) == 0 {
		return false
	}
	return EqualAny([]byte(tok), tokens)
}

// DecodeBase64Key decodes a key written as URL-safe or standard Base64, padded or
// not: providers show URL-safe keys, people paste them through tools that pad or
// convert them.
func DecodeBase64Key(s string) ([]byte, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "=")
	enc := base64.RawURLEncoding
	if strings.ContainsAny(s, "+/") {
		enc = base64.RawStdEncoding
	}
	return enc.DecodeString(s)
}

// Expired is a signed timestamp outside the tolerance (401).
func Expired(format string, args ...any) *Error {
	return &Error{Status: http.StatusUnauthorized, Reason: ReasonTimestamp, Message: fmt.Sprintf(format, args...)}
}

// DecryptFailed is an authenticated payload that does not decrypt (401): the
// sender holds the signing key but not the matching encryption key.
func DecryptFailed(format string, args ...any) *Error {
	return &Error{Status: http.StatusUnauthorized, Reason: ReasonDecrypt, Message: fmt.Sprintf(format, args...)}
}

// WithinTolerance says whether a signed timestamp is close enough to now, in either
// direction (a sender's clock may run ahead). A zero tolerance means DefaultTolerance.
func WithinTolerance(t, now time.Time, tolerance time.Duration) bool {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	d := now.Sub(t)
	return d <= tolerance && d >= -tolerance
}

// RequestNow returns the request's clock, or the wall clock when the caller left it
// unset.
func RequestNow(r *Request) time.Time {
	if r.Now.IsZero() {
		return time.Now()
	}
	return r.Now
}

// JSONError turns an encoding/json error into a 400 naming the field, with prefix
// prepended to the path json reports (for values decoded from inside a larger
// document). The message carries no body content beyond JSON types.
func JSONError(err error, prefix string) *Error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		field := joinPath(prefix, typeErr.Field)
		return Malformed(field, "field has the wrong JSON type %s", typeErr.Value)
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return Malformed(prefix, "body is not valid JSON (offset %d)", syntaxErr.Offset)
	}
	return Malformed(prefix, "body cannot be decoded")
}

func joinPath(prefix, field string) string {
	switch {
	case prefix == "":
		return field
	case field == "":
		return prefix
	}
	return prefix + "." + field
}

// FlexString is a JSON string, number or null, kept as its text. Providers send
// identifiers and timestamps as either ("created": "1733267345" and 1733267345 for
// the same field).
type FlexString string

// UnmarshalJSON accepts a string, a number or null; objects, arrays and booleans
// are a type error.
func (s *FlexString) UnmarshalJSON(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	switch b[0] {
	case '"':
		if inner := b[1 : len(b)-1]; bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
			*s = FlexString(inner)
			return nil
		}
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = FlexString(v)
		return nil
	case 'n':
		return nil
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		*s = FlexString(b)
		return nil
	}
	return &json.UnmarshalTypeError{Value: jsonKind(b[0]), Type: flexStringType}
}

var flexStringType = reflect.TypeFor[FlexString]()

func jsonKind(c byte) string {
	switch c {
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	}
	return "value"
}

// Int64 parses the text as a whole number, as sent in Unix-second timestamps and
// numeric identifiers.
func (s FlexString) Int64() (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(string(s)), 10, 64)
	return n, err == nil
}

// ParseTime parses a provider timestamp: RFC 3339 with or without fraction, or the
// same without a zone (read as UTC, as Phasio sends it). The result is in UTC.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	// Try the form the text looks like first: parsing is a hot path for Phasio,
	// whose timestamps have no zone.
	zoned := false
	if i := strings.IndexAny(s, "Tt "); i >= 0 {
		zoned = strings.ContainsAny(s[i:], "Zz+-")
	}
	if zoned {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t.UTC(), nil
		}
	}
	for _, layout := range [...]string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("not an ISO 8601 date-time")
}

// MetaTime wraps a time for CustomerSpec, nil for the zero time.
func MetaTime(t time.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	return &metav1.Time{Time: t.UTC()}
}

// OptionalTime parses s when set; an unparseable provider timestamp outside the
// event's identity is dropped rather than failing the event, since it orders nothing.
func OptionalTime(s string) *metav1.Time {
	if s == "" {
		return nil
	}
	t, err := ParseTime(s)
	if err != nil {
		return nil
	}
	return MetaTime(t)
}

// SetAttr records a provider extra under the provider's own key name; empty values
// are absent values and are not stored.
func SetAttr(m map[string]string, key, value string) map[string]string {
	if value == "" {
		return m
	}
	if m == nil {
		m = make(map[string]string, 4)
	}
	m[key] = value
	return m
}

// JoinNonEmpty joins the non-empty parts with sep.
func JoinNonEmpty(sep string, parts ...string) string {
	n := 0
	for _, p := range parts {
		if p != "" {
			n++
		}
	}
	if n == 0 {
		return ""
	}
	var b strings.Builder
	first := true
	for _, p := range parts {
		if p == "" {
			continue
		}
		if !first {
			b.WriteString(sep)
		}
		b.WriteString(p)
		first = false
	}
	return b.String()
}

// BoolPtr returns a pointer to a copy of v.
func BoolPtr(v bool) *bool { return &v }

// DecodeList decodes a JSON array (or null) into *list one element at a time,
// and refuses it with TooManyItems(field, limit) at the first element past
// limit, before decoding it: a list longer than the Customer API allows costs
// no more than limit elements. Providers call it from an UnmarshalJSON method.
func DecodeList[T any](b []byte, list *[]T, limit int, field string) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case nil:
		*list = nil
		return nil
	case json.Delim('['):
	case json.Delim('{'):
		return &json.UnmarshalTypeError{Value: "object", Type: reflect.TypeFor[[]T]()}
	default:
		return &json.UnmarshalTypeError{Value: reflect.TypeOf(tok).String(), Type: reflect.TypeFor[[]T]()}
	}
	out := (*list)[:0]
	for dec.More() {
		if len(out) == limit {
			return TooManyItems(field, limit)
		}
		var v T
		if err := dec.Decode(&v); err != nil {
			return err
		}
		out = append(out, v)
	}
	if _, err := dec.Token(); err != nil {
		return err
	}
	*list = out
	return nil
}
