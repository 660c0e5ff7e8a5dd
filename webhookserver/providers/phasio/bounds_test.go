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

package phasio_test

import (
	"net/http"
	"runtime"
	"strings"
	"testing"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
	"github.com/customer-operator/customer-operator/webhookserver/providers/phasio"
	"github.com/customer-operator/customer-operator/webhookserver/providers/providertest"
)

// organisationWith is an organisation whose field list holds n copies of item.
func organisationWith(list, item string, n int) []byte {
	items := strings.TrimSuffix(strings.Repeat(item+",", n), ",")
	return []byte(`{"id":"ORG1","name":"Acme","lastUpdatedOn":"2026-03-01T11:59:00","` + list + `":[` + items + `]}`)
}

// Phasio's customers and addresses stop decoding at the Customer API's MaxItems:
// an organisation with one more is refused naming the list, and one with a
// quarter of a million empty entries costs no more than the limit's worth.
func TestNestedListsCappedAtAPILimits(t *testing.T) {
	for _, tc := range []struct {
		list  string
		item  string
		limit int
	}{
		{"customers", `{"email":"a@example.com"}`, crmv1alpha1.MaxContacts},
		{"addresses", `{"street1":"1 Main St"}`, crmv1alpha1.MaxAddresses},
	} {
		t.Run(tc.list, func(t *testing.T) {
			p := phasio.New()
			now := providertest.DefaultNow
			ev := providertest.ParseOne(t, p, providertest.Signed(t, p, organisationWith(tc.list, tc.item, tc.limit), secret, now))
			if n := len(ev.Customer.Contacts) + len(ev.Customer.Addresses); n != tc.limit {
				t.Errorf("an organisation with %d %s decoded to %d", tc.limit, tc.list, n)
			}

			_, err := p.Parse(providertest.Signed(t, p, organisationWith(tc.list, tc.item, tc.limit+1), secret, now))
			providertest.ExpectError(t, err, providers.Error{Status: http.StatusUnprocessableEntity,
				Reason: providers.ReasonTooManyItems, Field: tc.list}, secret)

			bomb := providertest.Signed(t, p, organisationWith(tc.list, "{}", 250_000), secret, now)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err = p.Parse(bomb)
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatalf("an organisation with 250,000 %s was accepted", tc.list)
			}
			// The body is decrypted into one buffer of its size; beyond it, the
			// limit's worth of entries.
			if got, want := after.TotalAlloc-before.TotalAlloc, uint64(len(bomb.Body))+256<<10; got > want {
				t.Errorf("refusing %d %s (body %d bytes) allocated %d bytes, want under %d", 250_000, tc.list, len(bomb.Body), got, want)
			}
		})
	}
}
