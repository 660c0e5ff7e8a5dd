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

// Package gettrx decodes GETTRX One's customer events (customer.created,
// customer.updated, customer.deleted), signed with HMAC-SHA256.
package gettrx

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
)

// SignatureHeader carries either `t=<unix seconds>,v1=<hex>[,v1=<hex>...]` or a
// bare hex HMAC-SHA256 of the body. GETTRX does not document the scheme; both are
// accepted.
const SignatureHeader = "X-Webhook-Signature"

// Customer event types; every other type is ignored.
const (
	EventCustomerCreated = "customer.created"
	EventCustomerUpdated = "customer.updated"
	EventCustomerDeleted = "customer.deleted"
)

// Provider is the GETTRX One provider.
type Provider struct{}

var _ providers.Provider = (*Provider)(nil)

var _ providers.Simulator = (*Provider)(nil)

// New returns the GETTRX One provider.
func New() *Provider { return &Provider{} }

// Name implements providers.Provider.
func (*Provider) Name() crmv1alpha1.Provider { return crmv1alpha1.ProviderGETTRX }

// ValidateSecret requires the signing key.
func (*Provider) ValidateSecret(data map[string][]byte) error {
	if !providers.HasSecret(data, providers.KeySecret) {
		return providers.MissingSecretKey(providers.KeySecret)
	}
	return nil
}

// Parse implements providers.Provider.
func (*Provider) Parse(req *providers.Request) (*providers.Result, error) {
	if err := verify(req); err != nil {
		return nil, err
	}

	var ev envelope
	if err := json.Unmarshal(req.Body, &ev); err != nil {
		var typeErr *json.UnmarshalTypeError
		if !errors.As(err, &typeErr) {
			return nil, providers.JSONError(err, "")
		}
		// Other event types carry other objects, whose fields may share names with
		// a customer's but not their JSON types: only a customer event must decode.
		var head struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(req.Body, &head) == nil && !isCustomerEvent(head.Type) {
			return &providers.Result{Ignored: 1}, nil
		}
		return nil, providers.JSONError(err, "")
	}
	if !isCustomerEvent(ev.Type) {
		return &providers.Result{Ignored: 1}, nil
	}
	out, err := ev.event()
	if err != nil {
		return nil, err
	}
	return &providers.Result{Events: []providers.Event{out}}, nil
}

func isCustomerEvent(t string) bool {
	return t == EventCustomerCreated || t == EventCustomerUpdated || t == EventCustomerDeleted
}

// verify checks the signature and then the signed timestamp, so that only an
// authentic but old delivery (a replay) is reported as a timestamp rejection.
func verify(req *providers.Request) *providers.Error {
	keys := providers.SecretValues(req.Secret, providers.KeySecret)
	if len(keys) == 0 {
		return providers.Unauthorized("no signing key is configured for this source")
	}
	sig, ok := parseSignature(req.Header.Get(SignatureHeader))
	if !ok {
		return providers.Unauthorized("missing or malformed %s header", SignatureHeader)
	}
	if sig.t == "" {
		if providers.MatchHMAC(sig.macs, keys, req.Body) < 0 {
			return providers.Unauthorized("%s does not match", SignatureHeader)
		}
		return nil
	}
	if providers.MatchHMAC(sig.macs, keys, []byte(sig.t), []byte{'.'}, req.Body) < 0 {
		return providers.Unauthorized("%s does not match", SignatureHeader)
	}
	if !providers.WithinTolerance(time.Unix(sig.unix, 0), providers.RequestNow(req), req.Tolerance) {
		return providers.Expired("%s timestamp is outside the tolerance", SignatureHeader)
	}
	return nil
}

type signature struct {
	// t is the timestamp exactly as sent, since it is signed as text.
	t    string
	unix int64
	macs [][]byte
}

func parseSignature(v string) (signature, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return signature{}, false
	}
	if !strings.ContainsAny(v, "=,") {
		mac, ok := providers.DecodeHexMAC(v)
		return signature{macs: [][]byte{mac}}, ok
	}
	var sig signature
	for part := range strings.SplitSeq(v, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch strings.TrimSpace(k) {
		case "t":
			val = strings.TrimSpace(val)
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil || sig.t != "" {
				return signature{}, false
			}
			sig.t, sig.unix = val, n
		case "v1":
			// A v1 that is not hex cannot match; another v1 entry still may.
			if mac, ok := providers.DecodeHexMAC(val); ok {
				sig.macs = append(sig.macs, mac)
			}
		}
	}
	return sig, sig.t != "" && len(sig.macs) > 0
}

type envelope struct {
	ID      providers.FlexString `json:"id"`
	Type    string               `json:"type"`
	Created providers.FlexString `json:"created"`
	Account providers.FlexString `json:"account"`
	Data    struct {
		Object *customer `json:"object"`
	} `json:"data"`
}

