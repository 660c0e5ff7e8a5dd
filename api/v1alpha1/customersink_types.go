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

// SinkFormat is the wire format a sink receives.
// +kubebuilder:validation:Enum=standard-webhooks;cloudevents
type SinkFormat string

const (
	// FormatStandardWebhooks signs each delivery as Standard Webhooks describes.
	FormatStandardWebhooks SinkFormat = "standard-webhooks"
	// FormatCloudEvents sends CloudEvents 1.0 in structured JSON mode.
	FormatCloudEvents SinkFormat = "cloudevents"
)

// SinkType says which kind of system a CustomerSink is: an HTTP receiver, a
// PostgreSQL table, a Kafka topic or a NATS JetStream stream.
// +kubebuilder:validation:Enum=http;postgres;kafka;nats
type SinkType string

const (
	// SinkTypeHTTP POSTs every change to spec.url.
	SinkTypeHTTP SinkType = "http"
	// SinkTypePostgres keeps one row per Customer in a PostgreSQL table (spec.postgres).
	SinkTypePostgres SinkType = "postgres"
	// SinkTypeKafka produces every change to a Kafka topic (spec.kafka).
	SinkTypeKafka SinkType = "kafka"
	// SinkTypeNATS publishes every change to a NATS JetStream stream (spec.nats).
	SinkTypeNATS SinkType = "nats"
)

// AnnotationRedeliver asks for every Customer a CustomerSink selects to be
// delivered to it again: set it to a new token (any string, a timestamp say);
// status.lastHandledRedeliver shows the token once that is done.
const AnnotationRedeliver = "crm.customer-operator.io/redeliver"

// CustomerSinkSpec describes an external system that receives Customer changes: an
// HTTP receiver (type http, the default), a PostgreSQL table, a Kafka topic or a
// NATS JetStream stream. Exactly the member block of its type is set.
// +kubebuilder:validation:XValidation:rule="self.type != 'http' || has(self.url)",message="url is required when type is http"
// +kubebuilder:validation:XValidation:rule="self.type == 'http' || !has(self.url)",message="url is only for type http"
// +kubebuilder:validation:XValidation:rule="has(self.postgres) == (self.type == 'postgres')",message="postgres is required when type is postgres, and only then"
// +kubebuilder:validation:XValidation:rule="has(self.kafka) == (self.type == 'kafka')",message="kafka is required when type is kafka, and only then"
// +kubebuilder:validation:XValidation:rule="has(self.nats) == (self.type == 'nats')",message="nats is required when type is nats, and only then"
// +kubebuilder:validation:XValidation:rule="self.type != 'http' || self.format != 'standard-webhooks' || has(self.secretRef)",message="secretRef is required for the standard-webhooks format"
// +kubebuilder:validation:XValidation:rule="self.type != 'postgres' || has(self.secretRef)",message="secretRef is required when type is postgres"
// +kubebuilder:validation:XValidation:rule="self.type != 'kafka' || !has(self.kafka) || !has(self.kafka.sasl) || has(self.secretRef)",message="secretRef is required when kafka.sasl is set"
type CustomerSinkSpec struct {
	// Type of the sink: http (the default), postgres, kafka or nats.
	// +kubebuilder:default=http
	// +optional
	Type SinkType `json:"type,omitempty"`

	// URL receives a POST for every change. http or https. Required when type is http,
	// and only for it.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'https' || url(self).getScheme() == 'http')",message="url must be an absolute http or https URL"
	// +optional
	URL string `json:"url,omitempty"`

	// Postgres keeps a table with one row per Customer. Required when type is postgres.
	// +optional
	Postgres *PostgresSink `json:"postgres,omitempty"`

	// Kafka produces every change to a topic. Required when type is kafka.
	// +optional
	Kafka *KafkaSink `json:"kafka,omitempty"`

	// NATS publishes every change to a JetStream stream. Required when type is nats.
	// +optional
	NATS *NATSSink `json:"nats,omitempty"`

	// Format of the HTTP deliveries: standard-webhooks (signed) or cloudevents
	// (structured JSON). Only type http reads it: Kafka and NATS sinks always carry
	// CloudEvents, a PostgreSQL sink writes rows.
	// +kubebuilder:default=standard-webhooks
	// +optional
	Format SinkFormat `json:"format,omitempty"`

	// SecretRef names the sink's one Secret (same namespace). For type http: key
	// "secret" (a whsec_ Standard Webhooks secret), and optionally "previousSecret"
	// (deliveries are signed with both during a rotation), "ca.crt" (a PEM CA bundle
	// for a private CA) and "headers" (extra HTTP headers, one "Name: value" a line).
	// For type postgres (required): "dsn", or "host" (with optional "port" and
	// "database"), "user" and "password"; optional "sslmode" and "ca.crt". For type
	// kafka: "username" and "password" with sasl, optional "ca.crt". For type nats
	// (optional): "creds", "nkey", "user" and "password", or "token"; optional "ca.crt".
	// +optional
	SecretRef *SecretReference `json:"secretRef,omitempty"`

	// Timeout of one delivery, a Go duration from 1s to 60s: a delivery holds one of the
	// controllers' slots shared by every namespace while it waits.
	// +kubebuilder:default="10s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="timeout must be at least 1s"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('60s')",message="timeout must be at most 60s"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// Selector chooses Customers by label; empty selects every Customer of the namespace.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`

	// Providers, when set, limits the sink to Customers of these providers.
	// +listType=set
	// +optional
	Providers []Provider `json:"providers,omitempty"`

	// Suspend stops deliveries to this sink; they resume, from the current state, when it is unset.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// Fields, when set, limits the Customer spec fields the sink receives in
	// data.spec to these (JSON names, e.g. [displayName, email, addresses]); when
	// absent, the sink receives all of them. provider, externalID and lifecycle are
	// always sent: they say which customer a delivery is about and whether it is
	// still alive (a tombstone has lifecycle Deleted). Metadata (name, namespace,
	// uid, generation, labels) is always sent.
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Fields []CustomerField `json:"fields,omitempty"`
}

