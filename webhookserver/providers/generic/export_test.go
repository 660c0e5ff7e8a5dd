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
	c.all = nil
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
	return run.runAll(p.c.all)
}
