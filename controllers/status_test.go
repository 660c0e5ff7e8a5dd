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

package controllers

import (
	"net/http"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
)

// sentRequest is what a recording client sent.
type sentRequest struct {
	method, path, accept string
}

// recordingClient is a client of the suite's API server that records what it
// sends other than reads.
func recordingClient() (client.Client, func() []sentRequest) {
	var mu sync.Mutex
	var sent []sentRequest
	c := rest.CopyConfig(cfg)
	c.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			if r.Method != http.MethodGet {
				mu.Lock()
				sent = append(sent, sentRequest{r.Method, r.URL.Path, r.Header.Get("Accept")})
				mu.Unlock()
			}
			return rt.RoundTrip(r)
		})
	}
	cl, err := client.New(c, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	return cl, func() []sentRequest {
		mu.Lock()
		defer mu.Unlock()
		return append([]sentRequest(nil), sent...)
	}
}

var _ = Describe("The status writer", func() {
	It("sends nothing for a status unchanged as stored, patches a change for a metadata-only answer, and conflicts on a stale resourceVersion", func() {
		ns := newNamespace()
		c := newCustomer(ns, "gettrx-cus-status", crmv1alpha1.CustomerSpec{
			Provider: crmv1alpha1.ProviderGETTRX, ExternalID: "cus_status", DisplayName: "Acme Ltd",
		})
		Expect(k8sClient.Create(ctx, c)).To(Succeed())
		// Settled: the reconciler ignores the Customer's own status writes, so
		// nothing writes it behind the spec's back.
		Eventually(func(g Gomega) {
			got := getCustomer(g, ns, c.Name)
			expectCondition(g, got.Status.Conditions, got.Generation, crmv1alpha1.ConditionSynced, metav1.ConditionTrue, crmv1alpha1.ReasonNoSinks)
		}).Should(Succeed())
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(c), c)).To(Succeed())
		cl, sent := recordingClient()

		By("a status equal but for sub-second times: no request")
		same := c.Status.DeepCopy()
		same.Conditions[0].LastTransitionTime = metav1.NewTime(same.Conditions[0].LastTransitionTime.Add(300 * time.Millisecond))
		written, err := patchStatus(ctx, cl, c, &c.Status, same, withLock)
		Expect(err).NotTo(HaveOccurred())
		Expect(written).To(BeFalse())
		Expect(sent()).To(BeEmpty())

		By("a changed status: one patch of the status, answered with metadata alone")
		changed := c.Status.DeepCopy()
		changed.LastEvent = &crmv1alpha1.LastEvent{ID: "evt_status", Type: "customer.updated"}
		written, err = patchStatus(ctx, cl, c, &c.Status, changed, withLock)
		Expect(err).NotTo(HaveOccurred())
		Expect(written).To(BeTrue())
		Expect(sent()).To(HaveLen(1))
		Expect(sent()[0].method).To(Equal(http.MethodPatch))
		Expect(sent()[0].path).To(HaveSuffix("/customers/" + c.Name + "/status"))
		Expect(sent()[0].accept).To(ContainSubstring("as=PartialObjectMetadata"))
		got := &crmv1alpha1.Customer{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(c), got)).To(Succeed())
		Expect(got.Status.LastEvent).NotTo(BeNil())
		Expect(got.Status.LastEvent.ID).To(Equal("evt_status"))

		By("a status computed from the object before that write: a conflict with the lock, a write without")
		stale := c.Status.DeepCopy()
		stale.LastEvent = &crmv1alpha1.LastEvent{ID: "evt_stale", Type: "customer.updated"}
		_, err = patchStatus(ctx, cl, c, &c.Status, stale, withLock)
		Expect(apierrors.IsConflict(err)).To(BeTrue(), "error %v", err)
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(c), got)).To(Succeed())
		Expect(got.Status.LastEvent.ID).To(Equal("evt_status"))
		written, err = patchStatus(ctx, cl, c, &c.Status, stale, withoutLock)
		Expect(err).NotTo(HaveOccurred())
		Expect(written).To(BeTrue())
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(c), got)).To(Succeed())
		Expect(got.Status.LastEvent.ID).To(Equal("evt_stale"))
	})
})
