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

// Package smarterpay decodes SmarterPay Cloud's webhooks: a batch of events, of
// which the customer_account ones describe customer accounts.
package smarterpay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
)

// SignatureHeader carries the lowercase hex HMAC-SHA256 of the raw body, keyed with
// the subscription's Webhook Key.
const SignatureHeader = "Webhook-Signature"

// ResourceCustomerAccount is the resource_type of customer events, and the event
// Type Parse reports for them (SmarterPay sends no separate event type).
const ResourceCustomerAccount = "customer_account"

// Provider is the SmarterPay Cloud provider.
type Provider struct{}

var _ providers.Provider = (*Provider)(nil)

var _ providers.Simulator = (*Provider)(nil)

var _ providers.HeaderAuthenticator = (*Provider)(nil)

// New returns the SmarterPay Cloud provider.
func New() *Provider { return &Provider{} }

// Name implements providers.Provider.
func (*Provider) Name() crmv1alpha1.Provider { return crmv1alpha1.ProviderSmarterPay }

// ValidateSecret requires a Webhook Key, Basic credentials, or both. A half-set
// Basic pair is an error even beside a Webhook Key: Parse would require Basic
// authentication and refuse every delivery.
func (*Provider) ValidateSecret(data map[string][]byte) error {
	basic, err := providers.HasBasicPair(data)
	if err != nil {
		return err
	}
	if !basic && !providers.HasSecret(data, providers.KeySecret) {
		return fmt.Errorf("secret key %q (or keys %q and %q) is missing or empty",
			providers.KeySecret, providers.KeyUsername, providers.KeyPassword)
	}
	return nil
}

func unauthorized(format string, args ...any) *providers.Error {
	e := providers.Unauthorized(format, args...)
	e.Status = providers.StatusSmarterPayUnauthorized
	return e
}

// AuthenticateHeader implements providers.HeaderAuthenticator. Basic
// credentials, when the Secret configures them, are checked before the body is
// read; a source with a Webhook Key still needs Parse to verify the signature.
func (*Provider) AuthenticateHeader(header http.Header, secret map[string][]byte) (bool, *providers.Error) {
	keys := providers.SecretValues(secret, providers.KeySecret)
	basic := providers.HasSecret(secret, providers.KeyUsername) || providers.HasSecret(secret, providers.KeyPassword)
	if len(keys) == 0 && !basic {
		return false, unauthorized("no credentials are configured for this source")
	}
	if basic && !providers.VerifyBasic(header, secret) {
		return false, unauthorized("missing or wrong Basic credentials")
	}
	return len(keys) == 0, nil
}

// Parse implements providers.Provider.
func (*Provider) Parse(req *providers.Request) (*providers.Result, error) {
	if err := authenticate(req); err != nil {
		return nil, err
	}

	res, perr := decode(req.Body, providers.EventLimit(req))
	if perr != nil {
		return nil, perr
	}
	return res, nil
}

// authenticate requires every method the Secret configures: the signature when it
// has a Webhook Key, Basic authentication when it has a username or password.
func authenticate(req *providers.Request) *providers.Error {
	keys := providers.SecretValues(req.Secret, providers.KeySecret)
	basic := providers.HasSecret(req.Secret, providers.KeyUsername) ||
		providers.HasSecret(req.Secret, providers.KeyPassword)
	if len(keys) == 0 && !basic {
		return unauthorized("no credentials are configured for this source")
	}
	if len(keys) > 0 {
		mac, ok := providers.DecodeHexMAC(req.Header.Get(SignatureHeader))
		if !ok {
			return unauthorized("missing or malformed %s header", SignatureHeader)
		}
		if providers.MatchHMAC([][]byte{mac}, keys, req.Body) < 0 {
			return unauthorized("%s does not match", SignatureHeader)
		}
	}
	if basic && !providers.VerifyBasic(req.Header, req.Secret) {
		return unauthorized("missing or wrong Basic credentials")
	}
	return nil
}

