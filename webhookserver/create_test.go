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
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
)

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

var _ = Describe("Customer creates answered with metadata", func() {
	It("creates the Customer, is answered with its metadata alone, and reports the API server's errors as they are", func() {
		var mu sync.Mutex
		var answers []string
		ccfg := rest.CopyConfig(cfg)
		ccfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
			return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
				resp, err := rt.RoundTrip(r)
				if err == nil && r.Method == http.MethodPost && resp.StatusCode < 300 {
					body, rerr := io.ReadAll(resp.Body)
					_ = resp.Body.Close()
					resp.Body = io.NopCloser(bytes.NewReader(body))
					if rerr == nil {
						var tm metav1.TypeMeta
						_ = json.Unmarshal(body, &tm)
						mu.Lock()
						answers = append(answers, tm.Kind)
						mu.Unlock()
					}
				}
				return resp, err
			})
		}
		hc, err := rest.HTTPClientFor(ccfg)
		Expect(err).NotTo(HaveOccurred())
		create, err := NewMetadataCreate(ccfg, hc)
		Expect(err).NotTo(HaveOccurred())

		ns := newNamespace()
		c := &crmv1alpha1.Customer{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gettrx-cus-meta", Labels: map[string]string{"a": "b"},
				Finalizers: []string{crmv1alpha1.CustomerFinalizer}},
			Spec: crmv1alpha1.CustomerSpec{Provider: crmv1alpha1.ProviderGETTRX, ExternalID: "cus_meta", DisplayName: "Meta Ltd", Email: "meta@example.com"},
		}
		Expect(create(ctx, c)).To(Succeed())
		got := &crmv1alpha1.Customer{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(c), got)).To(Succeed())
		Expect(got.Spec.ExternalID).To(Equal(c.Spec.ExternalID))
		Expect(got.Spec.DisplayName).To(Equal(c.Spec.DisplayName))
		Expect(got.Spec.Email).To(Equal(c.Spec.Email))
		Expect(got.Labels).To(Equal(c.Labels))
		Expect(got.Finalizers).To(Equal(c.Finalizers))
		mu.Lock()
		Expect(answers).To(HaveLen(1))
		Expect(answers[0]).To(Equal("PartialObjectMetadata"), "the create's answer is the metadata alone")
		mu.Unlock()

		Expect(apierrors.IsAlreadyExists(create(ctx, c))).To(BeTrue(), "a second create is AlreadyExists")

		bad := c.DeepCopy()
		bad.Name = "gettrx-cus-bad"
		bad.Spec.ExternalID = strings.Repeat("x", 1000)
		err = create(ctx, bad)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "an invalid Customer is Invalid: %v", err)
		Expect(eventRejection(err)).NotTo(BeNil())
		Expect(eventRejection(err).Field).To(ContainSubstring("spec.externalID"))
	})
})
