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

package generic_test

import (
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
	"github.com/customer-operator/customer-operator/webhookserver/providers/generic"
)

var bearer = crmv1alpha1.GenericAuthentication{Bearer: &crmv1alpha1.HeaderAuthentication{}}

var token = map[string][]byte{"token": []byte("t")}

// run parses body with the source g describes. Its events run as one
// program, falling back to the expressions one by one for an event that
// program fails on: run checks that expression by expression alone gives
// the same.
func run(t *testing.T, g *crmv1alpha1.GenericSource, body string, maxEvents int) (*providers.Result, *providers.Error) {
	t.Helper()
	p := bind(t, g)
	req := func() *providers.Request {
		return &providers.Request{Header: hdr("Authorization", "Bearer t", "X-Shop", "acme"), Body: []byte(body),
			Secret: token, Now: now, Tolerance: 5 * time.Minute, MaxEvents: maxEvents}
	}
	res, err := p.Parse(req())
	alone, aloneErr := generic.ExpressionByExpression(p).Parse(req())
	if !reflect.DeepEqual(res, alone) || !reflect.DeepEqual(err, aloneErr) {
		t.Errorf("as one program: %+v, %v\nexpression by expression: %+v, %v", res, err, alone, aloneErr)
	}
	if err != nil {
		var perr *providers.Error
		if !errors.As(err, &perr) {
			t.Fatalf("Parse error %T %v", err, err)
		}
		return nil, perr
	}
	return res, nil
}

func TestMapping(t *testing.T) {
	g := &crmv1alpha1.GenericSource{
		Authentication: bearer,
		Events: crmv1alpha1.GenericEvents{
			Items:   "body.events",
			ID:      "event.id",
			Type:    "event.type",
			Time:    "timestamp(event.at)",
			Deleted: "event.type == 'deleted'",
			Ignore:  "!event.type.startsWith('customer') && event.type != 'deleted'",
		},
		Mapping: crmv1alpha1.GenericMapping{
			ExternalID:        "event.data.id",
			DisplayName:       "event.data.first + ' ' + event.data.last",
			CompanyName:       "event.data.?company.orValue('')",
			Email:             "event.data.email.lowerAscii()",
			Phone:             "event.data.?phone.orValue(null)",
			TaxID:             "'VAT-' + string(event.data.vat)",
			TaxExempt:         "event.data.vat == 0",
			Language:          "headers['x-shop'] == 'acme' ? 'de' : 'en'",
			Lifecycle:         "event.data.active ? 'Active' : 'Inactive'",
			Contacts:          "[{'firstName': event.data.first, 'lastName': event.data.last, 'email': event.data.email}]",
			Addresses:         "event.data.addresses.map(a, {'type': 'billing', 'line1': a.street, 'city': a.city, 'country': a.country})",
			Attributes:        "{'shop': headers['x-shop'], 'tier': event.data.tier, 'empty': ''}",
			ProviderCreatedAt: "event.data.created",
		},
	}
	body := `{"events":[
	 {"id":"e1","type":"customer.created","at":"2026-12-04T11:59:00Z","data":{"id":42,"first":"Ada","last":"Lovelace","email":"ADA@Example.com","vat":123,"active":true,"tier":"gold","created":1700000000,
	   "addresses":[{"street":"1 Way","city":"London","country":"GB"}]}},
	 {"id":"e2","type":"invoice.paid","at":"2026-12-04T11:59:00Z"},
	 {"id":"e3","type":"deleted","at":"2026-12-04T11:59:30Z","data":{"id":"43","first":"B","last":"C","email":"b@c","vat":0,"active":false,"tier":"x","created":"2026-01-01T00:00:00Z","addresses":[]}}
	]}`
	res, perr := run(t, g, body, 0)
	if perr != nil {
		t.Fatal(perr)
	}
	if res.Ignored != 1 || len(res.Events) != 2 {
		t.Fatalf("events %d, ignored %d; want 2 and 1", len(res.Events), res.Ignored)
	}
	e := res.Events[0]
	c := e.Customer
	want := crmv1alpha1.CustomerSpec{
		Provider: "generic", ExternalID: "42", DisplayName: "Ada Lovelace", Email: "ada@example.com", TaxID: "VAT-123",
		TaxExempt: providers.BoolPtr(false), Language: "de", Lifecycle: "Active",
		Contacts:          []crmv1alpha1.Contact{{FirstName: "Ada", LastName: "Lovelace", Email: "ADA@Example.com"}},
		Addresses:         []crmv1alpha1.Address{{Type: "billing", Line1: "1 Way", City: "London", Country: "GB"}},
		Attributes:        map[string]string{"shop": "acme", "tier": "gold"},
		ProviderCreatedAt: &metav1.Time{Time: time.Unix(1700000000, 0).UTC()},
		ProviderUpdatedAt: &metav1.Time{Time: time.Date(2026, 12, 4, 11, 59, 0, 0, time.UTC)},
	}
	if !equality.Semantic.DeepEqual(c, want) {
		t.Errorf("customer\n got %+v\nwant %+v", c, want)
	}
	if e.ID != "e1" || e.Type != "customer.created" || e.Action != providers.ActionUpsert || !e.Time.Equal(want.ProviderUpdatedAt.Time) {
		t.Errorf("event = %q %q %s %s", e.ID, e.Type, e.Action, e.Time)
	}
	if d := res.Events[1]; d.Action != providers.ActionDelete || d.Customer.ExternalID != "43" || d.Customer.TaxExempt == nil || !*d.Customer.TaxExempt {
		t.Errorf("second event = %+v", d)
	}
}