// decode reads the body as a stream: the events are decoded one at a time, the
// count checked before each, and only customer events are kept. What Parse
// allocates is then bounded by limit and by the customer events it keeps, not
// by how many elements the body holds. A type error in an event that is not a
// customer event only ignores that event: other resource types may use the same
// field names with other JSON types.
func decode(body []byte, limit int) (*providers.Result, *providers.Error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return nil, providers.JSONError(err, "")
	}
	var res *providers.Result
	switch tok {
	case nil:
	case json.Delim('{'):
		for dec.More() {
			key, err := dec.Token()
			if err != nil {
				return nil, providers.JSONError(err, "")
			}
			// encoding/json matches field names case-insensitively; so does this.
			if name, _ := key.(string); !strings.EqualFold(name, "events") {
				var skip json.RawMessage
				if err := dec.Decode(&skip); err != nil {
					return nil, providers.JSONError(err, "")
				}
				continue
			}
			// A repeated key replaces the earlier value, as in encoding/json.
			var perr *providers.Error
			if res, perr = decodeEvents(dec, limit); perr != nil {
				return nil, perr
			}
		}
		if _, err := dec.Token(); err != nil {
			return nil, providers.JSONError(err, "")
		}
	default:
		return nil, providers.Malformed("", "body is not a JSON object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, providers.Malformed("", "body holds more than one JSON value")
	}
	if res == nil {
		return nil, providers.Malformed("events", "body has no events array")
	}
	return res, nil
}

// decodeEvents decodes the value of "events", nil for null.
func decodeEvents(dec *json.Decoder, limit int) (*providers.Result, *providers.Error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, providers.JSONError(err, "events")
	}
	switch tok {
	case nil:
		return nil, nil
	case json.Delim('['):
	default:
		return nil, providers.Malformed("events", "field has the wrong JSON type, want an array")
	}
	res := &providers.Result{}
	e := new(event)
	for i := 0; dec.More(); i++ {
		if i == limit {
			return nil, providers.TooManyEvents("events", limit)
		}
		*e = event{}
		if err := dec.Decode(e); err != nil {
			var typeErr *json.UnmarshalTypeError
			// The decoder reads the whole element before it reports a type
			// error, so the fields that did decode say what the element is. An
			// element that is not an object (no field) is no event at all.
			if !errors.As(err, &typeErr) || typeErr.Field == "" || strings.EqualFold(typeErr.Field, "resource_type") ||
				e.ResourceType == ResourceCustomerAccount {
				return nil, providers.JSONError(err, fmt.Sprintf("events[%d]", i))
			}
		}
		if e.ResourceType != ResourceCustomerAccount {
			res.Ignored++
			continue
		}
		out, perr := e.event(i)
		if perr != nil {
			return nil, perr
		}
		res.Events = append(res.Events, out)
	}
	if _, err := dec.Token(); err != nil {
		return nil, providers.JSONError(err, "events")
	}
	return res, nil
}

type event struct {
	ID                   providers.FlexString `json:"id"`
	CreatedAt            string               `json:"created_at"`
	ResourceType         string               `json:"resource_type"`
	Description          string               `json:"description"`
	EventSource          providers.FlexString `json:"event_source"`
	Reference            providers.FlexString `json:"reference"`
	Email                string               `json:"Email"`
	CompanyName          string               `json:"company_name"`
	FirstName            string               `json:"first_name"`
	LastName             string               `json:"last_name"`
	AddressLine1         string               `json:"address_line1"`
	AddressLine2         string               `json:"address_line2"`
	City                 string               `json:"city"`
	PostalCode           string               `json:"postal_code"`
	CountryCode          string               `json:"country_code"`
	Status               string               `json:"status"`
	Title                string               `json:"title"`
	DeliveryAddressLine1 string               `json:"delivery_address_line1"`
	DeliveryAddressLine2 string               `json:"delivery_address_line2"`
	DeliveryCity         string               `json:"delivery_city"`
	DeliveryPostalCode   string               `json:"delivery_postal_code"`
	DeliveryCountryCode  string               `json:"delivery_country_code"`
	CustomReference      string               `json:"custom_reference"`
}

