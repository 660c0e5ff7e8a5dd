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
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
)

var _ = Describe("CustomerSource Events", func() {
	// sourceEvents lists the events.k8s.io Events about one object, as
	// `kubectl describe` shows them: reason, type, note and how often each occurred.
	type seen struct {
		Type, Reason, Note string
		Count              int32
	}
	sourceEvents := func(g Gomega, ns string, uid types.UID) []seen {
		list := &eventsv1.EventList{}
		g.Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
		var out []seen
		for _, e := range list.Items {
			if e.Regarding.UID != uid {
				continue
			}
			n := int32(1)
			if e.Series != nil {
				n = e.Series.Count
			}
			out = append(out, seen{Type: e.Type, Reason: e.Reason, Note: e.Note, Count: n})
		}
		return out
	}
	setKey := func(ns, name string, data map[string][]byte) {
		GinkgoHelper()
		updateObject(ns, name, func(s *corev1.Secret) {
			s.Data = data
		})
	}

	It("records becoming Ready, and a Warning with the reason when a key rotation leaves the Secret unusable", func() {
		ns := newNamespace()
		createSecret(ns, "phasio-creds", map[string]string{"secret": phasioKey(32)})
		src := &crmv1alpha1.CustomerSource{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "phasio"},
			Spec: crmv1alpha1.CustomerSourceSpec{
				Provider:  crmv1alpha1.ProviderPhasio,
				SecretRef: crmv1alpha1.SecretReference{Name: "phasio-creds"},
			},
		}
		Expect(k8sClient.Create(ctx, src)).To(Succeed())

		By("becoming Ready: one Normal Event")
		Eventually(func(g Gomega) {
			g.Expect(sourceEvents(g, ns, src.UID)).To(ConsistOf(
				seen{Type: corev1.EventTypeNormal, Reason: "Ready", Note: "accepting phasio webhooks at /hooks/" + ns + "/phasio", Count: 1},
			))
		}).Should(Succeed())

		By("a rotation to a 16-byte key: a Warning that says why")
		setKey(ns, "phasio-creds", map[string][]byte{"secret": []byte(phasioKey(16))})
		Eventually(func(g Gomega) {
			evs := sourceEvents(g, ns, src.UID)
			g.Expect(evs).To(HaveLen(2))
			g.Expect(evs).To(ContainElement(And(
				HaveField("Type", corev1.EventTypeWarning),
				HaveField("Reason", crmv1alpha1.ReasonSecretInvalid),
				HaveField("Note", And(HavePrefix(`not ready: Secret "phasio-creds"`), ContainSubstring("32"))),
			)))
		}).Should(Succeed())

		By("a Secret change that keeps it unusable in the same way: nothing new")
		setKey(ns, "phasio-creds", map[string][]byte{"secret": []byte(phasioKey(16)), "unrelated": []byte("x")})
		Consistently(func(g Gomega) {
			for _, e := range sourceEvents(g, ns, src.UID) {
				g.Expect(e.Count).To(BeEquivalentTo(1), "%+v", e)
			}
			g.Expect(sourceEvents(g, ns, src.UID)).To(HaveLen(2))
		}, 2*time.Second).Should(Succeed())

		By("a fixed key: Ready again, recorded")
		setKey(ns, "phasio-creds", map[string][]byte{"secret": []byte(phasioKey(32))})
		// The recorder either adds a new Event or counts the first one again
		// (an Event series); kubectl describe shows both as two occurrences.
		Eventually(func(g Gomega) {
			var ready, warnings int32
			for _, e := range sourceEvents(g, ns, src.UID) {
				switch {
				case e.Type == corev1.EventTypeNormal && e.Reason == "Ready":
					ready += e.Count
				case e.Type == corev1.EventTypeWarning:
					warnings += e.Count
				}
			}
			g.Expect(ready).To(BeEquivalentTo(2))
			g.Expect(warnings).To(BeEquivalentTo(1))
		}).Should(Succeed())
	})
})
