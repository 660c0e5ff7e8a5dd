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
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Labels and annotations the operator reads and writes.
const (
	// LabelProvider names the provider a Customer came from.
	LabelProvider = "crm.customer-operator.io/provider"
	// LabelSource names the CustomerSource that wrote a Customer.
	LabelSource = "crm.customer-operator.io/source"

	// AnnotationLastEventID, AnnotationLastEventType, AnnotationLastEventTime and
	// AnnotationLastEventReceived record the provider event applied last. The webhook
	// server writes them together with the spec, in one request, so the order and
	// de-duplication checks never see a spec without the event that produced it; the
	// controller mirrors them into status.lastEvent.
	AnnotationLastEventID       = "crm.customer-operator.io/last-event-id"
	AnnotationLastEventType     = "crm.customer-operator.io/last-event-type"
	AnnotationLastEventTime     = "crm.customer-operator.io/last-event-time"
	AnnotationLastEventReceived = "crm.customer-operator.io/last-event-received"
	// AnnotationTombstoneUntil is set when a provider deletes a customer: the
	// Customer stays, with lifecycle Deleted, until this RFC 3339 time, so late
	// events are recognised as stale; then the controller deletes it.
	AnnotationTombstoneUntil = "crm.customer-operator.io/tombstone-until"

	// CustomerFinalizer holds a Customer until its delete reached every sink that
	// had received it.
	CustomerFinalizer = "crm.customer-operator.io/sink-delivery"
)

// Condition types and reasons.
const (
	ConditionReady  = "Ready"
	ConditionSynced = "Synced"

	ReasonValid          = "Valid"
	ReasonInvalidSpec    = "InvalidSpec"
	ReasonSecretNotFound = "SecretNotFound"
	ReasonSecretInvalid  = "SecretInvalid"
	ReasonSuspended      = "Suspended"
	// ReasonInvalidExpression: a generic source's CEL expression does not
	// compile, type-check or fit the cost limit.
	ReasonInvalidExpression = "InvalidExpression"
	ReasonSynced            = "Synced"
	ReasonNoSinks           = "NoSinks"
	ReasonDelivering        = "Delivering"
	ReasonDeliveryFailed    = "DeliveryFailed"
	ReasonSinkNotReady      = "SinkNotReady"
	ReasonEndpointGone      = "EndpointGone"
	ReasonTombstone         = "Tombstone"
)

// ReasonAddressNotAllowed: the sink's URL resolves to an address the operator's
// --sink-deny-cidrs refuses (and --sink-allow-cidrs does not allow); nothing is
// sent to it.
const ReasonAddressNotAllowed = "AddressNotAllowed"

// Provider names a payment or commerce provider that sends customer webhooks.
// +kubebuilder:validation:Enum=phasio;smarterpay;gettrx;payway;generic
type Provider string

const (
	ProviderPhasio     Provider = "phasio"
	ProviderSmarterPay Provider = "smarterpay"
	ProviderGETTRX     Provider = "gettrx"
	ProviderPayway     Provider = "payway"
	// ProviderGeneric is configured by the source's spec.generic, not compiled in.
	ProviderGeneric Provider = "generic"
)

// Lifecycle is where a customer stands with its provider.
// +kubebuilder:validation:Enum=Active;Inactive;Archived;Deleted
type Lifecycle string

const (
	LifecycleActive   Lifecycle = "Active"
	LifecycleInactive Lifecycle = "Inactive"
	LifecycleArchived Lifecycle = "Archived"
	// LifecycleDeleted marks a tombstone: the provider deleted the customer.
	LifecycleDeleted Lifecycle = "Deleted"
)

// AddressType says what an address is used for.
// +kubebuilder:validation:Enum=billing;shipping;delivery;other
type AddressType string

const (
	AddressBilling  AddressType = "billing"
	AddressShipping AddressType = "shipping"
	AddressDelivery AddressType = "delivery"
	AddressOther    AddressType = "other"
)

// MaxContacts and MaxAddresses are the MaxItems of spec.contacts and
// spec.addresses (the markers below must say the same): decoders stop at them
// rather than allocate lists the API server would refuse.
const (
	MaxContacts  = 100
	MaxAddresses = 100
)

