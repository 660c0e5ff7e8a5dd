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

// Package phasio decodes Phasio's customer organisation webhooks: an AES-256-GCM
// encrypted organisation, signed with HMAC-SHA256 over the encrypted string.
package phasio

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
)

// SignatureHeader carries the lowercase hex HMAC-SHA256 of the encrypted payload.
const SignatureHeader = "X-Phasio-Signature"

// Event types. A Phasio webhook is configured for one of them and the payload does
// not say which, so Parse tells them apart by the organisation's timestamps.
const (
	EventCreated = "CUSTOMER_ORGANISATION_CREATED"
	EventUpdated = "CUSTOMER_ORGANISATION_UPDATED"
)

const (
	keySize   = 32
	nonceSize = 12
	tagSize   = 16
)

// Provider is the Phasio provider.
type Provider struct{}

var _ providers.Provider = (*Provider)(nil)

var _ providers.Simulator = (*Provider)(nil)

// New returns the Phasio provider.
func New() *Provider { return &Provider{} }

// Name implements providers.Provider.
func (*Provider) Name() crmv1alpha1.Provider { return crmv1alpha1.ProviderPhasio }

// ValidateSecret requires `secret` (and `previousSecret`, when set) to be a 32-byte
// AES key, since a key that signs but cannot decrypt would reject every delivery.
func (*Provider) ValidateSecret(data map[string][]byte) error {
	if !providers.HasSecret(data, providers.KeySecret) {
		return providers.MissingSecretKey(providers.KeySecret)
	}
	for _, key := range []string{providers.KeySecret, providers.KeyPreviousSecret} {
		v := providers.SecretValue(data, key)
		if len(v) == 0 {
			continue
		}
		if _, err := aesKey(v); err != nil {
			return fmt.Errorf("secret key %q: %w", key, err)
		}
	}
	return nil
}

// aesKey decodes the webhook secret as Phasio shows it into the AES-256 key.
func aesKey(secret []byte) ([]byte, error) {
	k, err := providers.DecodeBase64Key(string(secret))
	if err != nil {
		return nil, fmt.Errorf("not Base64 (URL-safe or standard)")
	}
	if len(k) != keySize {
		return nil, fmt.Errorf("decodes to %d bytes, want a %d-byte AES-256 key", len(k), keySize)
	}
	return k, nil
}

// Parse implements providers.Provider.
func (*Provider) Parse(req *providers.Request) (*providers.Result, error) {
	mac, ok := providers.DecodeHexMAC(req.Header.Get(SignatureHeader))
	if !ok {
		return nil, providers.Unauthorized("missing or malformed %s header", SignatureHeader)
	}
	// The signature covers E, which sits inside the envelope; an envelope that does
	// not parse is signed as the bare body, so an unauthenticated sender learns
	// nothing about what this server would have accepted.
	e, envErr := envelope(req.Body)

	var key []byte
	for _, s := range providers.SecretValues(req.Secret, providers.KeySecret) {
		k, kerr := aesKey(s)
		// Not documented by the provider whether it keys the HMAC with the secret
		// string or the decoded key bytes: accept both.
		if !signedWith(mac, e, s) && (kerr != nil || !signedWith(mac, e, k)) {
			continue
		}
		if kerr != nil {
			return nil, providers.DecryptFailed("the signing secret is not a usable AES-256 key")
		}
		key = k
		break
	}
	if key == nil {
		return nil, providers.Unauthorized("%s does not match", SignatureHeader)
	}
	if envErr != nil {
		return nil, envErr
	}

	plaintext, perr := decrypt(key, e)
	if perr != nil {
		return nil, perr
	}
	var org organisation
	if err := json.Unmarshal(plaintext, &org); err != nil {
		var perr *providers.Error
		if errors.As(err, &perr) {
			return nil, perr
		}
		return nil, providers.JSONError(err, "")
	}
	ev, merr := org.event()
	if merr != nil {
		return nil, merr
	}
	return &providers.Result{Events: []providers.Event{ev}}, nil
}

func signedWith(mac, e, key []byte) bool {
	return hmac.Equal(mac, providers.HMACSHA256(key, e))
}

// envelopeFields are the object forms Phasio may wrap E in (not documented by the
// provider), in the order they are preferred when several are present.
type envelopeFields struct {
	Payload           json.RawMessage `json:"payload"`
	EncryptedPayload  json.RawMessage `json:"encryptedPayload"`
	EncryptedPayload2 json.RawMessage `json:"encrypted_payload"`
	Data              json.RawMessage `json:"data"`
}

