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

import "time"

// CloudEventsAttributes are the context attributes of an event's CloudEvent, as
// its structured form carries them. Broker senders repeat them as message
// headers, so that consumers can route and filter without parsing the value.
type CloudEventsAttributes struct {
	SpecVersion string
	ID          string
	Source      string
	Type        string
	Subject     string
	Time        string
}

// CloudEventsAttributesOf returns the attributes Encode puts into ev's
// CloudEvent. ev.Customer must not be nil.
func CloudEventsAttributesOf(ev Event) CloudEventsAttributes {
	return CloudEventsAttributes{
		SpecVersion: "1.0",
		ID:          ev.ID,
		Source:      cloudEventsSource(ev.Customer.Namespace),
		Type:        CloudEventsTypePrefix + ev.Type,
		Subject:     ev.Customer.Name,
		Time:        ev.Time.UTC().Format(time.RFC3339Nano),
	}
}
