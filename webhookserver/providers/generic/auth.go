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

package generic

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"time"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
)

// Standard Webhooks headers and key prefix (https://www.standardwebhooks.com).
const (
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
	standardKeyPrefix      = "whsec_"
)

// maxSignatures bounds the signatures read from one header: a sender rotating
// keys sends two or three, and each costs an HMAC per key.
const maxSignatures = 8

// standardKeys decodes the whsec_ keys of the Secret, current first.
func standardKeys(secret map[string][]byte) ([][]byte, error) {
	var out [][]byte
	for _, key := range []string{providers.KeySecret, providers.KeyPreviousSecret} {
		v := providers.SecretValue(secret, key)
		if len(v) == 0 {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(strings.TrimSpace(string(v)), standardKeyPrefix))
		if err != nil || len(k) == 0 {
			return nil, fmt.Errorf("secret key %q is not a whsec_ key (Base64 after whsec_)", key)
		}
		out = append(out, k)
	}
	return out, nil
}

func validateSecret(auth *crmv1alpha1.GenericAuthentication, data map[string][]byte) error {
	switch {
	case auth.StandardWebhooks != nil:
		if !providers.HasSecret(data, providers.KeySecret) {
			return providers.MissingSecretKey(providers.KeySecret)
		}
		_, err := standardKeys(data)
		return err
	case auth.HMAC != nil:
		if !providers.HasSecret(data, providers.KeySecret) {
			return providers.MissingSecretKey(providers.KeySecret)
		}
	case auth.Basic != nil:
		for _, k := range []string{providers.KeyUsername, providers.KeyPassword} {
			if !providers.HasSecret(data, k) {
				return providers.MissingSecretKey(k)
			}
		}
	case auth.Bearer != nil:
		if !providers.HasSecret(data, providers.KeyToken) {
			return providers.MissingSecretKey(providers.KeyToken)
		}
	}
	return nil
}

// authenticateHeader checks what the header alone can: basic and bearer
// credentials in full, and the presence of a signature header otherwise.
func authenticateHeader(auth *crmv1alpha1.GenericAuthentication, h http.Header, secret map[string][]byte) (bool, *providers.Error) {
	switch {
	case auth.Basic != nil:
		if !providers.VerifyBasic(h, secret) {
			return false, providers.Unauthorized("missing or wrong Basic credentials")
		}
		return true, nil
	case auth.Bearer != nil:
		if !providers.VerifyBearer(h, secret) {
			return false, providers.Unauthorized("missing or wrong bearer token")
		}
		return true, nil
	case auth.StandardWebhooks != nil:
		for _, name := range []string{HeaderWebhookID, HeaderWebhookTimestamp, HeaderWebhookSignature} {
			if strings.TrimSpace(h.Get(name)) == "" {
				return false, providers.Unauthorized("missing %s header", name)
			}
		}
	case auth.HMAC != nil:
		if strings.TrimSpace(h.Get(auth.HMAC.Header)) == "" {
			return false, providers.Unauthorized("missing %s header", auth.HMAC.Header)
		}
		if th := auth.HMAC.TimestampHeader; th != "" && strings.TrimSpace(h.Get(th)) == "" {
			return false, providers.Unauthorized("missing %s header", th)
		}
	}
	return false, nil
}

// verify authenticates a request whose body has been read. The signature is
// checked before the timestamp, so only an authentic but old delivery (a
// replay) is reported as a timestamp rejection.
func verify(auth *crmv1alpha1.GenericAuthentication, req *providers.Request) *providers.Error {
	if _, err := authenticateHeader(auth, req.Header, req.Secret); err != nil {
		return err
	}
	switch {
	case auth.StandardWebhooks != nil:
		return verifyStandard(req)
	case auth.HMAC != nil:
		return verifyHMAC(auth.HMAC, req)
	}
	return nil
}

