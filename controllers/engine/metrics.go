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

package engine

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	deliveriesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "customer_operator_sink_deliveries_total",
		Help: "Deliveries to CustomerSinks, by sink (namespace/name) and outcome (success, failure, gone).",
	}, []string{"sink", "outcome"})

	deliveryDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "customer_operator_sink_delivery_duration_seconds",
		Help:    "Time of one delivery to a CustomerSink, by sink, whatever its outcome.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"sink"})

	sinkPaused = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "customer_operator_sink_paused",
		Help: "1 while deliveries to a CustomerSink are paused (Throttled or BackingOff), else 0.",
	}, []string{"sink"})
)

// forgetSinkSeries drops the series of a sink that is gone, so the metrics do
// not grow with every sink ever created.
func forgetSinkSeries(sink string) {
	l := prometheus.Labels{"sink": sink}
	deliveriesTotal.DeletePartialMatch(l)
	deliveryDuration.DeletePartialMatch(l)
	sinkPaused.DeletePartialMatch(l)
}

func init() {
	metrics.Registry.MustRegister(deliveriesTotal, deliveryDuration, sinkPaused)
}
