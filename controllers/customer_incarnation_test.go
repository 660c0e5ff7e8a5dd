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
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/engine"
)

// laggingReads is the API server as a manager's cache sees it while the cache
// lags behind: reads of one Customer answer an earlier state of it; every
// other read, and every write, goes to the API server.
type laggingReads struct {
	client.Client
	stale *crmv1alpha1.Customer
}

func (c laggingReads) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if cu, ok := obj.(*crmv1alpha1.Customer); ok && key == client.ObjectKeyFromObject(c.stale) {
		c.stale.DeepCopyInto(cu)
		return nil
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

var _ = Describe("A Customer deleted and created again under the same name", func() {
	// The reconciler reads the Customer from its cache, which may still hold
	// the deleted one while the API server holds the new one: what it writes
	// about the old one must not land on the new one.
	reconcilerReading := func(stale *crmv1alpha1.Customer) *CustomerReconciler {
		GinkgoHelper()
		cs, err := kubernetes.NewForConfig(cfg)
		Expect(err).NotTo(HaveOccurred())
		broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
		DeferCleanup(broadcaster.Shutdown)
		return &CustomerReconciler{
			Client:     laggingReads{Client: k8sClient, stale: stale},
			Recorder:   broadcaster.NewRecorder(scheme, "customer-incarnation-test"),
			Secrets:    suiteSecrets,
			Deliveries: engine.New(engine.Options{Customers: k8sClient}),
		}
	}
	recreate := func(ns string, finalizers []string) (old, current *crmv1alpha1.Customer) {
		GinkgoHelper()
		meta := metav1.ObjectMeta{Namespace: ns, Name: "acme", Labels: map[string]string{isolatedLabel: "incarnations"}}
		old = &crmv1alpha1.Customer{ObjectMeta: meta, Spec: crmv1alpha1.CustomerSpec{DisplayName: "Acme, the first"}}
		Expect(k8sClient.Create(ctx, old)).To(Succeed())
		Expect(k8sClient.Delete(ctx, old)).To(Succeed())
		expectGone(old, 10*time.Second)
		current = &crmv1alpha1.Customer{ObjectMeta: meta, Spec: crmv1alpha1.CustomerSpec{DisplayName: "Acme, the second"}}
		current.Finalizers = finalizers
		Expect(k8sClient.Create(ctx, current)).To(Succeed())
		DeferCleanup(func() {
			latest := &crmv1alpha1.Customer{}
			if k8sClient.Get(context.Background(), client.ObjectKeyFromObject(current), latest) == nil {
				latest.Finalizers = nil
				_ = k8sClient.Update(context.Background(), latest)
			}
		})
		Expect(old.UID).NotTo(Equal(current.UID))
		return old, current
	}
	finalizersOf := func(c *crmv1alpha1.Customer) []string {
		GinkgoHelper()
		latest := &crmv1alpha1.Customer{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(c), latest)).To(Succeed())
		Expect(latest.UID).To(Equal(c.UID))
		return latest.Finalizers
	}
	request := func(c *crmv1alpha1.Customer) ctrl.Request {
		return ctrl.Request{NamespacedName: types.NamespacedName{Namespace: c.Namespace, Name: c.Name}}
	}

	It("does not add the old one's finalizer to the new one", func() {
		old, current := recreate(newNamespace(), nil)
		r := reconcilerReading(old)

		res, err := r.Reconcile(ctx, request(old))
		Expect(err).NotTo(HaveOccurred())
		Expect(finalizersOf(current)).To(BeEmpty(), "the new Customer's own reconcile adds its finalizer, after delivering nothing yet")
		Expect(res.RequeueAfter).To(BeNumerically(">", 0), "a reconcile of what the cache holds no more is tried again")
	})

	It("does not take the new one's finalizer away when it lets the old one go", func() {
		old, current := recreate(newNamespace(), []string{crmv1alpha1.CustomerFinalizer})
		// The cache still holds the old one as it was being deleted.
		old.DeletionTimestamp = &metav1.Time{Time: time.Now()}
		controllerutil.AddFinalizer(old, crmv1alpha1.CustomerFinalizer)
		r := reconcilerReading(old)

		res, err := r.Reconcile(ctx, request(old))
		Expect(err).NotTo(HaveOccurred())
		Expect(finalizersOf(current)).To(ConsistOf(crmv1alpha1.CustomerFinalizer),
			"without its finalizer the new Customer could be deleted before its sinks hear of it")
		Expect(res.RequeueAfter).To(BeNumerically(">", 0))
	})
})
