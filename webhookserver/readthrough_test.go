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

package webhookserver

import (
	"net/http"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/rest"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
	"github.com/customer-operator/customer-operator/webhookserver/providers/registry"
)

// requestLog records the method and path of every request a rest.Config sends.
type requestLog struct {
	mu   sync.Mutex
	seen []string
}

func (l *requestLog) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		l.mu.Lock()
		l.seen = append(l.seen, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
		l.mu.Unlock()
		return rt.RoundTrip(r)
	})
}

// matching returns the requests whose line contains every one of parts.
func (l *requestLog) matching(parts ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, s := range l.seen {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(s, p)
		}
		if all {
			out = append(out, s)
		}
	}
	return out
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

var _ = Describe("A webhook replica reading Customers from the API server", func() {
	It("applies, de-duplicates and orders events without watching or listing Customers", func() {
		var log requestLog
		scfg := rest.CopyConfig(cfg)
		scfg.WrapTransport = log.wrap
		url := startServer(scfg, Options{BindAddress: "127.0.0.1:0", AuthFailuresPerMinute: 100000, ReadCustomersFromAPIServer: true})
		ns := newNamespace()
		createSource(ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret)
		sendTo := func(ev []byte) Counts {
			GinkgoHelper()
			code, body := sendURL(url, ns, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret, ev)
			Expect(code).To(Equal(http.StatusOK), string(body))
			return decodeCounts(body)
		}

		Expect(sendTo(gettrxEvent("evt_r1", "customer.created", 1000, "cus_r", "first"))).To(Equal(Counts{Applied: 1}))
		Expect(sendTo(gettrxEvent("evt_r2", "customer.updated", 2000, "cus_r", "second"))).To(Equal(Counts{Applied: 1}))
		Expect(sendTo(gettrxEvent("evt_r2", "customer.updated", 2000, "cus_r", "second"))).To(Equal(Counts{Duplicate: 1}))
		Expect(sendTo(gettrxEvent("evt_r0", "customer.updated", 500, "cus_r", "older"))).To(Equal(Counts{Stale: 1}))
		c := getCustomer(ns, crmv1alpha1.ProviderGETTRX, "cus_r")
		Expect(c.Spec.DisplayName).To(Equal("second"))
		Expect(c.Annotations).To(HaveKeyWithValue(crmv1alpha1.AnnotationLastEventID, "evt_r2"))

		customers := "/apis/crm.customer-operator.io/v1alpha1/namespaces/" + ns + "/customers/"
		Expect(log.matching("GET", customers)).NotTo(BeEmpty(), "the events' Customers were read from the API server")
		Expect(log.matching("GET", "/customers?")).To(BeEmpty(), "no list or watch of Customers")
		Expect(log.matching("GET", "/customers?", "watch=true")).To(BeEmpty(), "no watch of Customers")
	})
})

// sendURL is send to the server at url.
func sendURL(url, ns, name string, provider crmv1alpha1.Provider, secret map[string][]byte, plaintext []byte) (int, []byte) {
	sim, ok := registry.Lookup(provider).(providers.Simulator)
	Expect(ok).To(BeTrue(), "provider %s has no simulator", provider)
	body, header, err := sim.Prepare(plaintext, secret, time.Now())
	Expect(err).NotTo(HaveOccurred())
	return do(http.MethodPost, url+"/hooks/"+ns+"/"+name, body, header)
}
