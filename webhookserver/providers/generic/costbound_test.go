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
	"strings"
	"testing"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers/generic"
)

// TestStripeRecipeRunsUntrackedWithinItsProvenCost: the Stripe recipe's
// expressions are proven never to cost more than the runtime limit, so its
// events run without the cost tracker; bodies built to make them as costly
// as the webhook server's body limit allows cost, tracked, no more than the
// proven bound.
func TestStripeRecipeRunsUntrackedWithinItsProvenCost(t *testing.T) {
	p, _ := stripe(t)
	bound, untracked := generic.CostBound(p)
	if !untracked || bound == 0 || bound > generic.DefaultLimits.RuntimeCost {
		t.Fatalf("bound %d, untracked %v; want untracked within %d", bound, untracked, generic.DefaultLimits.RuntimeCost)
	}
	maxBody := int(generic.DefaultLimits.MaxBodyBytes)
	if !generic.RunsUntracked(p, int64(maxBody), int64(maxBody)) {
		t.Errorf("a body and headers of the limit run tracked")
	}
	if generic.RunsUntracked(p, int64(maxBody)+1, 0) || generic.RunsUntracked(p, 0, int64(maxBody)+1) {
		t.Errorf("a body or headers over the limit the bound assumed run untracked")
	}
	// Fill makes a body of exactly the limit from a template with one %s.
	fill := func(tmpl string, unit string, sep string) []byte {
		n := (maxBody - len(tmpl) + 2) / (len(unit) + len(sep))
		body := strings.Replace(tmpl, "%s", strings.TrimSuffix(strings.Repeat(unit+sep, n), sep), 1)
		if len(body) > maxBody {
			t.Fatalf("body of %d bytes", len(body))
		}
		return []byte(body)
	}
	created := `{"id":"evt_1","type":"customer.created","created":1,"livemode":false,"data":{"object":{"id":"cus_1",%s}}}`
	var most uint64
	for name, body := range map[string][]byte{
		// Invalid bytes decode to three bytes each.
		"a type of invalid bytes":          fill(`{"id":"evt_1","type":"%s","data":{"object":{"id":"cus_1"}}}`, "\xff", ""),
		"a name of invalid bytes":          fill(strings.Replace(created, "%s", `"name":"%s"`, 1), "\xff", ""),
		"an address line of many items":    fill(strings.Replace(created, "%s", `"address":{"line1":[%s]}`, 1), "0", ","),
		"an address line of a long string": fill(strings.Replace(created, "%s", `"address":{"line1":"%s"}`, 1), "\xff", ""),
		"locales nested in a list":         fill(strings.Replace(created, "%s", `"preferred_locales":[[%s]]`, 1), "0", ","),
		"a tax status of invalid bytes":    fill(strings.Replace(created, "%s", `"tax_exempt":"%s"`, 1), "\xff", ""),
		"a livemode of invalid bytes":      fill(`{"id":"evt_1","type":"customer.created","created":1,"livemode":"%s","data":{"object":{"id":"cus_1"}}}`, "\xff", ""),
		"a tax status of many members":     fill(strings.Replace(created, "%s", `"tax_exempt":{%s}`, 1), `"":0`, ","),
	} {
		cost, err := generic.TrackedCost(p, body)
		if cost > bound {
			t.Errorf("%s: tracked cost %d exceeds the proven bound %d (%v)", name, cost, bound, err)
		}
		most = max(most, cost)
	}
	if most < bound/4 {
		t.Errorf("the costliest body cost %d, far below the bound %d: the bodies do not test it", most, bound)
	}
}

// TestExpressionsTheBoundDoesNotCoverRunTracked: a source runs untracked
// only when every expression is within what the bound covers and the bound
// is within the runtime limit.
func TestExpressionsTheBoundDoesNotCoverRunTracked(t *testing.T) {
	if _, untracked := generic.CostBound(bind(t, spec(bearer))); !untracked {
		t.Errorf("fields read from the body: tracked")
	}
	for name, edit := range map[string]func(g *crmv1alpha1.GenericSource){
		"a comprehension":   func(g *crmv1alpha1.GenericSource) { g.Events.Ignore = "body.items.exists(i, i == 'x')" },
		"an unbounded call": func(g *crmv1alpha1.GenericSource) { g.Mapping.DisplayName = "body.customer.name.replace('a', 'bb')" },
		"events of an items list": func(g *crmv1alpha1.GenericSource) {
			g.Events = crmv1alpha1.GenericEvents{Items: "body", ID: "event.id"}
			g.Mapping = crmv1alpha1.GenericMapping{ExternalID: "event.id"}
		},
		"a bound over the limit": func(g *crmv1alpha1.GenericSource) {
			g.Mapping.DisplayName = "body.customer.name + body.customer.name + body.customer.name"
		},
	} {
		g := spec(bearer)
		edit(g)
		if bound, untracked := generic.CostBound(bind(t, g)); untracked {
			t.Errorf("%s: untracked, bound %d", name, bound)
		}
	}
}

// TestUnprovenStringGrowthStopsAtTheLimit: a body that is the event, read
// by expressions whose cost the bound puts over the runtime limit, is
// refused at the limit.
func TestUnprovenStringGrowthStopsAtTheLimit(t *testing.T) {
	g := spec(bearer)
	g.Events = crmv1alpha1.GenericEvents{ID: "body.id"}
	s := "body.s + body.s"
	g.Mapping = crmv1alpha1.GenericMapping{ExternalID: "body.id",
		DisplayName: crmv1alpha1.Expression("((" + s + ") + (" + s + ") + (" + s + ") + (" + s + ")).size() > 0 ? 'x' : 'y'")}
	if _, untracked := generic.CostBound(bind(t, g)); untracked {
		t.Fatal("untracked")
	}
	_, perr := run(t, g, `{"id":"hostile","s":"`+strings.Repeat("a", 900<<10)+`"}`, 0)
	if perr == nil || !strings.Contains(perr.Message, "cost") {
		t.Errorf("error = %v, want the runtime cost limit", perr)
	}
	if res, perr := run(t, g, `{"id":"fine","s":"a"}`, 0); perr != nil || res.Events[0].Customer.DisplayName != "x" {
		t.Errorf("the small body: %+v, %v", res, perr)
	}
}
