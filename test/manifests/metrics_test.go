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

package manifests

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	// The operator's packages register their metrics in controller-runtime's
	// registry, which the manager serves on /metrics.
	_ "github.com/customer-operator/customer-operator/controllers"
	_ "github.com/customer-operator/customer-operator/webhookserver"
)

// Metric names in PromQL: the operator's own and controller-runtime's.
var metricName = regexp.MustCompile(`\b(?:customer_operator|controller_runtime|workqueue|rest_client)_[a-z0-9_]+\b`)

// TestObservabilityMetricsExist checks that every metric the alerts
// (config/prometheus/alerts.yaml) and the dashboard (config/prometheus/dashboards)
// query is one the operator registers.
func TestObservabilityMetricsExist(t *testing.T) {
	used := map[string][]string{} // metric -> where
	for _, expr := range alertExprs(t) {
		for _, m := range metricName.FindAllString(expr.text, -1) {
			used[m] = append(used[m], expr.where)
		}
	}
	for _, expr := range dashboardExprs(t) {
		for _, m := range metricName.FindAllString(expr.text, -1) {
			used[m] = append(used[m], expr.where)
		}
	}
	if len(used) < 5 {
		t.Fatalf("found only %d metric names in the alerts and the dashboard: %v", len(used), used)
	}

	names := make([]string, 0, len(used))
	for m := range used {
		names = append(names, m)
	}
	sort.Strings(names)
	for _, m := range names {
		registered := isRegistered(t, m)
		if !registered {
			// Histograms are queried by their series: _bucket, _sum, _count.
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(m, suffix); ok && isRegistered(t, base) {
					registered = true
				}
			}
		}
		if !registered {
			t.Errorf("%s (used by %s) is not a metric the operator registers", m, strings.Join(used[m], ", "))
		}
	}
}

// isRegistered asks controller-runtime's registry whether a metric of that name is
// registered: registering a probe under the same name with another help text fails
// exactly when one is.
func isRegistered(t *testing.T, name string) bool {
	t.Helper()
	probe := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "probe from test/manifests"})
	err := metrics.Registry.Register(probe)
	if err == nil {
		metrics.Registry.Unregister(probe)
		return false
	}
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) || strings.Contains(err.Error(), "same fully-qualified name") {
		return true
	}
	t.Fatalf("probing the registry for %s: %v", name, err)
	return false
}

type promql struct{ where, text string }

func alertExprs(t *testing.T) []promql {
	t.Helper()
	objs := readObjects(t, "config/prometheus/alerts.yaml")
	if len(objs) != 1 || objs[0].GetKind() != "PrometheusRule" {
		t.Fatalf("config/prometheus/alerts.yaml should hold one PrometheusRule")
	}
	groups, _, err := unstructured.NestedSlice(objs[0].Object, "spec", "groups")
	if err != nil || len(groups) == 0 {
		t.Fatalf("no rule groups in config/prometheus/alerts.yaml: %v", err)
	}
	var out []promql
	for _, g := range groups {
		rules, _, _ := unstructured.NestedSlice(g.(map[string]any), "rules")
		for _, r := range rules {
			rule := r.(map[string]any)
			alert, _ := rule["alert"].(string)
			expr, _ := rule["expr"].(string)
			if alert == "" || expr == "" {
				t.Errorf("a rule without alert or expr in config/prometheus/alerts.yaml: %v", rule)
				continue
			}
			out = append(out, promql{where: "alert " + alert, text: expr})
		}
	}
	return out
}

func dashboardExprs(t *testing.T) []promql {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "config/prometheus/dashboards/*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in config/prometheus/dashboards: %v", err)
	}
	var out []promql
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(data, &d); err != nil {
			t.Fatalf("decoding %s: %v", f, err)
		}
		for _, p := range d.Panels {
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", filepath.Base(f), p.Title)
			}
			for _, tg := range p.Targets {
				out = append(out, promql{where: "panel " + p.Title, text: tg.Expr})
			}
		}
	}
	return out
}

// TestDashboardPanels checks the dashboard has the panels an operator reads first:
// ingest, rejections, delivery latency, pending Customers and sinks in backoff.
func TestDashboardPanels(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root, "config/prometheus/dashboards/customer-operator.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title string `json:"title"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	titles := map[string]bool{}
	for _, p := range d.Panels {
		titles[p.Title] = true
	}
	for _, want := range []string{"Ingest by provider and outcome", "Webhook rejections by reason", "Delivery latency p50 / p99", "Pending Customers per sink", "Sinks in backoff"} {
		if !titles[want] {
			t.Errorf("the dashboard has no panel %q", want)
		}
	}
}

// TestChartCarriesAlertsAndDashboard checks the chart renders the same alerts and
// dashboard as config/prometheus (`make chart` copies them).
func TestChartCarriesAlertsAndDashboard(t *testing.T) {
	config := readObjects(t, "config/prometheus/alerts.yaml")[0]
	rendered := readObjects(t, "bin/chart/all.yaml")
	rules := find(rendered, "PrometheusRule", "-alerts")
	if len(rules) != 1 {
		t.Fatalf("%d PrometheusRules in the chart, want 1", len(rules))
	}
	if !reflect.DeepEqual(config.Object["spec"], rules[0].Object["spec"]) {
		t.Error("the chart's PrometheusRule differs from config/prometheus/alerts.yaml: run make chart")
	}
	cms := find(rendered, "ConfigMap", "-dashboard")
	if len(cms) != 1 {
		t.Fatalf("%d dashboard ConfigMaps in the chart, want 1", len(cms))
	}
	got, _, _ := unstructured.NestedString(cms[0].Object, "data", "customer-operator.json")
	want, err := os.ReadFile(filepath.Join(root, "config/prometheus/dashboards/customer-operator.json"))
	if err != nil {
		t.Fatal(err)
	}
	var gotJSON, wantJSON any
	if err := json.Unmarshal([]byte(got), &gotJSON); err != nil {
		t.Fatalf("the chart's dashboard is not JSON: %v", err)
	}
	if err := json.Unmarshal(want, &wantJSON); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotJSON, wantJSON) {
		t.Error("the chart's dashboard differs from config/prometheus/dashboards/customer-operator.json: run make chart")
	}
}
