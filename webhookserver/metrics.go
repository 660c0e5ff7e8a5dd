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
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Event outcomes, the "outcome" label of customer_operator_webhook_events_total.
const (
	OutcomeApplied   = "applied"
	OutcomeDuplicate = "duplicate"
	OutcomeStale     = "stale"
	OutcomeIgnored   = "ignored"
	OutcomeRejected  = "rejected"
)

var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "customer_operator_webhook_requests_total",
		Help: "Webhook requests answered, by provider, source (namespace/name; empty when there is no such source) and HTTP status code.",
	}, []string{"provider", "source", "code"})

	rejectionsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "customer_operator_webhook_rejections_total",
		Help: "Webhook requests rejected, by provider, source and reason.",
	}, []string{"provider", "source", "reason"})

	eventsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "customer_operator_webhook_events_total",
		Help: "Customer events received, by provider, source and outcome (applied, duplicate, stale, ignored, rejected).",
	}, []string{"provider", "source", "outcome"})

	requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "customer_operator_webhook_request_duration_seconds",
		Help:    "Time to handle a webhook request, from the first byte read to the answer, by provider and source.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"provider", "source"})

	bufferedBytes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "customer_operator_webhook_buffered_body_bytes",
		Help: "Request body bytes buffered at this moment, across the server (bounded by --webhook-max-buffered-bytes).",
	})

	trackedAddresses = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "customer_operator_webhook_tracked_client_addresses",
		Help: "Client addresses with recent failed authentications or unknown paths the server keeps count of (bounded by 65536).",
	})

	trackedSourceClients = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "customer_operator_webhook_tracked_source_clients",
		Help: "Pairs of client address and source with recent failed authentications the server keeps count of (bounded by 65536).",
	})
)

// forgetSource drops the series of a source that no longer exists, so the
// metrics do not grow with every source ever created.
func forgetSource(source string) {
	l := prometheus.Labels{"source": source}
	requestsTotal.DeletePartialMatch(l)
	rejectionsTotal.DeletePartialMatch(l)
	eventsTotal.DeletePartialMatch(l)
	requestDuration.DeletePartialMatch(l)
}

func init() {
	// The manager serves controller-runtime's registry on its metrics endpoint.
	metrics.Registry.MustRegister(requestsTotal, rejectionsTotal, eventsTotal, requestDuration, bufferedBytes, trackedAddresses, trackedSourceClients)
}