// TestBodyIsOneEvent: without an items expression, the body is the event.
func TestBodyIsOneEvent(t *testing.T) {
	res, perr := run(t, spec(bearer), oneEvent, 0)
	if perr != nil || len(res.Events) != 1 {
		t.Fatalf("%v %v", res, perr)
	}
	if e := res.Events[0]; e.ID != "evt_1" || e.Customer.ExternalID != "cus_1" || !e.Time.Equal(time.Unix(1796385600, 0)) {
		t.Errorf("event = %+v", e)
	}
}

// TestRuntimeFailureRejectsOneEvent: an expression that fails on one event of
// a batch rejects that event, with the field and CEL's message; the others
// are decoded.
func TestRuntimeFailureRejectsOneEvent(t *testing.T) {
	g := spec(bearer)
	g.Events = crmv1alpha1.GenericEvents{Items: "body", ID: "event.id"}
	g.Mapping = crmv1alpha1.GenericMapping{ExternalID: "event.customer", Email: "event.email", Attributes: "{'n': string(100 / event.n)}"}
	res, perr := run(t, g, `[{"id":"a","customer":"c1","email":"a@x","n":1},{"id":"b","customer":"c2","email":7,"n":1},{"id":"c","customer":"c3","email":"c@x","n":0},{"id":"d","customer":"c4","email":"d@x","n":2}]`, 0)
	if perr != nil {
		t.Fatal(perr)
	}
	if len(res.Events) != 4 {
		t.Fatalf("%d events", len(res.Events))
	}
	for i, want := range []string{"", "spec.generic.mapping.email", "spec.generic.mapping.attributes", ""} {
		r := res.Events[i].Rejection
		switch {
		case want == "" && r != nil:
			t.Errorf("event %d rejected: %v", i, r)
		case want != "" && (r == nil || r.Field != want || r.Reason != generic.ReasonExpression || r.Status != http.StatusUnprocessableEntity):
			t.Errorf("event %d rejection = %+v, want field %s", i, r, want)
		}
	}
	if r := res.Events[2].Rejection; r != nil && !strings.Contains(r.Message, "division by zero") {
		t.Errorf("message = %q, want CEL's", r.Message)
	}
	if got := res.Events[3].Customer.Attributes["n"]; got != "50" {
		t.Errorf("attribute n = %q", got)
	}
}

// TestMissingIdentity: an event whose id or externalID is empty is rejected
// with missing_field, naming the expression.
func TestMissingIdentity(t *testing.T) {
	g := spec(bearer)
	g.Events = crmv1alpha1.GenericEvents{Items: "body", ID: "event.?id.orValue('')"}
	g.Mapping = crmv1alpha1.GenericMapping{ExternalID: "event.?c.orValue(null)"}
	res, perr := run(t, g, `[{"c":"x"},{"id":"2"}]`, 0)
	if perr != nil {
		t.Fatal(perr)
	}
	for i, field := range []string{"spec.generic.events.id", "spec.generic.mapping.externalID"} {
		if r := res.Events[i].Rejection; r == nil || r.Reason != providers.ReasonMissingField || r.Field != field {
			t.Errorf("event %d rejection = %+v, want missing %s", i, r, field)
		}
	}
}

// TestMaxEvents: more events than the request may carry is a 413, before any
// event's expressions run.
func TestMaxEvents(t *testing.T) {
	g := spec(bearer)
	g.Events = crmv1alpha1.GenericEvents{Items: "body", ID: "event.id"}
	g.Mapping = crmv1alpha1.GenericMapping{ExternalID: "event.id"}
	body := `[{"id":"1"},{"id":"2"},{"id":"3"}]`
	if res, perr := run(t, g, body, 3); perr != nil || len(res.Events) != 3 {
		t.Fatalf("3 events at a limit of 3: %v", perr)
	}
	_, perr := run(t, g, body, 2)
	if perr == nil || perr.Status != http.StatusRequestEntityTooLarge || perr.Reason != providers.ReasonTooManyEvents {
		t.Fatalf("3 events at a limit of 2: %+v", perr)
	}
}

