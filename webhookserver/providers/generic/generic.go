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

// Package generic is the provider a CustomerSource describes rather than one
// compiled in: spec.generic says how requests are authenticated (Standard
// Webhooks, a configurable HMAC, Basic or bearer), and CEL expressions find
// the events and map each one to a Customer.
package generic

import (
	"errors"
	"net/http"
	"strings"
	"time"

	celtypes "github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/lru"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
)

// Provider is the generic provider. The zero value (New) is the registry's
// entry, which no request can use; For binds it to a source's compiled spec.
type Provider struct {
	c *compiled
}

var (
	_ providers.Provider            = (*Provider)(nil)
	_ providers.HeaderAuthenticator = (*Provider)(nil)
	_ providers.Simulator           = (*Provider)(nil)
)

// New returns the generic provider bound to no source.
func New() *Provider { return &Provider{} }

// maxCachedSources bounds the compiled sources kept; past it the least
// recently used is compiled again when it is next needed.
const maxCachedSources = 4096

// cache holds the compiled expressions of each source by UID, with the
// generation they were compiled from.
var cache = lru.New(maxCachedSources)

type entry struct {
	generation int64
	c          *compiled
	err        error
}

// For returns the provider bound to src's spec.generic, compiled once per
// generation of the source. A spec that does not compile is an
// *ExpressionError.
func For(src *crmv1alpha1.CustomerSource) (*Provider, error) {
	if v, ok := cache.Get(src.UID); ok {
		if e := v.(*entry); e.generation == src.Generation {
			return &Provider{c: e.c}, e.err
		}
	}
	c, err := Compile(src.Spec.Generic)
	var exprErr *ExpressionError
	if err != nil && !errors.As(err, &exprErr) {
		return nil, err
	}
	if src.UID != "" {
		cache.Add(src.UID, &entry{generation: src.Generation, c: c, err: err})
	}
	return &Provider{c: c}, err
}

// Forget drops what is kept for a source that is gone.
func Forget(uid types.UID) { cache.Remove(uid) }

// Name implements providers.Provider.
func (*Provider) Name() crmv1alpha1.Provider { return crmv1alpha1.ProviderGeneric }

var errUnbound = errors.New("the generic provider is configured by its CustomerSource's spec.generic")

// ValidateSecret requires the keys of the configured authentication mode.
func (p *Provider) ValidateSecret(data map[string][]byte) error {
	if p.c == nil {
		return errUnbound
	}
	return validateSecret(&p.c.auth, data)
}

// AuthenticateHeader implements providers.HeaderAuthenticator: Basic and
// bearer credentials are checked in full, a missing signature header refused.
func (p *Provider) AuthenticateHeader(h http.Header, secret map[string][]byte) (bool, *providers.Error) {
	if p.c == nil {
		return false, providers.Unauthorized("%v", errUnbound)
	}
	return authenticateHeader(&p.c.auth, h, secret)
}

// Prepare implements providers.Simulator: it signs as the configured sender.
func (p *Provider) Prepare(plaintext []byte, secret map[string][]byte, now time.Time) ([]byte, http.Header, error) {
	if p.c == nil {
		return nil, nil, errUnbound
	}
	if now.IsZero() {
		now = time.Now()
	}
	h, err := sign(&p.c.auth, plaintext, secret, now)
	return plaintext, h, err
}

// Parse authenticates the request, decodes its body and runs the source's
// expressions per event. An event its expressions fail on carries a
// Rejection: the ingest path rejects it and applies the others.
func (p *Provider) Parse(req *providers.Request) (*providers.Result, error) {
	if p.c == nil {
		return nil, providers.Unauthorized("%v", errUnbound)
	}
	if err := verify(&p.c.auth, req); err != nil {
		return nil, err
	}
	body, perr := decodeBody(req.Body)
	if perr != nil {
		return nil, perr
	}
	var headers map[string]string
	// headerBytes is the headers' size as costBound counts it: each name
	// and value, and two bytes for each.
	var headerBytes int64
	if p.c.headers {
		headers = make(map[string]string, len(req.Header))
		for k, v := range req.Header {
			if len(v) > 0 {
				headers[strings.ToLower(k)] = v[0]
				headerBytes += int64(len(k) + len(v[0]) + 2)
			}
		}
	}
	act := &vars{body: body, headers: headers}
	items := []any{body}
	if p.c.items == nil {
		// The body is the event: an event's failure is the request's.
		if _, ok := body.(traits.Mapper); !ok {
			return nil, providers.Malformed("", "body is not a JSON object")
		}
	} else {
		run := &eventRun{vars: act, limit: p.c.l.RuntimeCost}
		v, err := run.eval(p.c.items)
		if err != nil {
			return nil, requestError(err)
		}
		n, ok := v.(interface{ Size() ref.Val })
		if !ok {
			return nil, requestError(mistyped(p.c.items, v, resList))
		}
		limit := providers.EventLimit(req)
		if size, _ := n.Size().(celtypes.Int); int(size) > limit {
			return nil, providers.TooManyEvents("", limit)
		}
		items = items[:0]
		it := v.(traits.Lister).Iterator()
		for it.HasNext() == celtypes.True {
			items = append(items, it.Next())
		}
	}
	res := &providers.Result{Events: make([]providers.Event, 0, len(items))}
	now := providers.RequestNow(req)
	run := &eventRun{vars: act, limit: p.c.l.RuntimeCost}
	all := p.c.eventProgram(int64(len(req.Body)), headerBytes)
	for _, item := range items {
		act.event = item
		run.runAll(all)
		ev, ignored := p.c.event(run, now)
		if ev.Rejection != nil && p.c.items == nil {
			return nil, ev.Rejection
		}
		if ignored {
			res.Ignored++
			continue
		}
		res.Events = append(res.Events, ev)
	}
	return res, nil
}

