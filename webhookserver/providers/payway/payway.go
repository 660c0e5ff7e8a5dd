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

// Package payway decodes Payway's account events, in the webhook form and in the
// subscription-system export (SSI) form. Payway signs nothing; webhooks registered
// through its support authenticate with HTTP Basic or a bearer token.
package payway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
)

// EventAccountArchived archives the account; every other account_* event carries
// the account as it stands.
const EventAccountArchived = "account_archived"

const accountEventPrefix = "account_"

// Provider is the Payway provider.
type Provider struct{}

var _ providers.Provider = (*Provider)(nil)

var _ providers.Simulator = (*Provider)(nil)

var _ providers.HeaderAuthenticator = (*Provider)(nil)

// New returns the Payway provider.
func New() *Provider { return &Provider{} }

// Name implements providers.Provider.
func (*Provider) Name() crmv1alpha1.Provider { return crmv1alpha1.ProviderPayway }

// ValidateSecret requires username and password, or a token. Payway sends no
// signature, so without one of them any request would be accepted.
func (*Provider) ValidateSecret(data map[string][]byte) error {
	basic, err := providers.HasBasicPair(data)
	if err != nil {
		return err
	}
	if !basic && !providers.HasSecret(data, providers.KeyToken) {
		return fmt.Errorf("secret keys %q and %q (or key %q) are missing or empty",
			providers.KeyUsername, providers.KeyPassword, providers.KeyToken)
	}
	return nil
}

// AuthenticateHeader implements providers.HeaderAuthenticator: Payway's only
// credentials are headers, so a request is authenticated before its body is read.
func (*Provider) AuthenticateHeader(header http.Header, secret map[string][]byte) (bool, *providers.Error) {
	if err := authenticate(header, secret); err != nil {
		return false, err
	}
	return true, nil
}

// Parse implements providers.Provider.
func (*Provider) Parse(req *providers.Request) (*providers.Result, error) {
	if err := authenticate(req.Header, req.Secret); err != nil {
		return nil, err
	}

	var m message
	if err := json.Unmarshal(req.Body, &m); err != nil {
		var typeErr *json.UnmarshalTypeError
		if !errors.As(err, &typeErr) {
			return nil, providers.JSONError(err, "")
		}
		// Events about orders, payments and the like carry other objects under
		// payload; only an account event has to decode.
		var head struct {
			Event     string `json:"event"`
			EventName string `json:"event_name"`
		}
		if json.Unmarshal(req.Body, &head) == nil &&
			!strings.HasPrefix(head.Event, accountEventPrefix) && !strings.HasPrefix(head.EventName, accountEventPrefix) {
			return &providers.Result{Ignored: 1}, nil
		}
		return nil, providers.JSONError(err, "")
	}

	switch {
	case m.Event != "" || m.Payload != nil:
		if m.Event == "" {
			return nil, providers.MissingField("event")
		}
		if !strings.HasPrefix(m.Event, accountEventPrefix) || m.Payload == nil || m.Payload.Account == nil {
			return &providers.Result{Ignored: 1}, nil
		}
		ev, err := m.webhookEvent()
		if err != nil {
			return nil, err
		}
		return &providers.Result{Events: []providers.Event{ev}}, nil
	case m.EventName != "":
		if !strings.HasPrefix(m.EventName, accountEventPrefix) {
			return &providers.Result{Ignored: 1}, nil
		}
		ev, err := m.ssiEvent()
		if err != nil {
			return nil, err
		}
		return &providers.Result{Events: []providers.Event{ev}}, nil
	}
	return nil, providers.Malformed("event", "body has neither event nor event_name")
}

// authenticate accepts whichever configured method the request uses: a Secret may
// hold both Basic credentials and a token while a registration is being moved from
// one to the other.
func authenticate(header http.Header, secret map[string][]byte) *providers.Error {
	basic := providers.HasSecret(secret, providers.KeyUsername)
	bearer := len(providers.SecretValues(secret, providers.KeyToken)) > 0
	if !basic && !bearer {
		return providers.Unauthorized("no credentials are configured for this source")
	}
	if _, _, ok := providers.BasicAuth(header); ok {
		if basic && providers.VerifyBasic(header, secret) {
			return nil
		}
		return providers.Unauthorized("wrong Basic credentials")
	}
	if _, ok := providers.BearerToken(header); ok {
		if bearer && providers.VerifyBearer(header, secret) {
			return nil
		}
		return providers.Unauthorized("wrong bearer token")
	}
	return providers.Unauthorized("missing or unsupported Authorization header")
}

