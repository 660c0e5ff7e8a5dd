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

// MaxExpressionLength is the MaxLength of every CEL expression of a generic
// source (the markers below must say the same), as Kubernetes bounds the rules
// of a CRD: a longer expression costs the shared webhook server to parse.
const MaxExpressionLength = 4096

// Expression is a CEL expression over the request's `body` (the decoded JSON),
// its `headers` (lower-case names, first values) and, per event, `event`.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=4096
type Expression string

// GenericSource configures a provider that is described rather than compiled:
// how its requests are authenticated, where their events are, and how an event
// maps to a Customer.
type GenericSource struct {
	// Authentication says how requests are authenticated: exactly one mode.
	// +required
	Authentication GenericAuthentication `json:"authentication"`

	// Events says where the events are in a request and what each one is.
	// +required
	Events GenericEvents `json:"events"`

	// Mapping gives a CEL expression per Customer field, evaluated per event.
	// +required
	Mapping GenericMapping `json:"mapping"`
}

// GenericAuthentication holds exactly one authentication mode. Keys come from
// the source's Secret: "secret" (and "previousSecret") for standardWebhooks and
// hmac; "username" and "password" (and "previousPassword") for basic; "token"
// (and "previousToken") for bearer.
// +kubebuilder:validation:XValidation:rule="[has(self.standardWebhooks), has(self.hmac), has(self.basic), has(self.bearer)].filter(x, x).size() == 1",message="exactly one of standardWebhooks, hmac, basic or bearer"
type GenericAuthentication struct {
	// StandardWebhooks verifies the webhook-id, webhook-timestamp and
	// webhook-signature headers of the Standard Webhooks specification, with a
	// whsec_ key in the Secret's "secret".
	// +optional
	StandardWebhooks *StandardWebhooksAuthentication `json:"standardWebhooks,omitempty"`

	// HMAC verifies an HMAC signature of the body (and optionally a timestamp)
	// carried in a header.
	// +optional
	HMAC *HMACAuthentication `json:"hmac,omitempty"`

	// Basic checks HTTP Basic credentials before the body is read.
	// +optional
	Basic *HeaderAuthentication `json:"basic,omitempty"`

	// Bearer checks an "Authorization: Bearer" token before the body is read.
	// +optional
	Bearer *HeaderAuthentication `json:"bearer,omitempty"`
}

// StandardWebhooksAuthentication has no settings: the specification fixes the
// headers, the signed content and the encoding.
type StandardWebhooksAuthentication struct{}

// HeaderAuthentication has no settings: the credentials are in the Secret.
type HeaderAuthentication struct{}

// HMACAlgorithm is the hash of an HMAC signature.
// +kubebuilder:validation:Enum=sha1;sha256;sha512
type HMACAlgorithm string

// HMAC algorithms.
const (
	HMACSHA1   HMACAlgorithm = "sha1"
	HMACSHA256 HMACAlgorithm = "sha256"
	HMACSHA512 HMACAlgorithm = "sha512"
)

// SignatureEncoding is how a signature is written in its header.
// +kubebuilder:validation:Enum=hex;base64
type SignatureEncoding string

// Signature encodings.
const (
	SignatureHex    SignatureEncoding = "hex"
	SignatureBase64 SignatureEncoding = "base64"
)

