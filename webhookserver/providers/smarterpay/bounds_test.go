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

package smarterpay_test

import (
	"bytes"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/customer-operator/customer-operator/webhookserver/providers"
	"github.com/customer-operator/customer-operator/webhookserver/providers/providertest"
	"github.com/customer-operator/customer-operator/webhookserver/providers/smarterpay"
)

const oneEvent = `{"id":"EV1","created_at":"2021-07-16T09:00:00.000Z","resource_type":"customer_account","reference":"CUST1","company_name":"Acme"}`

// batch is one customer event followed by n copies of filler, as a batch bomb
// sends them.
func batch(n int, filler string) []byte {
	var b bytes.Buffer
	b.WriteString(`{"events":[` + oneEvent)
	for range n {
		b.WriteString("," + filler)
	}
	b.WriteString("]}")
	return b.Bytes()
}

func signedBatch(tb testing.TB, body []byte, maxEvents int) *providers.Request {
	tb.Helper()
	req := providertest.Signed(tb, smarterpay.New(), body, keySecret, time.Now())
	req.MaxEvents = maxEvents
	return req
}

// allocated is the heap bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A batch of more elements than MaxEvents is refused at the first one past it,
// whatever the elements are, and costs about what the allowed ones cost: the
// rest of the array is never decoded.
func TestEventLimitStopsDecoding(t *testing.T) {
	const limit = 1000
	bomb := batch(340_000, "{}") // about 1 MiB, as the body limit allows
	req := signedBatch(t, bomb, limit)
	var err error
	bytesAlloc := allocated(func() { _, err = smarterpay.New().Parse(req) })
	providertest.ExpectError(t, err, providers.Error{Status: http.StatusRequestEntityTooLarge,
		Reason: providers.ReasonTooManyEvents, Field: "events"})
	if bytesAlloc > 256<<10 {
		t.Errorf("refusing a %d-byte batch of %d elements allocated %d bytes, want under 256 KiB", len(bomb), 340_001, bytesAlloc)
	}

	res := providertest.Parse(t, smarterpay.New(), signedBatch(t, batch(limit-1, "{}"), limit))
	if len(res.Events) != 1 || res.Ignored != limit-1 {
		t.Errorf("a batch of exactly MaxEvents = %d events, %d ignored; want 1, %d", len(res.Events), res.Ignored, limit-1)
	}
}

// What Parse allocates grows with the customer events it keeps, not with the
// elements that arrived: 100,000 ignored elements cost next to nothing beside
// one kept event, and the result is not sized by the element count.
func TestParseAllocatesByKeptEvents(t *testing.T) {
	const ignored = 100_000
	p := smarterpay.New()
	one := signedBatch(t, batch(0, ""), ignored+1)
	many := signedBatch(t, batch(ignored, `{"resource_type":"payment"}`), ignored+1)

	var res *providers.Result
	base := allocated(func() { res = providertest.Parse(t, p, one) })
	got := allocated(func() { res = providertest.Parse(t, p, many) })
	if len(res.Events) != 1 || res.Ignored != ignored {
		t.Fatalf("Parse = %d events, %d ignored; want 1, %d", len(res.Events), res.Ignored, ignored)
	}
	if c := cap(res.Events); c > 4 {
		t.Errorf("result sized for %d events, keeps 1", c)
	}
	// The elements are decoded one at a time into one reused event; what is
	// left is the decoder's own bookkeeping per element.
	if perElement := float64(got-base) / ignored; perElement > 64 {
		t.Errorf("each ignored element cost %.0f bytes (%d bytes for %d, body %d bytes), want at most 64", perElement, got-base, ignored, len(many.Body))
	}
}

// BenchmarkParseIgnoredElements reports what a batch of many elements that are
// not customer events costs beside the one it keeps.
func BenchmarkParseIgnoredElements(b *testing.B) {
	req := signedBatch(b, batch(10_000, `{"resource_type":"payment","id":"P1"}`), 20_000)
	p := smarterpay.New()
	b.ReportAllocs()
	b.SetBytes(int64(len(req.Body)))
	for b.Loop() {
		if _, err := p.Parse(req); err != nil {
			b.Fatal(err)
		}
	}
}

// A body is one JSON object with an events array: anything else is refused 400
// with what is wrong with it, and nothing in it is kept.
func TestBodyIsOneObjectWithEvents(t *testing.T) {
	for _, tc := range []struct {
		name, body, field, inMessage string
	}{
		{"two values", `{"events":[` + oneEvent + `]} {}`, "", "more than one JSON value"},
		{"null", `null`, "events", "no events array"},
		{"an array", `[` + oneEvent + `]`, "", "not a JSON object"},
		{"events null", `{"events":null}`, "events", "no events array"},
		{"cut off", `{"events":[` + oneEvent + `]`, "", "cannot be decoded"},
		{"broken in another key", `{"other":[1,}`, "", "not valid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := smarterpay.New().Parse(signedBatch(t, []byte(tc.body), 10))
			providertest.ExpectError(t, err, providers.Error{Status: http.StatusBadRequest, Reason: providers.ReasonMalformed, Field: tc.field})
			if err != nil && !strings.Contains(err.Error(), tc.inMessage) {
				t.Errorf("error %q does not say %q", err, tc.inMessage)
			}
		})
	}
}