// message is both wire forms at once, so a body is decoded in one pass. The
// national identity numbers and one-time codes Payway sends (ssn, crn, birth_date,
// confirmation_code, contact_email_update_code) have no field here: they are never
// decoded, so they cannot be stored.
type message struct {
	// Webhook form.
	Event   string `json:"event"`
	Payload *struct {
		Account *account `json:"account"`
	} `json:"payload"`

	// SSI form.
	EventName      string               `json:"event_name"`
	AccountID      providers.FlexString `json:"account_id"`
	Email          string               `json:"email"`
	CustomerNumber providers.FlexString `json:"customer_number"`
	Customer       *ssiCustomer         `json:"customer"`

	Timestamp string `json:"timestamp"`
}

type account struct {
	ID             providers.FlexString `json:"id"`
	OrganisationID providers.FlexString `json:"organisation_id"`
	FirstName      string               `json:"first_name"`
	LastName       string               `json:"last_name"`
	ContactEmail   string               `json:"contact_email"`
	MobileNumber   providers.FlexString `json:"mobile_number"`
	CustomerNumber providers.FlexString `json:"customer_number"`
	Status         string               `json:"status"`
	Created        string               `json:"created"`
	Updated        string               `json:"updated"`
	Address        *address             `json:"address"`
}

type address struct {
	FirstName       string               `json:"first_name"`
	LastName        string               `json:"last_name"`
	Street          string               `json:"street"`
	StreetNumber    providers.FlexString `json:"street_number"`
	Staircase       providers.FlexString `json:"staircase"`
	Floor           providers.FlexString `json:"floor"`
	ApartmentNumber providers.FlexString `json:"apartment_number"`
	ZipCode         providers.FlexString `json:"zip_code"`
	City            string               `json:"city"`
	MobileNumber    providers.FlexString `json:"mobile_number"`
	PhoneNumber     providers.FlexString `json:"phone_number"`
	Email           string               `json:"email"`
	CountryCode     string               `json:"country_code"`
}

type ssiCustomer struct {
	ContactEmail   string               `json:"contact_email"`
	CustomerNumber providers.FlexString `json:"customer_number"`
	FirstName      string               `json:"first_name"`
	LastName       string               `json:"last_name"`
	PhoneNumber    providers.FlexString `json:"phone_number"`
	CompanyName    string               `json:"company_name"`
}

func (m *message) eventTime() (time.Time, *providers.Error) {
	if m.Timestamp == "" {
		return time.Time{}, providers.MissingField("timestamp")
	}
	t, err := providers.ParseTime(m.Timestamp)
	if err != nil {
		return time.Time{}, providers.Malformed("timestamp", "not an ISO 8601 date-time")
	}
	return t, nil
}

// newEvent builds the event; nameField is the field that carried name ("event"
// or "event_name").
func newEvent(name, nameField, id, timestamp string, at time.Time, spec crmv1alpha1.CustomerSpec) providers.Event {
	if name == EventAccountArchived {
		spec.Lifecycle = crmv1alpha1.LifecycleArchived
	}
	return providers.Event{
		ID:       "payway:" + name + ":" + id + ":" + timestamp,
		Type:     name,
		Time:     at,
		Action:   providers.ActionUpsert,
		Customer: spec,
		// The id is composed of the name, the account and the timestamp.
		Fields: providers.EventFields{Type: nameField, Time: "timestamp"},
	}
}

func (m *message) webhookEvent() (providers.Event, *providers.Error) {
	a := m.Payload.Account
	if a.ID == "" {
		return providers.Event{}, providers.MissingField("payload.account.id")
	}
	at, err := m.eventTime()
	if err != nil {
		return providers.Event{}, err
	}

	first, last := a.FirstName, a.LastName
	addr := a.Address
	if first == "" && last == "" && addr != nil {
		// The name is taken as a pair, so first and last name never come from
		// two different people.
		first, last = addr.FirstName, addr.LastName
	}
	phone := string(a.MobileNumber)
	if phone == "" && addr != nil {
		phone = firstNonEmpty(string(addr.MobileNumber), string(addr.PhoneNumber))
	}

	spec := crmv1alpha1.CustomerSpec{
		Provider:          crmv1alpha1.ProviderPayway,
		ExternalID:        string(a.ID),
		DisplayName:       providers.JoinNonEmpty(" ", first, last),
		Email:             a.ContactEmail,
		Phone:             phone,
		ProviderCreatedAt: providers.OptionalTime(a.Created),
		ProviderUpdatedAt: providers.OptionalTime(a.Updated),
	}
	spec.Contacts = contacts(first, last, spec.Email, phone)
	switch strings.ToLower(a.Status) {
	case "active":
		spec.Lifecycle = crmv1alpha1.LifecycleActive
	case "archived":
		spec.Lifecycle = crmv1alpha1.LifecycleArchived
	}
	if addr != nil {
		if out, ok := addr.billing(); ok {
			spec.Addresses = []crmv1alpha1.Address{out}
		}
	}
	spec.Attributes = providers.SetAttr(spec.Attributes, "customer_number", string(a.CustomerNumber))
	spec.Attributes = providers.SetAttr(spec.Attributes, "organisation_id", string(a.OrganisationID))
	return newEvent(m.Event, "event", spec.ExternalID, m.Timestamp, at, spec), nil
}

