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
	"reflect"
	"testing"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers/generic"
	"github.com/customer-operator/customer-operator/webhookserver/providers/providertest"
)

// TestStripeEventsRunAsOneProgram: the Stripe recipe's events run as one
// CEL program each, and give what its expressions give one by one.
func TestStripeEventsRunAsOneProgram(t *testing.T) {
	p, secret := stripe(t)
	for _, name := range []string{"stripe-customer-created.json", "stripe-customer-deleted.json", "stripe-invoice-paid.json"} {
		body := providertest.Testdata(t, name)
		if !generic.RunsAsOneProgram(p, body) {
			t.Errorf("%s: not run as one program", name)
		}
		res, err := p.Parse(providertest.Signed(t, p, body, secret, providertest.DefaultNow))
		alone, aloneErr := generic.ExpressionByExpression(p).Parse(providertest.Signed(t, p, body, secret, providertest.DefaultNow))
		if err != nil || aloneErr != nil {
			t.Fatalf("%s: %v, %v", name, err, aloneErr)
		}
		if !reflect.DeepEqual(res, alone) {
			t.Errorf("%s: as one program %+v\nexpression by expression %+v", name, res, alone)
		}
	}
}

// TestIgnoreThatIsNotABool: an ignore expression that gives null reads as
// false and one that gives another type rejects its event, naming ignore,
// as when each expression runs on its own (run compares the two).
func TestIgnoreThatIsNotABool(t *testing.T) {
	g := spec(bearer)
	g.Events = crmv1alpha1.GenericEvents{Items: "body", ID: "event.id", Ignore: "event.?skip.orValue(null)"}
	g.Mapping = crmv1alpha1.GenericMapping{ExternalID: "event.id"}
	res, perr := run(t, g, `[{"id":"a"},{"id":"b","skip":true},{"id":"c","skip":"yes"},{"id":"d","skip":false}]`, 0)
	if perr != nil {
		t.Fatal(perr)
	}
	if res.Ignored != 1 || len(res.Events) != 3 {
		t.Fatalf("%d events, %d ignored; want 3 and 1", len(res.Events), res.Ignored)
	}
	for i, want := range []string{"", "spec.generic.events.ignore", ""} {
		r := res.Events[i].Rejection
		if (want == "") != (r == nil) || r != nil && r.Field != want {
			t.Errorf("event %d rejection = %+v, want %q", i, r, want)
		}
	}
}