// CustomerSpec is one customer record, as its provider (or a person) last described it.
// It has one writer at a time (the webhook server, a person, or a GitOps tool), and
// it is replaced whole, so server-side apply tracks it as a unit: a Customer's
// managed fields then name "spec" instead of each of its fields, which halves
// them, and with them what etcd stores and the API server decodes on every write.
// +kubebuilder:validation:XValidation:rule="!has(self.provider) || (has(self.externalID) && size(self.externalID) > 0)",message="externalID is required when provider is set",fieldPath=".externalID"
// +structType=atomic
type CustomerSpec struct {
	// Provider the customer came from. Empty for Customers written by hand or from Git.
	// +optional
	Provider Provider `json:"provider,omitempty"`

	// ExternalID is the customer's identifier at its provider.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ExternalID string `json:"externalID,omitempty"`

	// DisplayName is how the customer is shown to people.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	DisplayName string `json:"displayName,omitempty"`

	// CompanyName is the legal or trading name, for business customers.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	CompanyName string `json:"companyName,omitempty"`

	// Email is the customer's primary email address.
	// +kubebuilder:validation:MaxLength=320
	// +optional
	Email string `json:"email,omitempty"`

	// Phone is the customer's primary phone number, as the provider sent it.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Phone string `json:"phone,omitempty"`

	// TaxID is the customer's tax or VAT number.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	TaxID string `json:"taxID,omitempty"`

	// TaxExempt is true when the customer is exempt from tax.
	// +optional
	TaxExempt *bool `json:"taxExempt,omitempty"`

	// Approved is true when the provider approved the customer (Phasio).
	// +optional
	Approved *bool `json:"approved,omitempty"`

	// Language is the customer's preferred language, as a BCP 47 tag or the
	// provider's language code.
	// +kubebuilder:validation:MaxLength=35
	// +optional
	Language string `json:"language,omitempty"`

	// Lifecycle is where the customer stands: Active, Inactive, Archived, or Deleted
	// (a tombstone kept for a retention period after the provider deleted it).
	// +kubebuilder:default=Active
	// +optional
	Lifecycle Lifecycle `json:"lifecycle,omitempty"`

	// Contacts are the people to reach at this customer; the first is the primary one.
	// +kubebuilder:validation:MaxItems=100
	// +listType=atomic
	// +optional
	Contacts []Contact `json:"contacts,omitempty"`

	// Addresses of the customer.
	// +kubebuilder:validation:MaxItems=100
	// +listType=atomic
	// +optional
	Addresses []Address `json:"addresses,omitempty"`

	// ProviderCreatedAt is when the provider created the customer.
	// +optional
	ProviderCreatedAt *metav1.Time `json:"providerCreatedAt,omitempty"`

	// ProviderUpdatedAt is when the provider last changed the customer.
	// +optional
	ProviderUpdatedAt *metav1.Time `json:"providerUpdatedAt,omitempty"`

	// Attributes are provider fields without a place of their own in this API.
	// +kubebuilder:validation:MaxProperties=64
	// +optional
	Attributes map[string]string `json:"attributes,omitempty"`
}

// Contact is a person at a customer.
type Contact struct {
	// ID is the contact's identifier at the provider.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ID string `json:"id,omitempty"`

	// Title, such as Mr or Dr.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Title string `json:"title,omitempty"`

	// FirstName of the contact.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	FirstName string `json:"firstName,omitempty"`

	// LastName of the contact.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	LastName string `json:"lastName,omitempty"`

	// Email address of the contact.
	// +kubebuilder:validation:MaxLength=320
	// +optional
	Email string `json:"email,omitempty"`

	// Phone number of the contact.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Phone string `json:"phone,omitempty"`

	// NotificationPreference says how the contact wants to be notified, in the provider's words.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	NotificationPreference string `json:"notificationPreference,omitempty"`
}

// Address is a postal address of a customer.
type Address struct {
	// Type says what the address is used for: billing, shipping, delivery or other.
	// +kubebuilder:default=other
	// +optional
	Type AddressType `json:"type,omitempty"`

	// Name of the recipient or the place.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Name string `json:"name,omitempty"`

	// Line1 is the street and number.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Line1 string `json:"line1,omitempty"`

	// Line2 is the rest of the street address: building, staircase, floor, apartment.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Line2 string `json:"line2,omitempty"`

	// City or town.
	// +kubebuilder:validation:MaxLength=128
	// +optional
	City string `json:"city,omitempty"`

	// State, province or region.
	// +kubebuilder:validation:MaxLength=128
	// +optional
	State string `json:"state,omitempty"`

	// PostalCode is the postal or ZIP code.
	// +kubebuilder:validation:MaxLength=32
	// +optional
	PostalCode string `json:"postalCode,omitempty"`

	// Country as the provider sent it, usually an ISO 3166-1 alpha-2 code.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Country string `json:"country,omitempty"`

	// Phone number at this address.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Phone string `json:"phone,omitempty"`

	// Email address for this address.
	// +kubebuilder:validation:MaxLength=320
	// +optional
	Email string `json:"email,omitempty"`

	// Residential is true for a private home.
	// +optional
	Residential *bool `json:"residential,omitempty"`
}

