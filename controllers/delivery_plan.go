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
	"time"

	"github.com/customer-operator/customer-operator/controllers/engine"
)

// statusHold is how long a reconcile that has just queued deliveries to healthy
// sinks holds its status write. Most deliveries end well within it, and the
// Customer's status is then written once, Synced, instead of once Delivering
// and once Synced; a sink that is failing or paused is never waited for.
const statusHold = time.Second

// sinkFacts is what planning knows of one sink a Customer (or its delete) goes to.
type sinkFacts struct {
	// InSync is true when the sink has the generations the Customer needs.
	InSync bool
	// Ready is true when the sink can receive.
	Ready bool
	// Report is what the engine knows of the delivery.
	Report engine.Report
	// Failing is true when the last delivery to the sink failed.
	Failing bool
}

// sinkDecision is what to do for one sink.
type sinkDecision struct {
	// Deliver asks the engine for a delivery.
	Deliver bool
	// Hold, when positive, is how long until the sink should be in sync: the
	// status write may wait for it.
	Hold time.Duration
	// Stale is true when the sink is not in sync and will not be soon: the
	// status must say so now.
	Stale bool
}

// planSink decides, without calling anything, what one sink needs at now. A
// sink in sync needs nothing. One that cannot receive, or whose delivery is
// paused, failing or older than statusHold, makes the status stale. One whose
// delivery is about to end may be waited for, and one with no delivery gets one.
func planSink(f sinkFacts, now time.Time) sinkDecision {
	switch {
	case f.InSync:
		return sinkDecision{}
	case !f.Ready:
		return sinkDecision{Stale: true}
	case f.Report.Pending:
		if left := statusHold - now.Sub(f.Report.Since); left > 0 && f.Report.Paused == nil && !f.Failing {
			return sinkDecision{Hold: left}
		}
		return sinkDecision{Stale: true}
	case f.Report.Paused != nil:
		return sinkDecision{Deliver: true, Stale: true}
	default:
		return sinkDecision{Deliver: true, Hold: statusHold}
	}
}

// statusPlan gathers the sinks' decisions: whether to hold the status write,
// and for how long.
type statusPlan struct {
	fresh, stale bool
	wait         time.Duration
}

func (p *statusPlan) add(d sinkDecision) {
	if d.Stale {
		p.stale = true
	}
	if d.Hold > 0 {
		p.fresh = true
		p.wait = max(p.wait, d.Hold)
	}
}

// hold says whether the status write waits: only while every sink not in sync
// is about to be. The deliveries' outcomes enqueue the Customer, and statusHold
// bounds the wait.
func (p statusPlan) hold() bool { return p.fresh && !p.stale }