// HMACAuthentication describes an HMAC signature in a header.
// +kubebuilder:validation:XValidation:rule="!(has(self.prefix) && has(self.signatureKey))",message="prefix and signatureKey are exclusive"
// +kubebuilder:validation:XValidation:rule="!(has(self.timestampHeader) && has(self.timestampKey))",message="timestampHeader and timestampKey are exclusive"
// +kubebuilder:validation:XValidation:rule="!has(self.timestampKey) || has(self.signatureKey)",message="timestampKey needs signatureKey: both are keys of the same k=v list"
// +kubebuilder:validation:XValidation:rule="(has(self.timestampHeader) || has(self.timestampKey)) == (has(self.signedContent) && self.signedContent.contains('{timestamp}'))",message="a timestamp (timestampHeader or timestampKey) is set exactly when signedContent contains {timestamp}"
type HMACAuthentication struct {
	// Header carries the signature, e.g. X-Hub-Signature-256 or Stripe-Signature.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +required
	Header string `json:"header"`

	// Algorithm is the hash: sha1, sha256 or sha512.
	// +kubebuilder:default=sha256
	// +optional
	Algorithm HMACAlgorithm `json:"algorithm,omitempty"`

	// Encoding of the signature: hex (either case) or base64.
	// +kubebuilder:default=hex
	// +optional
	Encoding SignatureEncoding `json:"encoding,omitempty"`

	// Prefix precedes the signature in the header value, e.g. "sha256=".
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Prefix string `json:"prefix,omitempty"`

	// SignatureKey, when set, reads the header as a comma-separated k=v list
	// (Stripe's "t=...,v1=...") and the signatures under this key; several are
	// accepted.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	SignatureKey string `json:"signatureKey,omitempty"`

	// TimestampHeader carries the signed timestamp, in Unix seconds.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	TimestampHeader string `json:"timestampHeader,omitempty"`

	// TimestampKey is the key of the signed timestamp (Unix seconds) in the
	// signature header's k=v list, e.g. "t".
	// +kubebuilder:validation:MaxLength=64
	// +optional
	TimestampKey string `json:"timestampKey,omitempty"`

	// SignedContent is what is signed: "{body}" (the default) or a template of
	// {timestamp}, {body} and literal text, e.g. "{timestamp}.{body}". The
	// timestamp is then checked against the source's timestampTolerance.
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self.contains('{body}')",message="signedContent must contain {body}"
	// +optional
	SignedContent string `json:"signedContent,omitempty"`
}

// GenericEvents finds the events of a request and says what each one is.
type GenericEvents struct {
	// Items evaluates to the list of events in the request. Unset, the body is
	// one event.
	// +optional
	Items Expression `json:"items,omitempty"`

	// ID evaluates to the event's id (a string or an integer), stable across the
	// sender's retries: it de-duplicates.
	// +required
	ID Expression `json:"id"`

	// Type evaluates to the event's type, a string.
	// +optional
	Type Expression `json:"type,omitempty"`

	// Time evaluates to when the event happened: a timestamp, Unix seconds, or
	// an RFC 3339 string. It orders a customer's events; unset, the time the
	// request was received.
	// +optional
	Time Expression `json:"time,omitempty"`

	// Deleted evaluates to true when the event deletes the customer.
	// +optional
	Deleted Expression `json:"deleted,omitempty"`

	// Ignore evaluates to true for an event that is not a customer event.
	// +optional
	Ignore Expression `json:"ignore,omitempty"`
}

// GenericMapping gives an expression per Customer field. String fields take a
// string (null or "" leaves the field unset); contacts and addresses a list of
// maps with the Customer API's field names; attributes a map of strings; times
// a timestamp, Unix seconds or an RFC 3339 string.
type GenericMapping struct {
	// ExternalID is the customer's identifier at the sender.
	// +required
	ExternalID Expression `json:"externalID"`
	// +optional
	DisplayName Expression `json:"displayName,omitempty"`
	// +optional
	CompanyName Expression `json:"companyName,omitempty"`
	// +optional
	Email Expression `json:"email,omitempty"`
	// +optional
	Phone Expression `json:"phone,omitempty"`
	// +optional
	TaxID Expression `json:"taxID,omitempty"`
	// TaxExempt evaluates to a bool.
	// +optional
	TaxExempt Expression `json:"taxExempt,omitempty"`
	// Approved evaluates to a bool.
	// +optional
	Approved Expression `json:"approved,omitempty"`
	// +optional
	Language Expression `json:"language,omitempty"`
	// Lifecycle evaluates to Active, Inactive or Archived.
	// +optional
	Lifecycle Expression `json:"lifecycle,omitempty"`
	// +optional
	Contacts Expression `json:"contacts,omitempty"`
	// +optional
	Addresses Expression `json:"addresses,omitempty"`
	// +optional
	ProviderCreatedAt Expression `json:"providerCreatedAt,omitempty"`
	// +optional
	ProviderUpdatedAt Expression `json:"providerUpdatedAt,omitempty"`
	// +optional
	Attributes Expression `json:"attributes,omitempty"`
}