// LastEvent describes the provider event applied last.
type LastEvent struct {
	// ID is the event's identity, used to recognise duplicates.
	ID string `json:"id"`

	// Type is the provider's event type.
	// +optional
	Type string `json:"type,omitempty"`

	// Time is when the provider says the event happened; older events are stale.
	// +optional
	Time *metav1.Time `json:"time,omitempty"`

	// ReceivedAt is when the webhook server received the event.
	// +optional
	ReceivedAt *metav1.Time `json:"receivedAt,omitempty"`
}

// LastEventAnnotations are the annotations that record the event applied last.
func LastEventAnnotations() []string {
	return []string{AnnotationLastEventID, AnnotationLastEventType, AnnotationLastEventTime, AnnotationLastEventReceived}
}

// LastEventFromAnnotations returns the event that the last-event annotations
// record, as the controller mirrors it into status.lastEvent (times to the
// second), or nil when they record none.
func LastEventFromAnnotations(ann map[string]string) *LastEvent {
	id := ann[AnnotationLastEventID]
	if id == "" {
		return nil
	}
	le := &LastEvent{ID: id, Type: ann[AnnotationLastEventType]}
	if t, err := time.Parse(time.RFC3339Nano, ann[AnnotationLastEventTime]); err == nil {
		mt := metav1.NewTime(t).Rfc3339Copy()
		le.Time = &mt
	}
	if t, err := time.Parse(time.RFC3339Nano, ann[AnnotationLastEventReceived]); err == nil {
		mt := metav1.NewTime(t).Rfc3339Copy()
		le.ReceivedAt = &mt
	}
	return le
}

// Same says whether e and o describe the same event, at the same times.
func (e *LastEvent) Same(o *LastEvent) bool {
	if e == nil || o == nil {
		return e == o
	}
	return e.ID == o.ID && e.Type == o.Type && e.Time.Equal(o.Time) && e.ReceivedAt.Equal(o.ReceivedAt)
}

// SinkSyncStatus says where a Customer stands with one CustomerSink.
type SinkSyncStatus struct {
	// Name of the CustomerSink, in the Customer's namespace.
	Name string `json:"name"`

	// SyncedGeneration is the Customer generation the sink acknowledged last.
	// +optional
	SyncedGeneration int64 `json:"syncedGeneration,omitempty"`

	// SinkGeneration is the CustomerSink generation that delivery went to; a change
	// to the sink (URL, format, selector) re-delivers.
	// +optional
	SinkGeneration int64 `json:"sinkGeneration,omitempty"`

	// LastSyncTime is when the sink acknowledged a delivery last.
	// +optional
	LastSyncTime *metav1.Time `json:"lastSyncTime,omitempty"`

	// LastError is the error of the last failed delivery; empty after a success.
	// +optional
	LastError string `json:"lastError,omitempty"`

	// ConsecutiveFailures counts the failed deliveries since the last success.
	// +optional
	ConsecutiveFailures int32 `json:"consecutiveFailures,omitempty"`
}

// CustomerStatus is what the operator observed of a Customer. Only the controller
// writes it, so server-side apply tracks it as a unit, as it does the spec.
// +structType=atomic
type CustomerStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready (the record is valid), Synced (every selecting sink has
	// the current generation), and kstatus' Reconciling (True while deliveries are
	// in flight or backing off to sinks that can serve) and Stalled (True with Ready
	// False: it takes a change to the Customer).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// LastEvent is the provider event applied last.
	// +optional
	LastEvent *LastEvent `json:"lastEvent,omitempty"`

	// Sinks says, per CustomerSink that selects this Customer, what it has received.
	// +listType=map
	// +listMapKey=name
	// +optional
	Sinks []SinkSyncStatus `json:"sinks,omitempty"`
}

// Customer is one customer record from a payment or commerce provider, or written by hand.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=cust,categories=customers
// +kubebuilder:printcolumn:name="Provider",type=string,JSONPath=`.spec.provider`
// +kubebuilder:printcolumn:name="External-ID",type=string,JSONPath=`.spec.externalID`
// +kubebuilder:printcolumn:name="Display-Name",type=string,JSONPath=`.spec.displayName`,priority=1
// +kubebuilder:printcolumn:name="Email",type=string,JSONPath=`.spec.email`,priority=1
// +kubebuilder:printcolumn:name="Lifecycle",type=string,JSONPath=`.spec.lifecycle`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Synced",type=string,JSONPath=`.status.conditions[?(@.type=="Synced")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Customer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the customer record.
	// +required
	Spec CustomerSpec `json:"spec"`

	// Status is what the operator observed.
	// +optional
	Status CustomerStatus `json:"status,omitempty"`
}

// CustomerList is a list of Customers.
// +kubebuilder:object:root=true
type CustomerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Customer `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Customer{}, &CustomerList{})
}
