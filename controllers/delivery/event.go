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

package delivery

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
)

// Event types, the same in both formats (CloudEvents prefixes them, see
// CloudEventsTypePrefix).
const (
	TypeUpserted = "customer.upserted"
	TypeDeleted  = "customer.deleted"
)

// CloudEventsTypePrefix makes the CloudEvents type reverse-DNS, as the CloudEvents
// spec recommends, so that it cannot collide with other producers' types at a
// shared broker.
const CloudEventsTypePrefix = "io.customer-operator.crm."

// Event is one change of one Customer, as sent to every sink that selects it.
type Event struct {
	// Type is TypeUpserted or TypeDeleted.
	Type string
	// ID is "{uid}.{generation}": the same for every retry and every sink, so
	// receivers can de-duplicate; a new generation is a new event. A delete gets
	// its own ID because the API server bumps the generation when it marks an
	// object with finalizers for deletion.
	ID string
	// Time is when the change was observed.
	Time time.Time
	// Customer is read when the event is delivered and must not change meanwhile.
	Customer *crmv1alpha1.Customer
}

// NewEvent describes the current generation of c, or its deletion.
func NewEvent(c *crmv1alpha1.Customer, deleted bool, now time.Time) Event {
	typ := TypeUpserted
	if deleted {
		typ = TypeDeleted
	}
	return Event{
		Type:     typ,
		ID:       string(c.UID) + "." + strconv.FormatInt(c.Generation, 10),
		Time:     now.UTC(),
		Customer: c,
	}
}

// customerData is the Customer as sinks see it. It is a fixed shape, not the
// object itself, so that internals (managedFields, resourceVersion, annotations
// the operator keeps for itself, status) never leak to external systems and the
// contract does not change when the object gains fields.
type customerData struct {
	APIVersion string                    `json:"apiVersion"`
	Kind       string                    `json:"kind"`
	Metadata   customerMeta              `json:"metadata"`
	Spec       *crmv1alpha1.CustomerSpec `json:"spec"`
}

type customerMeta struct {
	Name       string            `json:"name"`
	Namespace  string            `json:"namespace"`
	UID        types.UID         `json:"uid"`
	Generation int64             `json:"generation"`
	Labels     map[string]string `json:"labels,omitempty"`
}

func newCustomerData(c *crmv1alpha1.Customer, fields []crmv1alpha1.CustomerField) customerData {
	// apiVersion and kind are set here because typed clients return objects with
	// an empty TypeMeta.
	spec := &c.Spec
	if fields != nil {
		spec = projectSpec(spec, fields)
	}
	return customerData{
		APIVersion: crmv1alpha1.GroupVersion.String(),
		Kind:       "Customer",
		Metadata: customerMeta{
			Name:       c.Name,
			Namespace:  c.Namespace,
			UID:        c.UID,
			Generation: c.Generation,
			Labels:     c.Labels,
		},
		Spec: spec,
	}
}

// IdentityFields are sent to every sink whatever its spec.fields: they say which
// customer a delivery is about, and whether it is still alive (a tombstone's
// lifecycle is Deleted), without which a receiver cannot apply any change.
var IdentityFields = []crmv1alpha1.CustomerField{"provider", "externalID", "lifecycle"}

// specFieldIndex maps the JSON name of each CustomerSpec field to its index, so
// that a field added to the type can be selected without a change here.
var specFieldIndex = func() map[crmv1alpha1.CustomerField]int {
	t := reflect.TypeFor[crmv1alpha1.CustomerSpec]()
	m := make(map[crmv1alpha1.CustomerField]int, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			m[crmv1alpha1.CustomerField(name)] = i
		}
	}
	return m
}()

// projectSpec returns a copy of spec holding only the named fields and the
// IdentityFields. Every CustomerSpec field is omitempty, so the ones left out
// do not appear in the JSON at all (not even as null). Unknown names are
// ignored here; TargetFromSink refuses them.
func projectSpec(spec *crmv1alpha1.CustomerSpec, fields []crmv1alpha1.CustomerField) *crmv1alpha1.CustomerSpec {
	out := &crmv1alpha1.CustomerSpec{}
	src, dst := reflect.ValueOf(spec).Elem(), reflect.ValueOf(out).Elem()
	for _, list := range [][]crmv1alpha1.CustomerField{IdentityFields, fields} {
		for _, f := range list {
			if i, ok := specFieldIndex[f]; ok {
				// A shallow copy: the event is only encoded, never changed.
				dst.Field(i).Set(src.Field(i))
			}
		}
	}
	return out
}