func verifyStandard(req *providers.Request) *providers.Error {
	keys, err := standardKeys(req.Secret)
	if err != nil || len(keys) == 0 {
		return providers.Unauthorized("no signing key is configured for this source")
	}
	id := strings.TrimSpace(req.Header.Get(HeaderWebhookID))
	ts := strings.TrimSpace(req.Header.Get(HeaderWebhookTimestamp))
	unix, perr := strconv.ParseInt(ts, 10, 64)
	if perr != nil {
		return providers.Unauthorized("%s is not Unix seconds", HeaderWebhookTimestamp)
	}
	var macs [][]byte
	for _, part := range strings.Fields(req.Header.Get(HeaderWebhookSignature)) {
		version, sig, ok := strings.Cut(part, ",")
		if !ok || version != "v1" || len(macs) == maxSignatures {
			continue
		}
		if mac, err := base64.StdEncoding.DecodeString(sig); err == nil && len(mac) == sha256.Size {
			macs = append(macs, mac)
		}
	}
	if len(macs) == 0 {
		return providers.Unauthorized("%s carries no v1 signature", HeaderWebhookSignature)
	}
	if providers.MatchHMAC(macs, keys, []byte(id), []byte{'.'}, []byte(ts), []byte{'.'}, req.Body) < 0 {
		return providers.Unauthorized("%s does not match", HeaderWebhookSignature)
	}
	if !providers.WithinTolerance(time.Unix(unix, 0), providers.RequestNow(req), req.Tolerance) {
		return providers.Expired("%s is outside the tolerance", HeaderWebhookTimestamp)
	}
	return nil
}

func hashOf(alg crmv1alpha1.HMACAlgorithm) (func() hash.Hash, int) {
	switch alg {
	case crmv1alpha1.HMACSHA1:
		return sha1.New, sha1.Size
	case crmv1alpha1.HMACSHA512:
		return sha512.New, sha512.Size
	}
	return sha256.New, sha256.Size
}

func decodeSignature(enc crmv1alpha1.SignatureEncoding, s string, size int) ([]byte, bool) {
	s = strings.TrimSpace(s)
	var (
		mac []byte
		err error
	)
	if enc == crmv1alpha1.SignatureBase64 {
		mac, err = base64.StdEncoding.DecodeString(s)
		if err != nil {
			mac, err = base64.URLEncoding.DecodeString(s)
		}
	} else {
		mac, err = hex.DecodeString(s)
	}
	return mac, err == nil && len(mac) == size
}

// hmacSignature is what a signature header holds.
type hmacSignature struct {
	macs [][]byte
	// ts is the timestamp exactly as sent, since it is signed as text.
	ts string
}

func parseHMACHeader(cfg *crmv1alpha1.HMACAuthentication, h http.Header) (hmacSignature, *providers.Error) {
	_, size := hashOf(cfg.Algorithm)
	v := strings.TrimSpace(h.Get(cfg.Header))
	var sig hmacSignature
	var raw []string
	switch {
	case cfg.SignatureKey != "":
		for part := range strings.SplitSeq(v, ",") {
			k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
			switch strings.TrimSpace(k) {
			case cfg.SignatureKey:
				if len(raw) < maxSignatures {
					raw = append(raw, val)
				}
			case cfg.TimestampKey:
				if cfg.TimestampKey != "" {
					if sig.ts != "" {
						return sig, providers.Unauthorized("%s carries %s twice", cfg.Header, cfg.TimestampKey)
					}
					sig.ts = strings.TrimSpace(val)
				}
			}
		}
		if cfg.TimestampKey != "" && sig.ts == "" {
			return sig, providers.Unauthorized("%s carries no %s", cfg.Header, cfg.TimestampKey)
		}
	case cfg.Prefix != "":
		rest, ok := strings.CutPrefix(v, cfg.Prefix)
		if !ok {
			return sig, providers.Unauthorized("%s does not start with %q", cfg.Header, cfg.Prefix)
		}
		raw = append(raw, rest)
	default:
		raw = append(raw, v)
	}
	for _, r := range raw {
		// A signature that does not decode cannot match; another one still may.
		if mac, ok := decodeSignature(cfg.Encoding, r, size); ok {
			sig.macs = append(sig.macs, mac)
		}
	}
	if len(sig.macs) == 0 {
		return sig, providers.Unauthorized("%s carries no %s signature of %d bytes", cfg.Header, encodingName(cfg.Encoding), size)
	}
	if cfg.TimestampHeader != "" {
		sig.ts = strings.TrimSpace(h.Get(cfg.TimestampHeader))
	}
	return sig, nil
}

func encodingName(e crmv1alpha1.SignatureEncoding) string {
	if e == "" {
		return string(crmv1alpha1.SignatureHex)
	}
	return string(e)
}

