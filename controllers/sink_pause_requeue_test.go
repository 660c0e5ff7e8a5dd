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
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/engine"
)

// TestSinkPausesDoNotRequeueTheirCustomers: a sink's pause (throttled,
// backing off, out of connections) starting or ending leaves its Customers'
// deliveries waiting in its queue, so it queues none of them again; a sink that
// stops being able to receive at all does.
func TestSinkPausesDoNotRequeueTheirCustomers(t *testing.T) {
	sink := func(status metav1.ConditionStatus, reason string) *crmv1alpha1.CustomerSink {
		s := &crmv1alpha1.CustomerSink{ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: "s", Generation: 1}}
		s.Status.Conditions = []metav1.Condition{{Type: crmv1alpha1.ConditionReady, Status: status, Reason: reason}}
		return s
	}
	ready := sink(metav1.ConditionTrue, crmv1alpha1.ReasonValid)
	for _, tc := range []struct {
		reason  string
		requeue bool
	}{
		{engine.ReasonThrottled, false},
		{engine.ReasonBackingOff, false},
		{engine.ReasonConnectionLimit, false},
		{crmv1alpha1.ReasonSecretNotFound, true},
	} {
		paused := sink(metav1.ConditionFalse, tc.reason)
		for _, e := range []event.UpdateEvent{{ObjectOld: ready, ObjectNew: paused}, {ObjectOld: paused, ObjectNew: ready}} {
			if got := sinkChangedForCustomers.Update(e); got != tc.requeue {
				t.Errorf("Ready %s → %s: Customers queued again = %v, want %v", e.ObjectOld.(*crmv1alpha1.CustomerSink).Status.Conditions[0].Reason,
					e.ObjectNew.(*crmv1alpha1.CustomerSink).Status.Conditions[0].Reason, got, tc.requeue)
			}
		}
	}
}
