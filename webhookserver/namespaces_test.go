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
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/internal/secretcache"
)

var _ = Describe("--watch-namespaces", func() {
	It("answers 404 for a source outside the watched namespaces, and serves the ones inside", func() {
		watched, other := newNamespace(), newNamespace()
		// Sources in both namespaces; the shared server answers both.
		createSource(watched, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret)
		createSource(other, "gettrx", crmv1alpha1.ProviderGETTRX, gettrxSecret)

		// A server restricted as main.go restricts it: caches and Secret reads
		// cover only the watched namespace.
		mgr := newServerManager(cfg, cache.Options{DefaultNamespaces: map[string]cache.Config{watched: {}}})
		_, url := serveOn(mgr, Options{BindAddress: "127.0.0.1:0", Namespaces: []string{watched}},
			secretcache.NewByName(mgr.GetAPIReader(), time.Second, watched), mgr.GetEventRecorder("webhook-server"))
		go func() {
			defer GinkgoRecover()
			Expect(mgr.Start(ctx)).To(Succeed())
		}()

		Eventually(func() int {
			code, _ := do(http.MethodPost, url+"/hooks/"+watched+"/gettrx", []byte("{"), http.Header{})
			return code
		}, 20*time.Second, 50*time.Millisecond).Should(Equal(http.StatusUnauthorized), "the watched namespace's source is served")
		code, body := do(http.MethodPost, url+"/hooks/"+other+"/gettrx", []byte("{"), http.Header{})
		Expect(code).To(Equal(http.StatusNotFound), "got %s", body)
		Expect(string(body)).To(ContainSubstring("unknown_source"))
	})
})