func compileErr(t *testing.T, g *crmv1alpha1.GenericSource) *generic.ExpressionError {
	t.Helper()
	_, err := generic.Compile(g)
	var e *generic.ExpressionError
	if !errors.As(err, &e) {
		t.Fatalf("Compile error = %v, want an ExpressionError", err)
	}
	return e
}

// TestInvalidExpressions: syntax, type and unknown-variable errors name the
// field and carry CEL's message.
func TestInvalidExpressions(t *testing.T) {
	for _, tc := range []struct {
		set     func(*crmv1alpha1.GenericSource)
		field   string
		message string
	}{
		{func(g *crmv1alpha1.GenericSource) { g.Mapping.Email = "body.customer.email +" }, "spec.generic.mapping.email", "Syntax error"},
		{func(g *crmv1alpha1.GenericSource) { g.Mapping.Email = "request.email" }, "spec.generic.mapping.email", "undeclared reference to 'request'"},
		{func(g *crmv1alpha1.GenericSource) { g.Events.Deleted = "'yes'" }, "spec.generic.events.deleted", "not a bool"},
		{func(g *crmv1alpha1.GenericSource) { g.Mapping.Attributes = "[1]" }, "spec.generic.mapping.attributes", "not a map"},
		{func(g *crmv1alpha1.GenericSource) { g.Mapping.DisplayName = "1 + 1" }, "spec.generic.mapping.displayName", "not a string"},
		{func(g *crmv1alpha1.GenericSource) { g.Mapping.Email = "now()" }, "spec.generic.mapping.email", "undeclared reference to 'now'"},
		{func(g *crmv1alpha1.GenericSource) { g.Mapping.ExternalID = "" }, "spec.generic.mapping.externalID", "required"},
	} {
		g := spec(bearer)
		tc.set(g)
		e := compileErr(t, g)
		if e.Field != tc.field || !strings.Contains(e.Message, tc.message) {
			t.Errorf("error = %s: %s; want %s containing %q", e.Field, e.Message, tc.field, tc.message)
		}
	}
}

// TestHostileExpressions: expressions whose cost grows with the body beyond
// the estimated cost limit are refused when compiled; those the estimate
// lets through are stopped at the runtime cost limit, failing only their
// event.
func TestHostileExpressions(t *testing.T) {
	for name, expr := range map[string]crmv1alpha1.Expression{
		"nested iteration over the body":   "body.items.map(a, body.items.map(b, body.items.map(c, a + b + c))).size() > 0",
		"quadratic string building":        "body.items.all(a, body.items.exists(b, (a + b).contains(body.s)))",
		"sorted products of large lists":   "body.items.map(a, body.items.filter(b, b == a)).size() > 1",
		"exists over a list of every pair": "[body.items, body.items, body.items].all(l, l.all(a, body.items.all(b, a != b)))",
	} {
		g := spec(bearer)
		g.Events.Ignore = expr
		e := compileErr(t, g)
		if e.Field != "spec.generic.events.ignore" || !strings.Contains(e.Message, "estimated cost") {
			t.Errorf("%s: error = %s: %s", name, e.Field, e.Message)
		}
	}
	if msg := compileErr(t, func() *crmv1alpha1.GenericSource {
		g := spec(bearer)
		g.Mapping.Email = crmv1alpha1.Expression(strings.Repeat("'a' + ", crmv1alpha1.MaxExpressionLength/6+1) + "'a'")
		return g
	}()).Message; !strings.Contains(msg, "longer than") {
		t.Errorf("long expression: %s", msg)
	}

	// Exponential string growth within a literal list: the estimate is
	// small, the runtime cost is not.
	g := spec(bearer)
	g.Events = crmv1alpha1.GenericEvents{Items: "body", ID: "event.id"}
	grow := "[event.s].map(s, s + s).map(s, s + s).map(s, s + s).map(s, s + s).map(s, s + s).map(s, s + s).map(s, s + s).map(s, s + s)" +
		".map(s, s + s).map(s, s + s).map(s, s + s).map(s, s + s).map(s, s + s).map(s, s + s).map(s, s + s).map(s, s + s)[0]"
	g.Mapping = crmv1alpha1.GenericMapping{ExternalID: "event.id", DisplayName: crmv1alpha1.Expression("(" + grow + ").contains('x') ? 'x' : 'y'")}
	if _, err := generic.Compile(g); err != nil {
		t.Fatalf("compiling the string growth: %v", err)
	}
	long := strings.Repeat("a", 64<<10)
	start := time.Now()
	res, perr := run(t, g, `[{"id":"hostile","s":"`+long+`"},{"id":"fine","s":"a"}]`, 0)
	if perr != nil {
		t.Fatal(perr)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stopping the hostile event took %s", d)
	}
	if r := res.Events[0].Rejection; r == nil || !strings.Contains(r.Message, "cost") {
		t.Errorf("hostile event rejection = %+v, want the runtime cost limit", r)
	}
	if r := res.Events[1].Rejection; r != nil || res.Events[1].Customer.DisplayName != "y" {
		t.Errorf("the other event: %+v %q", r, res.Events[1].Customer.DisplayName)
	}
}