// envelope extracts E from a JSON string, a one-field JSON object, or a bare body.
// On error it still returns the trimmed body as E, for the signature check.
func envelope(body []byte) ([]byte, *providers.Error) {
	b := bytes.TrimSpace(body)
	if len(b) == 0 {
		return b, providers.Malformed("", "empty body")
	}
	switch b[0] {
	case '"':
		s, err := unquote(b)
		if err != nil {
			return b, providers.Malformed("", "body is not a valid JSON string")
		}
		return s, nil
	case '{':
		var env envelopeFields
		if err := json.Unmarshal(b, &env); err != nil {
			return b, providers.JSONError(err, "")
		}
		for _, f := range []struct {
			name string
			raw  json.RawMessage
		}{{"payload", env.Payload}, {"encryptedPayload", env.EncryptedPayload}, {"encrypted_payload", env.EncryptedPayload2}, {"data", env.Data}} {
			if len(f.raw) == 0 || f.raw[0] != '"' {
				continue
			}
			s, err := unquote(f.raw)
			if err != nil {
				return b, providers.Malformed(f.name, "not a valid JSON string")
			}
			return s, nil
		}
		return b, providers.MissingField("payload")
	}
	return b, nil
}

// unquote decodes a JSON string; E is Base64 URL-safe and needs no escapes, so the
// common case is a slice of the body rather than a copy.
func unquote(b []byte) ([]byte, error) {
	if len(b) >= 2 && b[len(b)-1] == '"' {
		inner := b[1 : len(b)-1]
		if isBase64(inner) {
			return inner, nil
		}
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// isBase64 also rules out quotes and escapes, so a match needs no unquoting.
func isBase64(b []byte) bool {
	for _, c := range b {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9',
			c == '-', c == '_', c == '+', c == '/', c == '=':
		default:
			return false
		}
	}
	return true
}

// decrypt opens nonce || ciphertext || tag, in place.
func decrypt(key, e []byte) ([]byte, *providers.Error) {
	e = bytes.TrimRight(e, "=")
	enc := base64.RawURLEncoding
	if bytes.ContainsAny(e, "+/") {
		enc = base64.RawStdEncoding
	}
	raw := make([]byte, enc.DecodedLen(len(e)))
	n, err := enc.Decode(raw, e)
	if err != nil {
		return nil, providers.Malformed("", "encrypted payload is not Base64")
	}
	raw = raw[:n]
	if len(raw) < nonceSize+tagSize {
		return nil, providers.DecryptFailed("encrypted payload is too short")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, providers.DecryptFailed("the signing secret is not a usable AES-256 key")
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, providers.DecryptFailed("the signing secret is not a usable AES-256 key")
	}
	nonce, sealed := raw[:nonceSize], raw[nonceSize:]
	plaintext, err := gcm.Open(sealed[:0], nonce, sealed, nil)
	if err != nil {
		return nil, providers.DecryptFailed("payload does not decrypt with the configured key")
	}
	return plaintext, nil
}

type organisation struct {
	ID            providers.FlexString `json:"id"`
	Name          string               `json:"name"`
	TaxNumber     string               `json:"taxNumber"`
	Language      string               `json:"language"`
	Customers     contacts             `json:"customers"`
	Addresses     addresses            `json:"addresses"`
	IsTaxExempt   *bool                `json:"isTaxExempt"`
	IsApproved    *bool                `json:"isApproved"`
	CreatedAt     string               `json:"createdAt"`
	LastUpdatedOn string               `json:"lastUpdatedOn"`
}

// contacts and addresses stop decoding at the Customer API's MaxItems, so an
// organisation with more is refused before the rest of its list is allocated.
type (
	contacts  []contact
	addresses []address
)

// UnmarshalJSON implements json.Unmarshaler.
func (c *contacts) UnmarshalJSON(b []byte) error {
	return providers.DecodeList(b, (*[]contact)(c), crmv1alpha1.MaxContacts, "customers")
}

// UnmarshalJSON implements json.Unmarshaler.
func (a *addresses) UnmarshalJSON(b []byte) error {
	return providers.DecodeList(b, (*[]address)(a), crmv1alpha1.MaxAddresses, "addresses")
}

type contact struct {
	ID                     providers.FlexString `json:"id"`
	Email                  string               `json:"email"`
	PhoneNumber            string               `json:"phoneNumber"`
	FirstName              string               `json:"firstName"`
	LastName               string               `json:"lastName"`
	NotificationPreference string               `json:"notificationPreference"`
}

type address struct {
	Street1     string `json:"street1"`
	Street2     string `json:"street2"`
	City        string `json:"city"`
	State       string `json:"state"`
	Country     string `json:"country"`
	Zip         string `json:"zip"`
	Name        string `json:"name"`
	Phone       string `json:"phone"`
	Email       string `json:"email"`
	Residential *bool  `json:"residential"`
}

func (o *organisation) event() (providers.Event, *providers.Error) {
	if o.ID == "" {
		return providers.Event{}, providers.MissingField("id")
	}
	// lastUpdatedOn is both the event's order and part of its identity.
	if o.LastUpdatedOn == "" {
		return providers.Event{}, providers.MissingField("lastUpdatedOn")
	}
	updated, err := providers.ParseTime(o.LastUpdatedOn)
	if err != nil {
		return providers.Event{}, providers.Malformed("lastUpdatedOn", "not an ISO 8601 date-time")
	}
	var created time.Time
	if o.CreatedAt != "" {
		if created, err = providers.ParseTime(o.CreatedAt); err != nil {
			return providers.Event{}, providers.Malformed("createdAt", "not an ISO 8601 date-time")
		}
	}

	typ := EventUpdated
	if !created.IsZero() && created.Equal(updated) {
		typ = EventCreated
	}

	spec := crmv1alpha1.CustomerSpec{
		Provider:          crmv1alpha1.ProviderPhasio,
		ExternalID:        string(o.ID),
		DisplayName:       o.Name,
		CompanyName:       o.Name,
		TaxID:             o.TaxNumber,
		TaxExempt:         o.IsTaxExempt,
		Approved:          o.IsApproved,
		Language:          o.Language,
		ProviderCreatedAt: providers.MetaTime(created),
		ProviderUpdatedAt: providers.MetaTime(updated),
	}
	if len(o.Customers) > 0 {
		spec.Contacts = make([]crmv1alpha1.Contact, len(o.Customers))
		for i, c := range o.Customers {
			spec.Contacts[i] = crmv1alpha1.Contact{
				ID:                     string(c.ID),
				FirstName:              c.FirstName,
				LastName:               c.LastName,
				Email:                  c.Email,
				Phone:                  c.PhoneNumber,
				NotificationPreference: c.NotificationPreference,
			}
		}
		spec.Email = o.Customers[0].Email
		spec.Phone = o.Customers[0].PhoneNumber
	}
	if len(o.Addresses) > 0 {
		spec.Addresses = make([]crmv1alpha1.Address, len(o.Addresses))
		for i, a := range o.Addresses {
			spec.Addresses[i] = crmv1alpha1.Address{
				Type:        crmv1alpha1.AddressOther,
				Name:        a.Name,
				Line1:       a.Street1,
				Line2:       a.Street2,
				City:        a.City,
				State:       a.State,
				PostalCode:  a.Zip,
				Country:     a.Country,
				Phone:       a.Phone,
				Email:       a.Email,
				Residential: a.Residential,
			}
		}
	}
	return providers.Event{
		ID:       "phasio:" + string(o.ID) + ":" + o.LastUpdatedOn,
		Type:     typ,
		Time:     updated,
		Action:   providers.ActionUpsert,
		Customer: spec,
		// The id is made of the organisation's id and lastUpdatedOn; the type
		// is the provider's own.
		Fields: providers.EventFields{ID: "id", Time: "lastUpdatedOn"},
	}, nil
}

// Prepare implements providers.Simulator: it encrypts plaintext with the key in
// `secret` under a fresh nonce and sends E as a JSON string, signed with the
// secret string.
func (*Provider) Prepare(plaintext []byte, secret map[string][]byte, _ time.Time) ([]byte, http.Header, error) {
	s := providers.SecretValue(secret, providers.KeySecret)
	if len(s) == 0 {
		return nil, nil, providers.MissingSecretKey(providers.KeySecret)
	}
	key, err := aesKey(s)
	if err != nil {
		return nil, nil, fmt.Errorf("secret key %q: %w", providers.KeySecret, err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, nil, err
	}
	sealed := make([]byte, nonceSize, nonceSize+len(plaintext)+tagSize)
	if _, err := rand.Read(sealed); err != nil {
		return nil, nil, err
	}
	sealed = gcm.Seal(sealed, sealed[:nonceSize], plaintext, nil)
	e := base64.URLEncoding.EncodeToString(sealed)
	body, err := json.Marshal(e)
	if err != nil {
		return nil, nil, err
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(SignatureHeader, hex.EncodeToString(providers.HMACSHA256(s, []byte(e))))
	return body, h, nil
}
