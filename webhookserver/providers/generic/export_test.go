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

package generic

// ExpressionByExpression is p with every event run expression by
// expression, as an event its combined program fails on is.
func ExpressionByExpression(p *Provider) *Provider {
	c := *p.c
	c.all, c.untracked = nil, nil
	return &Provider{c: &c}
}

// RunsAsOneProgram reports whether the event a body is runs as p's combined
// program, without falling back to its expressions one by one.
func RunsAsOneProgram(p *Provider, body []byte) bool {
	v, err := decodeBody(body)
	if err != nil {
		return false
	}
	run := &eventRun{vars: &vars{body: v, event: v}, limit: p.c.l.RuntimeCost}
	return run.runAll(p.c.eventProgram(int64(len(body)), 0))
}

// CostBound is the cost p's combined program is proven never to exceed, and
// whether it runs without the runtime cost tracker for that reason.
func CostBound(p *Provider) (bound uint64, untracked bool) {
	return p.c.bound, p.c.untracked != nil
}

// RunsUntracked reports whether p runs a request of that many body and
// header bytes (as costBound counts them) without the runtime cost tracker.
func RunsUntracked(p *Provider, bodyBytes, headerBytes int64) bool {
	return p.c.untracked != nil && p.c.eventProgram(bodyBytes, headerBytes) == p.c.untracked
}

// TrackedCost is what the runtime cost tracker charges for p's combined
// program on the event a body is.
func TrackedCost(p *Provider, body []byte) (uint64, error) {
	v, perr := decodeBody(body)
	if perr != nil {
		return 0, perr
	}
	_, det, err := p.c.all.Eval(&vars{body: v, event: v})
	if det == nil || det.ActualCost() == nil {
		return 0, err
	}
	return *det.ActualCost(), err
}