type customer struct {
	ID              providers.FlexString `json:"id"`
	Name            string               `json:"name"`
	Email           string               `json:"email"`
	Phone           string               `json:"phone"`
	Description     string               `json:"description"`
	InvoicePrefix   string               `json:"invoicePrefix"`
	Created         providers.FlexString `json:"created"`
	Address         *address             `json:"address"`
	Shipping        *shipping            `json:"shipping"`
	InvoiceSettings *struct {
		DefaultPaymentMethod string `json:"defaultPaymentMethod"`
	} `json:"invoiceSettings"`
}

type address struct {
	City       string `json:"city"`
	Country    string `json:"country"`
	Line1      string `json:"line1"`
	Line2      string `json:"line2"`
	PostalCode string `json:"postalCode"`
	State      string `json:"state"`
}

type shipping struct {
	Address *address `json:"address"`
	Name    string   `json:"name"`
	Phone   string   `json:"phone"`
}

func (a *address) empty() bool {
	return a == nil || *a == address{}
}

func (a *address) to(typ crmv1alpha1.AddressType) crmv1alpha1.Address {
	out := crmv1alpha1.Address{Type: typ}
	if a != nil {
		out.Line1, out.Line2 = a.Line1, a.Line2
		out.City, out.State = a.City, a.State
		out.PostalCode, out.Country = a.PostalCode, a.Country
	}
	return out
}

func (e *envelope) event() (providers.Event, *providers.Error) {
	c := e.Data.Object
	if c == nil || c.ID == "" {
		return providers.Event{}, providers.MissingField("data.object.id")
	}
	// attemptId changes with every retry; only id identifies the event.
	if e.ID == "" {
		return providers.Event{}, providers.MissingField("id")
	}
	if e.Created == "" {
		return providers.Event{}, providers.MissingField("created")
	}
	secs, ok := e.Created.Int64()
	if !ok {
		return providers.Event{}, providers.Malformed("created", "not Unix seconds")
	}
	at := time.Unix(secs, 0).UTC()

	spec := crmv1alpha1.CustomerSpec{
		Provider:          crmv1alpha1.ProviderGETTRX,
		ExternalID:        string(c.ID),
		DisplayName:       c.Name,
		Email:             c.Email,
		Phone:             c.Phone,
		ProviderUpdatedAt: providers.MetaTime(at),
	}
	// The customer's own creation time is informational; an unusable one is dropped
	// rather than refusing the event.
	if n, ok := c.Created.Int64(); ok {
		spec.ProviderCreatedAt = providers.MetaTime(time.Unix(n, 0))
	}
	if !c.Address.empty() {
		spec.Addresses = append(spec.Addresses, c.Address.to(crmv1alpha1.AddressBilling))
	}
	if s := c.Shipping; s != nil && (!s.Address.empty() || s.Name != "" || s.Phone != "") {
		a := s.Address.to(crmv1alpha1.AddressShipping)
		a.Name, a.Phone = s.Name, s.Phone
		spec.Addresses = append(spec.Addresses, a)
	}
	spec.Attributes = providers.SetAttr(spec.Attributes, "description", c.Description)
	spec.Attributes = providers.SetAttr(spec.Attributes, "invoicePrefix", c.InvoicePrefix)
	spec.Attributes = providers.SetAttr(spec.Attributes, "account", string(e.Account))
	if c.InvoiceSettings != nil {
		spec.Attributes = providers.SetAttr(spec.Attributes, "invoiceSettings.defaultPaymentMethod", c.InvoiceSettings.DefaultPaymentMethod)
	}

	action := providers.ActionUpsert
	if e.Type == EventCustomerDeleted {
		action = providers.ActionDelete
	}
	return providers.Event{
		ID:       string(e.ID),
		Type:     e.Type,
		Time:     at,
		Action:   action,
		Customer: spec,
		Fields:   providers.EventFields{ID: "id", Type: "type", Time: "created"},
	}, nil
}

// Prepare implements providers.Simulator: it signs the body in the `t=,v1=` form
// with the Unix time now.
func (*Provider) Prepare(plaintext []byte, secret map[string][]byte, now time.Time) ([]byte, http.Header, error) {
	key := providers.SecretValue(secret, providers.KeySecret)
	if len(key) == 0 {
		return nil, nil, providers.MissingSecretKey(providers.KeySecret)
	}
	if now.IsZero() {
		now = time.Now()
	}
	t := strconv.FormatInt(now.Unix(), 10)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(SignatureHeader, "t="+t+",v1="+providers.HMACSHA256Hex(key, []byte(t), []byte{'.'}, plaintext))
	return plaintext, h, nil
}