// PostgresSink is a PostgreSQL table that holds one row per Customer, kept equal to
// the Customers: upserts guarded by generation, a delete removes the row.
type PostgresSink struct {
	// Schema of the table.
	// +kubebuilder:default=public
	// +kubebuilder:validation:Pattern="^[a-z_][a-z0-9_]{0,62}$"
	// +optional
	Schema string `json:"schema,omitempty"`

	// Table the rows are kept in; created when missing.
	// +kubebuilder:default=customers
	// +kubebuilder:validation:Pattern="^[a-z_][a-z0-9_]{0,62}$"
	// +optional
	Table string `json:"table,omitempty"`

	// MaxConns bounds the sink's connection pool.
	// +kubebuilder:default=4
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=16
	// +optional
	MaxConns int32 `json:"maxConns,omitempty"`
}

// KafkaSink is a Kafka topic (best compacted) that receives every change as a
// CloudEvent, keyed per Customer; a delete is a tombstone.
type KafkaSink struct {
	// Brokers to bootstrap from, host:port.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=261
	// +kubebuilder:validation:items:Pattern="^[^\\s/]+:[0-9]{1,5}$"
	// +required
	Brokers []string `json:"brokers"`

	// Topic the records are produced to.
	// +kubebuilder:validation:Pattern="^[a-zA-Z0-9._-]{1,249}$"
	// +required
	Topic string `json:"topic"`

	// SASL mechanism; the Secret's "username" and "password" are the credentials.
	// +kubebuilder:validation:Enum=PLAIN;SCRAM-SHA-256;SCRAM-SHA-512
	// +optional
	SASL string `json:"sasl,omitempty"`

	// TLS connects to the brokers over TLS; the Secret's optional "ca.crt" is the CA bundle.
	// +optional
	TLS bool `json:"tls,omitempty"`
}

// NATSSink is a NATS JetStream stream that receives every change as a CloudEvent.
type NATSSink struct {
	// URL of the NATS server: nats:// or tls://.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'nats' || url(self).getScheme() == 'tls')",message="url must be an absolute nats or tls URL"
	// +required
	URL string `json:"url"`

	// Stream the subjects belong to.
	// +kubebuilder:validation:Pattern="^[a-zA-Z0-9_-]{1,255}$"
	// +required
	Stream string `json:"stream"`

	// SubjectPrefix of the subjects: {prefix}.{namespace}.{name}.
	// +kubebuilder:default=customers
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern="^[a-zA-Z0-9_-]+(\\.[a-zA-Z0-9_-]+)*$"
	// +optional
	SubjectPrefix string `json:"subjectPrefix,omitempty"`

	// KVBucket, when set, also keeps key {namespace}.{name} in this JetStream
	// key-value bucket, deleted when the Customer is.
	// +kubebuilder:validation:Pattern="^[a-zA-Z0-9_-]{1,255}$"
	// +optional
	KVBucket string `json:"kvBucket,omitempty"`
}

// CustomerField is the JSON name of a field of CustomerSpec.
// +kubebuilder:validation:Enum=provider;externalID;displayName;companyName;email;phone;taxID;taxExempt;approved;language;lifecycle;contacts;addresses;providerCreatedAt;providerUpdatedAt;attributes
type CustomerField string

// CustomerSinkStatus is what the operator observed of a CustomerSink.
type CustomerSinkStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready says whether the sink can receive deliveries (True with
	// reason Suspended while spec.suspend is true); kstatus' Reconciling is True while
	// deliveries are paused (Throttled, BackingOff, ConnectionLimit), and Stalled while Ready is False
	// for a reason that takes a change to the sink or its Secret.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Selected counts the Customers this sink selects.
	// +optional
	Selected int32 `json:"selected"`

	// Synced counts the selected Customers whose current generation the sink has.
	// +optional
	Synced int32 `json:"synced"`

	// LastHandledRedeliver is the last value of the annotation
	// crm.customer-operator.io/redeliver that was handled: every Customer the
	// sink selected then was delivered to it again, with the same webhook-id as
	// before, and acknowledged.
	// +optional
	LastHandledRedeliver string `json:"lastHandledRedeliver,omitempty"`
}

// CustomerSink is an external system that receives every change of the Customers it selects.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=csink,categories=customers
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.url`
// +kubebuilder:printcolumn:name="Format",type=string,JSONPath=`.spec.format`
// +kubebuilder:printcolumn:name="Selected-Customers",type=integer,JSONPath=`.status.selected`
// +kubebuilder:printcolumn:name="Synced-Customers",type=integer,JSONPath=`.status.synced`
// +kubebuilder:printcolumn:name="Suspended",type=boolean,JSONPath=`.spec.suspend`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CustomerSink struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec describes the sink.
	// +required
	Spec CustomerSinkSpec `json:"spec"`

	// Status is what the operator observed.
	// +optional
	Status CustomerSinkStatus `json:"status,omitempty"`
}

// CustomerSinkList is a list of CustomerSinks.
// +kubebuilder:object:root=true
type CustomerSinkList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CustomerSink `json:"items"`
}

func init() {
	SchemeBuilder.Register(&CustomerSink{}, &CustomerSinkList{})
}