// requestError is an expression that failed on the whole request (the items
// expression): no event can be told apart, so the request is refused.
func requestError(err error) *providers.Error {
	var e *ExpressionError
	if errors.As(err, &e) {
		return &providers.Error{Status: http.StatusUnprocessableEntity, Reason: ReasonExpression, Field: e.Field, Message: e.Message}
	}
	return &providers.Error{Status: http.StatusUnprocessableEntity, Reason: ReasonExpression, Message: err.Error()}
}

// event runs one event's expressions. An expression that fails makes a
// rejected event, with what was found of its identity.
func (c *compiled) event(run *eventRun, now time.Time) (providers.Event, bool) {
	ev := providers.Event{Action: providers.ActionUpsert, Time: now, Fields: c.fields,
		Customer: crmv1alpha1.CustomerSpec{Provider: crmv1alpha1.ProviderGeneric}}
	reject := func(err error) (providers.Event, bool) {
		ev.Rejection = requestError(err)
		return ev, false
	}
	ignore, err := run.boolean(c.ignore)
	if err != nil {
		return reject(err)
	}
	if ignore {
		return ev, true
	}
	if ev.ID, err = run.str(c.id, true); err != nil {
		return reject(err)
	}
	if ev.Customer.ExternalID, err = run.str(c.externalID, true); err != nil {
		return reject(err)
	}
	if ev.Type, err = run.str(c.typ, false); err != nil {
		return reject(err)
	}
	at, err := run.time(c.at)
	if err != nil {
		return reject(err)
	}
	if !at.IsZero() {
		ev.Time = at
	}
	if ev.ID == "" {
		ev.Rejection = providers.MissingField(c.id.field)
		return ev, false
	}
	if ev.Customer.ExternalID == "" {
		ev.Rejection = providers.MissingField(c.externalID.field)
		return ev, false
	}
	deleted, err := run.boolean(c.deleted)
	if err != nil {
		return reject(err)
	}
	if deleted {
		ev.Action = providers.ActionDelete
	}
	if err := c.mapCustomer(run, &ev.Customer); err != nil {
		return reject(err)
	}
	if ev.Customer.ProviderUpdatedAt == nil && c.at != nil {
		ev.Customer.ProviderUpdatedAt = providers.MetaTime(ev.Time)
	}
	return ev, false
}

func (c *compiled) mapCustomer(run *eventRun, spec *crmv1alpha1.CustomerSpec) error {
	var err error
	for _, f := range []struct {
		dst *string
		p   *program
	}{
		{&spec.DisplayName, c.displayName}, {&spec.CompanyName, c.companyName}, {&spec.Email, c.email},
		{&spec.Phone, c.phone}, {&spec.TaxID, c.taxID}, {&spec.Language, c.language},
	} {
		if *f.dst, err = run.str(f.p, false); err != nil {
			return err
		}
	}
	lifecycle, err := run.str(c.lifecycle, false)
	if err != nil {
		return err
	}
	spec.Lifecycle = crmv1alpha1.Lifecycle(lifecycle)
	if spec.TaxExempt, err = run.optBool(c.taxExempt); err != nil {
		return err
	}
	if spec.Approved, err = run.optBool(c.approved); err != nil {
		return err
	}
	if spec.Contacts, err = list(run, c.contacts, crmv1alpha1.MaxContacts, contactSlot); err != nil {
		return err
	}
	if spec.Addresses, err = list(run, c.addresses, crmv1alpha1.MaxAddresses, addressSlot); err != nil {
		return err
	}
	if spec.Attributes, err = run.attributes(c.attributes); err != nil {
		return err
	}
	created, err := run.time(c.createdAt)
	if err != nil {
		return err
	}
	spec.ProviderCreatedAt = providers.MetaTime(created)
	updated, err := run.time(c.updatedAt)
	if err != nil {
		return err
	}
	spec.ProviderUpdatedAt = providers.MetaTime(updated)
	return nil
}
