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
	"os"
	"path/filepath"
	"testing"

	"github.com/customer-operator/customer-operator/webhookserver/providers"
	"github.com/customer-operator/customer-operator/webhookserver/providers/gettrx"
	"github.com/customer-operator/customer-operator/webhookserver/providers/providertest"
)

// BenchmarkStripeAgainstGETTRX: verify, decode and map a Stripe
// customer.created through the Stripe recipe, against the built-in GETTRX
// provider's Parse of its customer.created (GETTRX's events are Stripe's
// shape), in the same run (target: at most twice GETTRX's time). Besides
// the time it reports the process's CPU time per event (cpu-ns/op, with the
// garbage collector's), which other work on a shared machine disturbs less.
func BenchmarkStripeAgainstGETTRX(b *testing.B) {
	p, secret := stripe(b)
	stripeReq := providertest.Signed(b, p, providertest.Testdata(b, "stripe-customer-created.json"), secret, providertest.DefaultNow)
	gettrxBody, err := os.ReadFile(filepath.Join(providertest.SampleEvents(b), "gettrx", "customer-created.json"))
	if err != nil {
		b.Fatal(err)
	}
	gettrxSecret := providertest.SecretData("secret", "gettrx-bench-key")
	g := gettrx.New()
	gettrxReq := providertest.Signed(b, g, gettrxBody, gettrxSecret, providertest.DefaultNow)
	parse := func(p providers.Provider, req *providers.Request) func(b *testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			cpu, measured := processCPU()
			for b.Loop() {
				res, err := p.Parse(req)
				if err != nil || len(res.Events) != 1 || res.Events[0].Rejection != nil {
					b.Fatalf("Parse: %v", err)
				}
			}
			if after, _ := processCPU(); measured {
				b.ReportMetric(float64(after-cpu)/float64(b.N), "cpu-ns/op")
			}
		}
	}
	b.Run("generic-stripe", parse(p, stripeReq))
	b.Run("gettrx", parse(g, gettrxReq))
}
