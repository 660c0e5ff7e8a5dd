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

package webhookserver

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
)

// TestCheckEventBounds pushes against each bound of an event's identity and
// time: the last value in is kept, the first value out is refused with its
// reason and the sender's field (or the neutral name when the provider composes
// the value).
func TestCheckEventBounds(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	src := &crmv1alpha1.CustomerSource{}
	hourly := &crmv1alpha1.CustomerSource{Spec: crmv1alpha1.CustomerSourceSpec{TimestampTolerance: &metav1.Duration{Duration: time.Hour}}}
	fields := providers.EventFields{ID: "events[1].id", Type: "events[1].resource_type", Time: "events[1].created_at"}
	event := func(id, typ string, at time.Time, f providers.EventFields) *providers.Event {
		return &providers.Event{ID: id, Type: typ, Time: at, Fields: f}
	}
	for _, tc := range []struct {
		name   string
		src    *crmv1alpha1.CustomerSource
		ev     *providers.Event
		reason string
		field  string
	}{
		{"ordinary", src, event("evt_1", "customer.updated", now, fields), "", ""},
		{"id at the limit", src, event(strings.Repeat("i", MaxEventIDBytes), "t", now, fields), "", ""},
		{"id over the limit", src, event(strings.Repeat("i", MaxEventIDBytes+1), "t", now, fields), ReasonEventIDTooLong, "events[1].id"},
		{"composed id over the limit", src, event(strings.Repeat("i", MaxEventIDBytes+1), "t", now, providers.EventFields{}), ReasonEventIDTooLong, "id"},
		{"type at the limit", src, event("e", strings.Repeat("t", MaxEventTypeBytes), now, fields), "", ""},
		{"type over the limit", src, event("e", strings.Repeat("t", MaxEventTypeBytes+1), now, fields), ReasonEventTypeTooLong, "events[1].resource_type"},
		{"time at the default tolerance", src, event("e", "t", now.Add(DefaultTimestampTolerance), fields), "", ""},
		{"time past the default tolerance", src, event("e", "t", now.Add(DefaultTimestampTolerance+time.Second), fields), ReasonEventInFuture, "events[1].created_at"},
		{"time within the source's tolerance", hourly, event("e", "t", now.Add(59*time.Minute), fields), "", ""},
		{"year 9999", hourly, event("e", "t", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), providers.EventFields{}), ReasonEventInFuture, "time"},
		{"long past", src, event("e", "t", now.AddDate(-30, 0, 0), fields), "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := checkEvent(tc.src, tc.ev, now)
			switch {
			case tc.reason == "" && r != nil:
				t.Fatalf("checkEvent refused it: %v", r)
			case tc.reason == "":
			case r == nil:
				t.Fatalf("checkEvent accepted it, want %s", tc.reason)
			case r.Reason != tc.reason || r.Field != tc.field || r.Message == "":
				t.Fatalf("checkEvent = {%s %q %q}, want {%s %q} and a message", r.Reason, r.Field, r.Message, tc.reason, tc.field)
			}
		})
	}
}

// TestShortEventID keeps answers and logs short whatever the id, and valid UTF-8.
func TestShortEventID(t *testing.T) {
	if got := shortEventID("evt_1"); got != "evt_1" {
		t.Errorf("shortEventID(evt_1) = %q", got)
	}
	long := strings.Repeat("é", 10_000)
	got := shortEventID(long)
	if len(got) > 70 || !strings.HasSuffix(got, "...") || !strings.HasPrefix(long, strings.TrimSuffix(got, "...")) {
		t.Errorf("shortEventID of %d bytes = %q", len(long), got)
	}
}