func (e *event) event(i int) (providers.Event, *providers.Error) {
	field := func(name string) string { return fmt.Sprintf("events[%d].%s", i, name) }
	if e.Reference == "" {
		return providers.Event{}, providers.MissingField(field("reference"))
	}
	// The event id de-duplicates and created_at orders; SmarterPay documents both
	// as never empty, so an event without them cannot be applied safely.
	if e.ID == "" {
		return providers.Event{}, providers.MissingField(field("id"))
	}
	if e.CreatedAt == "" {
		return providers.Event{}, providers.MissingField(field("created_at"))
	}
	at, err := providers.ParseTime(e.CreatedAt)
	if err != nil {
		return providers.Event{}, providers.Malformed(field("created_at"), "not an ISO 8601 date-time")
	}

	spec := crmv1alpha1.CustomerSpec{
		Provider:          crmv1alpha1.ProviderSmarterPay,
		ExternalID:        string(e.Reference),
		DisplayName:       e.CompanyName,
		CompanyName:       e.CompanyName,
		Email:             e.Email,
		ProviderUpdatedAt: providers.MetaTime(at),
	}
	if spec.DisplayName == "" {
		spec.DisplayName = providers.JoinNonEmpty(" ", e.Title, e.FirstName, e.LastName)
	}
	if e.Title != "" || e.FirstName != "" || e.LastName != "" || e.Email != "" {
		spec.Contacts = []crmv1alpha1.Contact{{
			Title:     e.Title,
			FirstName: e.FirstName,
			LastName:  e.LastName,
			Email:     e.Email,
		}}
	}
	// A country alone is not an address: SmarterPay fills delivery_country_code
	// even when the account has no delivery address.
	for _, a := range []crmv1alpha1.Address{
		{Type: crmv1alpha1.AddressBilling, Line1: e.AddressLine1, Line2: e.AddressLine2, City: e.City, PostalCode: e.PostalCode, Country: e.CountryCode},
		{Type: crmv1alpha1.AddressDelivery, Line1: e.DeliveryAddressLine1, Line2: e.DeliveryAddressLine2, City: e.DeliveryCity, PostalCode: e.DeliveryPostalCode, Country: e.DeliveryCountryCode},
	} {
		if a.Line1 != "" || a.Line2 != "" || a.City != "" || a.PostalCode != "" {
			spec.Addresses = append(spec.Addresses, a)
		}
	}
	switch strings.ToLower(e.Status) {
	case "active":
		spec.Lifecycle = crmv1alpha1.LifecycleActive
	case "inactive":
		spec.Lifecycle = crmv1alpha1.LifecycleInactive
	}
	spec.Attributes = providers.SetAttr(spec.Attributes, "custom_reference", e.CustomReference)
	spec.Attributes = providers.SetAttr(spec.Attributes, "event_source", string(e.EventSource))
	spec.Attributes = providers.SetAttr(spec.Attributes, "description", e.Description)

	return providers.Event{
		ID:       string(e.ID),
		Type:     ResourceCustomerAccount,
		Time:     at,
		Action:   providers.ActionUpsert,
		Customer: spec,
		Fields:   providers.EventFields{ID: field("id"), Type: field("resource_type"), Time: field("created_at")},
	}, nil
}

// Prepare implements providers.Simulator: it signs the body when the Secret has a
// Webhook Key and adds Basic authentication when it has a username and password,
// as a subscription configured with both sends both.
func (*Provider) Prepare(plaintext []byte, secret map[string][]byte, _ time.Time) ([]byte, http.Header, error) {
	key := providers.SecretValue(secret, providers.KeySecret)
	user := providers.SecretValue(secret, providers.KeyUsername)
	pass := providers.SecretValue(secret, providers.KeyPassword)
	if len(key) == 0 && (len(user) == 0 || len(pass) == 0) {
		return nil, nil, fmt.Errorf("secret key %q (or keys %q and %q) is missing or empty",
			providers.KeySecret, providers.KeyUsername, providers.KeyPassword)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	if len(key) > 0 {
		h.Set(SignatureHeader, providers.HMACSHA256Hex(key, plaintext))
	}
	if len(user) > 0 && len(pass) > 0 {
		h.Set("Authorization", providers.BasicHeader(user, pass))
	}
	return plaintext, h, nil
}
