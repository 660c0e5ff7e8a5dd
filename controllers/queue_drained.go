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
	"context"
	"fmt"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// CustomerControllerName names the Customer controller, and so its work queue
// in controller-runtime's metrics (workqueue_depth{controller="customer"}).
const CustomerControllerName = "customer"

// QueueDrained returns once the named controller's work queue has held nothing
// at two looks a poll apart, or when ctx ends. It reads the queue's depth from
// controller-runtime's own gauge, so it sees what a scrape of /metrics sees.
func QueueDrained(ctx context.Context, controller string, poll time.Duration) error {
	t := time.NewTicker(poll)
	defer t.Stop()
	empty := 0
	for empty < 2 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		depth, err := QueueDepth(controller)
		if err != nil {
			return err
		}
		if depth > 0 {
			empty = 0
		} else {
			empty++
		}
	}
	return nil
}

// QueueDepth is the named controller's work queue depth, summed over its
// priorities, from controller-runtime's metrics registry.
func QueueDepth(controller string) (float64, error) {
	values, err := registryGauges("workqueue_depth", "controller", controller)
	var depth float64
	for _, v := range values {
		depth += v
	}
	return depth, err
}

// registryGauges returns the values of a gauge's series in controller-runtime's
// metrics registry whose label has the given value, as /metrics serves them.
// Reading the registry, not the vector, creates no series that is not there.
func registryGauges(metric, label, value string) ([]float64, error) {
	families, err := metrics.Registry.Gather()
	if err != nil {
		return nil, fmt.Errorf("gathering the metrics for %s: %w", metric, err)
	}
	var values []float64
	for _, f := range families {
		if f.GetName() != metric {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					values = append(values, m.GetGauge().GetValue())
				}
			}
		}
	}
	return values, nil
}