func (m *message) ssiEvent() (providers.Event, *providers.Error) {
	if m.AccountID == "" {
		return providers.Event{}, providers.MissingField("account_id")
	}
	at, err := m.eventTime()
	if err != nil {
		return providers.Event{}, err
	}
	c := m.Customer
	if c == nil {
		c = &ssiCustomer{}
	}
	spec := crmv1alpha1.CustomerSpec{
		Provider:    crmv1alpha1.ProviderPayway,
		ExternalID:  string(m.AccountID),
		DisplayName: providers.JoinNonEmpty(" ", c.FirstName, c.LastName),
		CompanyName: c.CompanyName,
		Email:       firstNonEmpty(c.ContactEmail, m.Email),
		Phone:       string(c.PhoneNumber),
	}
	if spec.DisplayName == "" {
		spec.DisplayName = c.CompanyName
	}
	spec.Contacts = contacts(c.FirstName, c.LastName, spec.Email, spec.Phone)
	spec.Attributes = providers.SetAttr(spec.Attributes, "customer_number",
		firstNonEmpty(string(c.CustomerNumber), string(m.CustomerNumber)))
	return newEvent(m.EventName, "event_name", spec.ExternalID, m.Timestamp, at, spec), nil
}

func contacts(first, last, email, phone string) []crmv1alpha1.Contact {
	if first == "" && last == "" && email == "" && phone == "" {
		return nil
	}
	return []crmv1alpha1.Contact{{FirstName: first, LastName: last, Email: email, Phone: phone}}
}

// billing maps Payway's split street address: street and number form line 1;
// staircase, floor and apartment, labelled because bare numbers would be
// ambiguous, form line 2.
func (a *address) billing() (crmv1alpha1.Address, bool) {
	line1 := providers.JoinNonEmpty(" ", a.Street, string(a.StreetNumber))
	var parts [3]string
	if a.Staircase != "" {
		parts[0] = "staircase " + string(a.Staircase)
	}
	if a.Floor != "" {
		parts[1] = "floor " + string(a.Floor)
	}
	if a.ApartmentNumber != "" {
		parts[2] = "apartment " + string(a.ApartmentNumber)
	}
	line2 := providers.JoinNonEmpty(", ", parts[:]...)
	if line1 == "" && line2 == "" && a.ZipCode == "" && a.City == "" && a.CountryCode == "" {
		return crmv1alpha1.Address{}, false
	}
	return crmv1alpha1.Address{
		Type:       crmv1alpha1.AddressBilling,
		Name:       providers.JoinNonEmpty(" ", a.FirstName, a.LastName),
		Line1:      line1,
		Line2:      line2,
		City:       a.City,
		PostalCode: string(a.ZipCode),
		Country:    a.CountryCode,
		Phone:      firstNonEmpty(string(a.MobileNumber), string(a.PhoneNumber)),
		Email:      a.Email,
	}, true
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// Prepare implements providers.Simulator: Payway sends the body as is, with Basic
// authentication when the Secret has a username and password, else with the
// bearer token.
func (*Provider) Prepare(plaintext []byte, secret map[string][]byte, _ time.Time) ([]byte, http.Header, error) {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	user := providers.SecretValue(secret, providers.KeyUsername)
	pass := providers.SecretValue(secret, providers.KeyPassword)
	switch tok := providers.SecretValue(secret, providers.KeyToken); {
	case len(user) > 0 && len(pass) > 0:
		h.Set("Authorization", providers.BasicHeader(user, pass))
	case len(tok) > 0:
		h.Set("Authorization", "Bearer "+string(tok))
	default:
		return nil, nil, fmt.Errorf("secret keys %q and %q (or key %q) are missing or empty",
			providers.KeyUsername, providers.KeyPassword, providers.KeyToken)
	}
	return plaintext, h, nil
}
