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
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
)

// Kstatus reads these two "abnormal-true" conditions, as Flux's objects carry them:
// Reconciling True means InProgress and Stalled True means Failed.
const (
	conditionReconciling = "Reconciling"
	conditionStalled     = "Stalled"
)

// setCondition is the one way conditions are set, so every condition carries the
// generation it describes and keeps its transition time when its status holds.
func setCondition(conds *[]metav1.Condition, generation int64, typ string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(conds, metav1.Condition{
		Type:               typ,
		Status:             status,
		ObservedGeneration: generation,
		Reason:             reason,
		Message:            message,
	})
}

// setReady sets Ready, and Stalled as its kstatus mirror: a resource that cannot
// become Ready without a change to it is Failed, not InProgress.
func setReady(conds *[]metav1.Condition, generation int64, ready bool, reason, message string) {
	if ready {
		setCondition(conds, generation, crmv1alpha1.ConditionReady, metav1.ConditionTrue, reason, message)
		meta.RemoveStatusCondition(conds, conditionStalled)
		return
	}
	setCondition(conds, generation, crmv1alpha1.ConditionReady, metav1.ConditionFalse, reason, message)
	setCondition(conds, generation, conditionStalled, metav1.ConditionTrue, reason, message)
}

// setPaused sets Ready False for a sink whose deliveries are paused, with
// Reconciling as its kstatus mirror: the pause ends by itself, so the sink is
// InProgress, not Failed.
func setPaused(conds *[]metav1.Condition, generation int64, reason, message string) {
	setCondition(conds, generation, crmv1alpha1.ConditionReady, metav1.ConditionFalse, reason, message)
	setCondition(conds, generation, conditionReconciling, metav1.ConditionTrue, reason, message)
	meta.RemoveStatusCondition(conds, conditionStalled)
}

// setSuspended sets Ready True with reason Suspended for an object its owner
// suspended, and drops Stalled and Reconciling. What its owner asked for holds, so
// kstatus reads it Current and a wait on it (helm --wait, a Flux Kustomization's
// wait) neither fails nor hangs on a pause made on purpose; Ready False would read
// InProgress and Stalled Failed. Argo CD's health check reads spec.suspend and shows
// it Suspended. The reason tells it apart from an object that serves.
func setSuspended(conds *[]metav1.Condition, generation int64, message string) {
	setCondition(conds, generation, crmv1alpha1.ConditionReady, metav1.ConditionTrue, crmv1alpha1.ReasonSuspended, message)
	meta.RemoveStatusCondition(conds, conditionStalled)
	meta.RemoveStatusCondition(conds, conditionReconciling)
}

// suspendedMessage says what a suspended object does, and what else it would
// report once resumed, so a problem is not hidden behind the pause.
func suspendedMessage(what, reason, message string) string {
	if reason == crmv1alpha1.ReasonSuspended {
		return what
	}
	return fmt.Sprintf("%s; once resumed: %s (%s)", what, message, reason)
}