// TestHugeLists: an expression that builds lists in proportion to a large
// list of its event is stopped at the runtime cost limit.
func TestHugeLists(t *testing.T) {
	g := spec(bearer)
	g.Events = crmv1alpha1.GenericEvents{Items: "body", ID: "event.id"}
	g.Mapping = crmv1alpha1.GenericMapping{ExternalID: "event.id",
		Attributes: "{'n': string(event.l.map(x, [x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x]).size())}"}
	l := strings.TrimSuffix(strings.Repeat("1,", 200_000), ",")
	res, perr := run(t, g, `[{"id":"huge","l":[`+l+`]},{"id":"small","l":[1,2]}]`, 0)
	if perr != nil {
		t.Fatal(perr)
	}
	if r := res.Events[0].Rejection; r == nil || !strings.Contains(r.Message, "cost") {
		t.Errorf("huge list rejection = %+v, want the runtime cost limit", r)
	}
	if got := res.Events[1].Customer.Attributes["n"]; got != "2" || res.Events[1].Rejection != nil {
		t.Errorf("the small event: n = %q, rejection %v", got, res.Events[1].Rejection)
	}
}

// TestCompiledOncePerGeneration: a source's expressions are compiled once per
// generation, and again when it changes.
func TestCompiledOncePerGeneration(t *testing.T) {
	g := spec(bearer)
	src := &crmv1alpha1.CustomerSource{ObjectMeta: metav1.ObjectMeta{UID: "cached", Generation: 1},
		Spec: crmv1alpha1.CustomerSourceSpec{Provider: crmv1alpha1.ProviderGeneric, Generic: g}}
	if _, err := generic.For(src); err != nil {
		t.Fatal(err)
	}
	// The same generation is not compiled again: a change to the spec without
	// a new generation (which the API server never makes) is not seen.
	g.Mapping.Email = "body +"
	if _, err := generic.For(src); err != nil {
		t.Fatalf("same generation recompiled: %v", err)
	}
	src.Generation = 2
	if _, err := generic.For(src); err == nil {
		t.Fatal("a new generation was not compiled")
	}
	g.Mapping.Email = "body.customer.email"
	if _, err := generic.For(src); err == nil {
		t.Fatal("the failed compilation of generation 2 was not kept")
	}
	generic.Forget(src.UID)
	if _, err := generic.For(src); err != nil {
		t.Fatalf("after Forget: %v", err)
	}
}

func BenchmarkCompile(b *testing.B) {
	g := spec(bearer)
	for b.Loop() {
		if _, err := generic.Compile(g); err != nil {
			b.Fatal(err)
		}
	}
}

// TestLimits: the limits set at start-up (the --generic-* flags) bound
// compilation and evaluation.
func TestLimits(t *testing.T) {
	t.Cleanup(func() { generic.SetLimits(generic.DefaultLimits) })
	g := spec(bearer)
	g.Events = crmv1alpha1.GenericEvents{Items: "body", ID: "event.id"}
	g.Mapping = crmv1alpha1.GenericMapping{ExternalID: "event.id", DisplayName: "event.names.map(n, n.upperAscii()).join(' ')"}
	body := `[{"id":"1","names":["ada","lovelace"]}]`
	if res, perr := run(t, g, body, 0); perr != nil || res.Events[0].Rejection != nil || res.Events[0].Customer.DisplayName != "ADA LOVELACE" {
		t.Fatalf("within the default limits: %v %+v", perr, res)
	}

	generic.SetLimits(generic.Limits{RuntimeCost: 20})
	res, perr := run(t, g, body, 0)
	if perr != nil {
		t.Fatal(perr)
	}
	if r := res.Events[0].Rejection; r == nil || !strings.Contains(r.Message, "cost") {
		t.Errorf("at a runtime cost limit of 20: rejection %+v", r)
	}

	generic.SetLimits(generic.Limits{EstimatedCost: 1000})
	if e := compileErr(t, g); e.Field != "spec.generic.mapping.displayName" || !strings.Contains(e.Message, "exceeds the limit of 1000") {
		t.Errorf("at an estimated cost limit of 1000: %s: %s", e.Field, e.Message)
	}
}