// ProjectionHash digests what a sink with these fields (nil: all) receives of a
// Customer's upsert, less what changes with every generation (generation, uid,
// times): its labels and its projected spec. Two generations with the same hash
// look the same to that sink, so the engine may skip delivering the newer one and
// count the sink as in sync with it. Deletes must never be skipped.
func ProjectionHash(c *crmv1alpha1.Customer, fields []crmv1alpha1.CustomerField) string {
	spec := &c.Spec
	if fields != nil {
		spec = projectSpec(spec, fields)
	}
	// json.Marshal sorts map keys and CustomerSpec has a fixed field order, so
	// equal content always encodes, and hashes, the same.
	b, err := json.Marshal(struct {
		Labels map[string]string         `json:"labels,omitempty"`
		Spec   *crmv1alpha1.CustomerSpec `json:"spec"`
	}{c.Labels, spec})
	if err != nil {
		// A CustomerSpec always encodes; should that ever change, no two
		// generations compare equal, and nothing is skipped.
		return "unhashable:" + string(c.UID) + "." + strconv.FormatInt(c.Generation, 10)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

type standardWebhooksBody struct {
	Type      string       `json:"type"`
	Timestamp string       `json:"timestamp"`
	Data      customerData `json:"data"`
}

// cloudEvent is a CloudEvents 1.0 event in structured JSON mode.
type cloudEvent struct {
	SpecVersion     string       `json:"specversion"`
	ID              string       `json:"id"`
	Source          string       `json:"source"`
	Type            string       `json:"type"`
	Subject         string       `json:"subject"`
	Time            string       `json:"time"`
	DataContentType string       `json:"datacontenttype"`
	Data            customerData `json:"data"`
}

// Content types of the two formats.
const (
	ContentTypeJSON        = "application/json"
	ContentTypeCloudEvents = "application/cloudevents+json"
)

// cloudEventsSource is the event's source: the API path of the namespace's
// Customer collection. CloudEvents requires (source, id) to be unique; the id is
// the uid, which is unique on its own, and a collection path (rather than the
// object's) keeps all events of a tenant under one source, with the customer's
// name in subject where CloudEvents filters expect it.
func cloudEventsSource(namespace string) string {
	return "/apis/" + crmv1alpha1.GroupVersion.String() + "/namespaces/" + namespace + "/customers"
}

// Encode renders ev as the HTTP sink of that format sends it: the body and its
// content type. Sinks of other types send the same bytes, so that a consumer
// reads one shape whatever carried it.
func Encode(format crmv1alpha1.SinkFormat, fields []crmv1alpha1.CustomerField, ev Event) (body []byte, contentType string, err error) {
	return encode(format, fields, ev)
}

// encode renders ev in format; an empty format is the CRD default, standard-webhooks.
// fields, when not nil, projects the Customer's spec (see projectSpec).
func encode(format crmv1alpha1.SinkFormat, fields []crmv1alpha1.CustomerField, ev Event) (body []byte, contentType string, err error) {
	if ev.Customer == nil {
		return nil, "", errors.New("event has no Customer")
	}
	if ev.ID == "" || ev.Type == "" {
		return nil, "", errors.New("event has no ID or type")
	}
	ts := ev.Time.UTC().Format(time.RFC3339Nano)
	var v any
	switch format {
	case crmv1alpha1.FormatStandardWebhooks, "":
		v, contentType = standardWebhooksBody{Type: ev.Type, Timestamp: ts, Data: newCustomerData(ev.Customer, fields)}, ContentTypeJSON
	case crmv1alpha1.FormatCloudEvents:
		a := CloudEventsAttributesOf(ev)
		v, contentType = cloudEvent{
			SpecVersion:     a.SpecVersion,
			ID:              a.ID,
			Source:          a.Source,
			Type:            a.Type,
			Subject:         a.Subject,
			Time:            a.Time,
			DataContentType: ContentTypeJSON,
			Data:            newCustomerData(ev.Customer, fields),
		}, ContentTypeCloudEvents
	default:
		return nil, "", fmt.Errorf("unknown sink format %q", format)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Names and emails routinely contain & < >; escaping them buys nothing outside HTML.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, "", err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), contentType, nil
}
