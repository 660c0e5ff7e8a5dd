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

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SecretReference names a Secret in the same namespace.
type SecretReference struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// RateLimit bounds how fast one source accepts events. A request of n events
// (customer events or not) counts as n.
type RateLimit struct {
	// EventsPerSecond is the sustained number of events accepted per second.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	// +kubebuilder:default=50
	EventsPerSecond int32 `json:"eventsPerSecond"`

	// Burst is the number of events accepted at once above the sustained rate.
	// A request of more events than this is refused with 413.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	// +kubebuilder:default=100
	// +optional
	Burst int32 `json:"burst,omitempty"`
}

// CustomerSourceSpec describes an inbound provider endpoint.
// +kubebuilder:validation:XValidation:rule="(self.provider == 'generic') == has(self.generic)",message="generic is set exactly when provider is generic",fieldPath=".generic"
type CustomerSourceSpec struct {
	// Provider that posts to this source: phasio, smarterpay, gettrx, payway, or
	// generic (described by spec.generic).
	// +required
	Provider Provider `json:"provider"`

	// Generic describes the provider when provider is generic: authentication,
	// events and mapping.
	// +optional
	Generic *GenericSource `json:"generic,omitempty"`

	// SecretRef names the Secret (same namespace) with the provider's credentials.
	// Keys: phasio "secret" (Base64 URL-safe 32-byte key); smarterpay "secret" and/or
	// "username"+"password"; gettrx "secret"; payway "username"+"password" or "token";
	// generic "secret" (standardWebhooks, hmac), "username"+"password" (basic) or
	// "token" (bearer).
	// Every provider also accepts "previousSecret" (or "previousPassword",
	// "previousToken") during a rotation.
	// +required
	SecretRef SecretReference `json:"secretRef"`

	// TimestampTolerance is how far a signed timestamp may be from now, a Go
	// duration from 10s to 1h.
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s')",message="timestampTolerance must be at least 10s"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('1h')",message="timestampTolerance must be at most 1h"
	// +optional
	TimestampTolerance *metav1.Duration `json:"timestampTolerance,omitempty"`

	// TombstoneRetention is how long a deleted customer is kept (lifecycle Deleted)
	// so that late events, and the provider's retries of older events, are
	// recognised as stale instead of bringing the customer back. A Go duration from
	// 1h to 2160h (90 days); the default of 7 days covers the providers' retry
	// windows.
	// +kubebuilder:default="168h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1h')",message="tombstoneRetention must be at least 1h"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('2160h')",message="tombstoneRetention must be at most 2160h"
	// +optional
	TombstoneRetention *metav1.Duration `json:"tombstoneRetention,omitempty"`

	// RateLimit bounds the events this source accepts; above it the answer is 429.
	// +optional
	RateLimit *RateLimit `json:"rateLimit,omitempty"`

	// CustomerLabels are added to every Customer this source writes.
	// +kubebuilder:validation:MaxProperties=32
	// +optional
	CustomerLabels map[string]string `json:"customerLabels,omitempty"`

	// Suspend makes the source answer 503, so the provider retries later.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// CustomerSourceStatus is what the operator observed of a CustomerSource.
type CustomerSourceStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready says whether the source can verify and accept webhooks (True
	// with reason Suspended while spec.suspend is true, when it answers 503); kstatus'
	// Stalled is True while Ready is False: it takes a change to the source or its
	// Secret.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// WebhookPath is the path on the webhook server to give the provider:
	// /hooks/{namespace}/{name}.
	// +optional
	WebhookPath string `json:"webhookPath,omitempty"`

	// LastEventTime is when this source last applied an event.
	// +optional
	LastEventTime *metav1.Time `json:"lastEventTime,omitempty"`
}

// CustomerSource is an inbound endpoint for one provider's customer webhooks.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=csrc,categories=customers
// +kubebuilder:printcolumn:name="Provider",type=string,JSONPath=`.spec.provider`
// +kubebuilder:printcolumn:name="Path",type=string,JSONPath=`.status.webhookPath`
// +kubebuilder:printcolumn:name="Suspended",type=boolean,JSONPath=`.spec.suspend`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Last-Event",type=date,JSONPath=`.status.lastEventTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CustomerSource struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec describes the endpoint.
	// +required
	Spec CustomerSourceSpec `json:"spec"`

	// Status is what the operator observed.
	// +optional
	Status CustomerSourceStatus `json:"status,omitempty"`
}

// CustomerSourceList is a list of CustomerSources.
// +kubebuilder:object:root=true
type CustomerSourceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CustomerSource `json:"items"`
}

func init() {
	SchemeBuilder.Register(&CustomerSource{}, &CustomerSourceList{})
}
