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
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	pendingCustomers = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "customer_operator_sink_pending_customers",
		Help: "Customers a CustomerSink selects that do not have their current generation there yet.",
	}, []string{"sink"})

	sourceReady = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "customer_operator_source_ready",
		Help: "1 when a CustomerSource (namespace/name) is Ready to accept its provider's webhooks, else 0.",
	}, []string{"source"})
)

func init() {
	metrics.Registry.MustRegister(pendingCustomers, sourceReady)
}
