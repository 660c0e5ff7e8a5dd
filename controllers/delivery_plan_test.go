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
	"time"

	"github.com/customer-operator/customer-operator/controllers/engine"
)

func TestPlanSink(t *testing.T) {
	now := time.Date(2026, 11, 24, 7, 0, 0, 0, time.UTC)
	pause := &engine.Pause{Reason: engine.ReasonThrottled, Until: now.Add(time.Minute)}
	tests := map[string]struct {
		facts sinkFacts
		want  sinkDecision
	}{
		"in sync: nothing to do": {
			facts: sinkFacts{InSync: true, Ready: true},
			want:  sinkDecision{},
		},
		"in sync while paused: nothing to do": {
			facts: sinkFacts{InSync: true, Ready: true, Report: engine.Report{Paused: pause}},
			want:  sinkDecision{},
		},
		"not ready: reported now, nothing delivered": {
			facts: sinkFacts{Ready: false},
			want:  sinkDecision{Stale: true},
		},
		"not ready with a delivery pending: reported now": {
			facts: sinkFacts{Ready: false, Report: engine.Report{Pending: true, Since: now}},
			want:  sinkDecision{Stale: true},
		},
		"idle and healthy: delivered, and the write waits statusHold": {
			facts: sinkFacts{Ready: true},
			want:  sinkDecision{Deliver: true, Hold: statusHold},
		},
		"idle and paused: delivered, and reported now": {
			facts: sinkFacts{Ready: true, Report: engine.Report{Paused: pause}},
			want:  sinkDecision{Deliver: true, Stale: true},
		},
		"idle after a failure: delivered, and the write waits": {
			facts: sinkFacts{Ready: true, Failing: true},
			want:  sinkDecision{Deliver: true, Hold: statusHold},
		},
		"pending for 300ms: the write waits the rest of statusHold": {
			facts: sinkFacts{Ready: true, Report: engine.Report{Pending: true, Since: now.Add(-300 * time.Millisecond)}},
			want:  sinkDecision{Hold: 700 * time.Millisecond},
		},
		"pending for statusHold: reported now": {
			facts: sinkFacts{Ready: true, Report: engine.Report{Pending: true, Since: now.Add(-statusHold)}},
			want:  sinkDecision{Stale: true},
		},
		"pending while paused: reported now": {
			facts: sinkFacts{Ready: true, Report: engine.Report{Pending: true, Since: now, Paused: pause}},
			want:  sinkDecision{Stale: true},
		},
		"pending after a failure: reported now": {
			facts: sinkFacts{Ready: true, Failing: true, Report: engine.Report{Pending: true, Since: now}},
			want:  sinkDecision{Stale: true},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := planSink(tt.facts, now); got != tt.want {
				t.Errorf("planSink(%+v) = %+v, want %+v", tt.facts, got, tt.want)
			}
		})
	}
}

func TestStatusPlanHold(t *testing.T) {
	tests := map[string]struct {
		decisions []sinkDecision
		hold      bool
		wait      time.Duration
	}{
		"no sinks: written now": {},
		"all in sync: written now": {
			decisions: []sinkDecision{{}, {}},
		},
		"every sink about to be in sync: held for the longest": {
			decisions: []sinkDecision{{Hold: 200 * time.Millisecond}, {}, {Deliver: true, Hold: statusHold}},
			hold:      true, wait: statusHold,
		},
		"one stale sink: written now, looked at again when the others end": {
			decisions: []sinkDecision{{Hold: 400 * time.Millisecond}, {Stale: true}},
			wait:      400 * time.Millisecond,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var p statusPlan
			for _, d := range tt.decisions {
				p.add(d)
			}
			if p.hold() != tt.hold || p.wait != tt.wait {
				t.Errorf("hold, wait = %v, %v; want %v, %v", p.hold(), p.wait, tt.hold, tt.wait)
			}
		})
	}
}