// signedParts splits the signed-content template into the parts to hash, so
// that the body is not copied.
func signedParts(template, ts string, body []byte) [][]byte {
	if template == "" {
		return [][]byte{body}
	}
	var parts [][]byte
	for template != "" {
		i := strings.IndexByte(template, '{')
		if i < 0 {
			parts = append(parts, []byte(template))
			break
		}
		if i > 0 {
			parts = append(parts, []byte(template[:i]))
		}
		rest := template[i:]
		switch {
		case strings.HasPrefix(rest, "{body}"):
			parts = append(parts, body)
			template = rest[len("{body}"):]
		case strings.HasPrefix(rest, "{timestamp}"):
			parts = append(parts, []byte(ts))
			template = rest[len("{timestamp}"):]
		default:
			parts = append(parts, []byte("{"))
			template = rest[1:]
		}
	}
	return parts
}

func macOf(alg crmv1alpha1.HMACAlgorithm, key []byte, parts [][]byte) []byte {
	newHash, _ := hashOf(alg)
	m := hmac.New(newHash, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

func verifyHMAC(cfg *crmv1alpha1.HMACAuthentication, req *providers.Request) *providers.Error {
	keys := providers.SecretValues(req.Secret, providers.KeySecret)
	if len(keys) == 0 {
		return providers.Unauthorized("no signing key is configured for this source")
	}
	sig, perr := parseHMACHeader(cfg, req.Header)
	if perr != nil {
		return perr
	}
	timed := cfg.TimestampHeader != "" || cfg.TimestampKey != ""
	var unix int64
	if timed {
		n, err := strconv.ParseInt(sig.ts, 10, 64)
		if err != nil {
			return providers.Unauthorized("the signed timestamp is not Unix seconds")
		}
		unix = n
	}
	parts := signedParts(cfg.SignedContent, sig.ts, req.Body)
	matched := false
	for _, k := range keys {
		sum := macOf(cfg.Algorithm, k, parts)
		for _, mac := range sig.macs {
			if hmac.Equal(sum, mac) {
				matched = true
			}
		}
	}
	if !matched {
		return providers.Unauthorized("%s does not match", cfg.Header)
	}
	if timed && !providers.WithinTolerance(time.Unix(unix, 0), providers.RequestNow(req), req.Tolerance) {
		return providers.Expired("the signed timestamp is outside the tolerance")
	}
	return nil
}

// sign builds the headers a sender configured as auth would send.
func sign(auth *crmv1alpha1.GenericAuthentication, body []byte, secret map[string][]byte, now time.Time) (http.Header, error) {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	ts := strconv.FormatInt(now.Unix(), 10)
	switch {
	case auth.StandardWebhooks != nil:
		keys, err := standardKeys(secret)
		if err != nil {
			return nil, err
		}
		if len(keys) == 0 {
			return nil, providers.MissingSecretKey(providers.KeySecret)
		}
		id := "msg_" + providers.HMACSHA256Hex([]byte("id"), body)[:24]
		mac := providers.HMACSHA256(keys[0], []byte(id), []byte{'.'}, []byte(ts), []byte{'.'}, body)
		h.Set(HeaderWebhookID, id)
		h.Set(HeaderWebhookTimestamp, ts)
		h.Set(HeaderWebhookSignature, "v1,"+base64.StdEncoding.EncodeToString(mac))
	case auth.HMAC != nil:
		cfg := auth.HMAC
		key := providers.SecretValue(secret, providers.KeySecret)
		if len(key) == 0 {
			return nil, providers.MissingSecretKey(providers.KeySecret)
		}
		mac := macOf(cfg.Algorithm, key, signedParts(cfg.SignedContent, ts, body))
		enc := hex.EncodeToString(mac)
		if cfg.Encoding == crmv1alpha1.SignatureBase64 {
			enc = base64.StdEncoding.EncodeToString(mac)
		}
		switch {
		case cfg.SignatureKey != "" && cfg.TimestampKey != "":
			h.Set(cfg.Header, cfg.TimestampKey+"="+ts+","+cfg.SignatureKey+"="+enc)
		case cfg.SignatureKey != "":
			h.Set(cfg.Header, cfg.SignatureKey+"="+enc)
		default:
			h.Set(cfg.Header, cfg.Prefix+enc)
		}
		if cfg.TimestampHeader != "" {
			h.Set(cfg.TimestampHeader, ts)
		}
	case auth.Basic != nil:
		h.Set("Authorization", providers.BasicHeader(providers.SecretValue(secret, providers.KeyUsername), providers.SecretValue(secret, providers.KeyPassword)))
	case auth.Bearer != nil:
		h.Set("Authorization", "Bearer "+string(providers.SecretValue(secret, providers.KeyToken)))
	}
	return h, nil
}
