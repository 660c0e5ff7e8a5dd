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

package envtestutil

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
	"github.com/customer-operator/customer-operator/webhookserver/providers/registry"
)

// SourceChurn creates and deletes GETTRX CustomerSources named src-0 to
// src-<N-1> in bulk, each with a Secret of its own, to show what the process
// keeps of objects once they are gone.
type SourceChurn struct {
	Client client.Client
	// Hooks is the base URL of the webhook server the sources are sent to.
	Hooks string
	N     int
	// Event is the plaintext of the one event source name is sent, naming
	// customer.
	Event func(name, customer string) []byte
}

// SourceName is the name of source i, and of its Secret.
func SourceName(i int) string { return fmt.Sprintf("src-%d", i) }

// Create makes the sources in ns, each Secret holding a key and padding, and
// sends each source one signed event until the server answers it: every
// other event names a Customer too long to apply, which is answered 422 (a
// signed request is counted all the same); the rest are accepted. also, when
// not nil, runs for each source once its event was answered.
func (c SourceChurn) Create(ctx context.Context, ns string, padding []byte, also func(i int)) {
	ginkgo.GinkgoHelper()
	gettrx := registry.Lookup(crmv1alpha1.ProviderGETTRX).(providers.Simulator)
	eachInParallel(c.N, func(i int) {
		name := SourceName(i)
		secret := map[string][]byte{providers.KeySecret: []byte(name + "-key"), "padding": padding}
		gomega.Expect(c.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: secret})).To(gomega.Succeed())
		gomega.Expect(c.Client.Create(ctx, &crmv1alpha1.CustomerSource{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       crmv1alpha1.CustomerSourceSpec{Provider: crmv1alpha1.ProviderGETTRX, SecretRef: crmv1alpha1.SecretReference{Name: name}},
		})).To(gomega.Succeed())
		customer, want := "Churn", gomega.BeNumerically("<", 300)
		if i%2 == 1 {
			customer, want = strings.Repeat("y", 600), gomega.Equal(http.StatusUnprocessableEntity)
		}
		// 404 and 503 until the server's caches hold the source and its Secret.
		gomega.Eventually(func() int {
			body, header, err := gettrx.Prepare(c.Event(name, customer), secret, time.Now())
			gomega.Expect(err).NotTo(gomega.HaveOccurred())
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Hooks+"/hooks/"+ns+"/"+name, bytes.NewReader(body))
			gomega.Expect(err).NotTo(gomega.HaveOccurred())
			req.Header = header
			resp, err := http.DefaultClient.Do(req)
			gomega.Expect(err).NotTo(gomega.HaveOccurred())
			_ = resp.Body.Close()
			return resp.StatusCode
		}).WithTimeout(30*time.Second).WithPolling(50*time.Millisecond).Should(want, "source %s/%s never answered its signed event as expected", ns, name)
		if also != nil {
			also(i)
		}
	})
}

// Delete deletes the sources in ns and the Secrets of every other one: the
// rest stay, referenced by nothing. also, when not nil, runs for each source
// after its delete.
func (c SourceChurn) Delete(ctx context.Context, ns string, also func(i int)) {
	ginkgo.GinkgoHelper()
	eachInParallel(c.N, func(i int) {
		name := SourceName(i)
		gomega.Expect(c.Client.Delete(ctx, &crmv1alpha1.CustomerSource{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})).To(gomega.Succeed())
		if i%2 == 0 {
			gomega.Expect(c.Client.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})).To(gomega.Succeed())
		}
		if also != nil {
			also(i)
		}
	})
}

// eachInParallel runs f for 0 to n-1, eight at a time, as a burst of clients
// would, and returns when every call has.
func eachInParallel(n int, f func(i int)) {
	ginkgo.GinkgoHelper()
	var g errgroup.Group
	g.SetLimit(8)
	for i := range n {
		g.Go(func() error {
			defer ginkgo.GinkgoRecover()
			f(i)
			return nil
		})
	}
	gomega.Expect(g.Wait()).To(gomega.Succeed())
}

// Heap is the live heap after a collection: in use and allocated.
func Heap() (inUse, alloc uint64) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse, m.HeapAlloc
}

// MiB is b in mebibytes.
func MiB(b uint64) float64 { return float64(b) / (1 << 20) }
