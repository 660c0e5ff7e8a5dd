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
	"encoding/json"
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
)

// table is what `kubectl get` prints: the server's Table of a kind in a namespace,
// as column name to cell per object name, for the columns of `kubectl get` (priority
// 0) or of `-o wide` (every priority).
func table(g Gomega, resource, ns string, wide bool) map[string]map[string]string {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	g.Expect(err).NotTo(HaveOccurred())
	body, err := dc.RESTClient().Get().
		AbsPath("apis", crmv1alpha1.GroupVersion.Group, crmv1alpha1.GroupVersion.Version, "namespaces", ns, resource).
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").
		DoRaw(ctx)
	g.Expect(err).NotTo(HaveOccurred(), string(body))
	var t metav1.Table
	g.Expect(json.Unmarshal(body, &t)).To(Succeed())
	rows := map[string]map[string]string{}
	for _, r := range t.Rows {
		cells := map[string]string{}
		for i, c := range t.ColumnDefinitions {
			if c.Priority == 0 || wide {
				cells[c.Name] = fmt.Sprint(r.Cells[i])
			}
		}
		rows[cells["Name"]] = cells
	}
	return rows
}

var _ = Describe("kubectl get", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("says why a CustomerSink or CustomerSource is not Ready, whether a sink is suspended, and what its counts count", func() {
		Expect(k8sClient.Create(ctx, &crmv1alpha1.CustomerSink{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "no-secret"},
			Spec: crmv1alpha1.CustomerSinkSpec{
				URL:       "https://erp.example.com/hooks",
				SecretRef: &crmv1alpha1.SecretReference{Name: "missing"},
			},
		})).To(Succeed())
		Expect(k8sClient.Create(ctx, &crmv1alpha1.CustomerSink{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "paused"},
			Spec: crmv1alpha1.CustomerSinkSpec{
				URL:       "https://crm.example.com/hooks",
				SecretRef: &crmv1alpha1.SecretReference{Name: "missing"},
				Suspend:   true,
			},
		})).To(Succeed())
		Expect(k8sClient.Create(ctx, newCustomer(ns, "selected", crmv1alpha1.CustomerSpec{DisplayName: "Selected"}))).To(Succeed())
		Expect(k8sClient.Create(ctx, &crmv1alpha1.CustomerSource{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "no-secret"},
			Spec: crmv1alpha1.CustomerSourceSpec{
				Provider:  crmv1alpha1.ProviderPhasio,
				SecretRef: crmv1alpha1.SecretReference{Name: "missing"},
			},
		})).To(Succeed())

		Eventually(func(g Gomega) {
			sinks := table(g, "customersinks", ns, false)
			g.Expect(sinks["no-secret"]).To(HaveKeyWithValue("Type", "http"))
			g.Expect(sinks["no-secret"]).To(HaveKeyWithValue("Ready", "False"))
			g.Expect(sinks["no-secret"]).To(HaveKeyWithValue("Reason", crmv1alpha1.ReasonSecretNotFound))
			g.Expect(sinks["no-secret"]).To(HaveKey("Suspended"))
			g.Expect(sinks["paused"]).To(HaveKeyWithValue("Suspended", "true"))
			g.Expect(sinks["paused"]).To(HaveKeyWithValue("Reason", crmv1alpha1.ReasonSuspended))
			g.Expect(sinks["paused"]).To(HaveKeyWithValue("Selected-Customers", "1"))
			g.Expect(sinks["paused"]).To(HaveKey("Synced-Customers")) // none while suspended

			wide := table(g, "customersinks", ns, true)
			g.Expect(wide["no-secret"]).To(HaveKeyWithValue("Message", `Secret "missing" not found`))

			sources := table(g, "customersources", ns, false)
			g.Expect(sources["no-secret"]).To(HaveKeyWithValue("Ready", "False"))
			g.Expect(sources["no-secret"]).To(HaveKeyWithValue("Reason", crmv1alpha1.ReasonSecretNotFound))
			wide = table(g, "customersources", ns, true)
			g.Expect(wide["no-secret"]).To(HaveKeyWithValue("Message", `Secret "missing" not found`))
		}).Should(Succeed())
	})

	It("shows a Customer's name and email only with -o wide", func() {
		Expect(k8sClient.Create(ctx, newCustomer(ns, "jane", crmv1alpha1.CustomerSpec{
			DisplayName: "Jane Roe", Email: "jane@example.com",
		}))).To(Succeed())
		Eventually(func(g Gomega) {
			row := table(g, "customers", ns, false)["jane"]
			g.Expect(row).To(HaveKey("Ready"))
			g.Expect(row).NotTo(HaveKey("Display-Name"))
			g.Expect(row).NotTo(HaveKey("Email"))
			for _, cell := range row {
				g.Expect(cell).NotTo(ContainSubstring("jane@example.com"))
			}
			wide := table(g, "customers", ns, true)["jane"]
			g.Expect(wide).To(HaveKeyWithValue("Display-Name", "Jane Roe"))
			g.Expect(wide).To(HaveKeyWithValue("Email", "jane@example.com"))
		}).Should(Succeed())
	})
})
