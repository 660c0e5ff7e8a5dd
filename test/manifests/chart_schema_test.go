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
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// helm is the pinned helm `make helm` builds into bin/ (HELM overrides it).
func helm(t *testing.T) string {
	t.Helper()
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	found, _ := filepath.Glob(filepath.Join(root, "bin", "helm-v*"))
	if len(found) == 0 {
		t.Fatal("no helm in bin/: run `make helm`")
	}
	return found[len(found)-1]
}

// TestChartSchemaRefusesWrongValues lints the chart as `helm lint --strict` does with
// values of the wrong type or shape: values.schema.json must refuse each, naming it.
func TestChartSchemaRefusesWrongValues(t *testing.T) {
	h := helm(t)
	for _, tc := range []struct{ set, names string }{
		{"webhookServer.replicas=two", "replicas"},
		{"controllerManager.extraArgs=--zap-log-level=debug", "extraArgs"},
		{"controllerManager.extraEnv[0].value=x", "name"},
		{"webhookServer.trustedProxies={10.244.0.0}", "trustedProxies"},
		{"sinkAllowCIDRs={everything}", "sinkAllowCIDRs"},
		{"podSecurityContext=restricted", "podSecurityContext"},
		{"serviceMonitor.interval=often", "interval"},
		{"webhookServer.priorityClasName=high", "priorityClasName"},
	} {
		out, err := exec.Command(h, "lint", "--strict", filepath.Join(root, "dist/chart"), "--set", tc.set).CombinedOutput()
		if err == nil {
			t.Errorf("helm lint --strict --set %s passed, want it refused:\n%s", tc.set, out)
			continue
		}
		if !strings.Contains(string(out), "values don't meet the specifications of the schema") || !strings.Contains(string(out), tc.names) {
			t.Errorf("helm lint --strict --set %s: want a schema error naming %s, got:\n%s", tc.set, tc.names, out)
		}
	}
	if out, err := exec.Command(h, "lint", "--strict", filepath.Join(root, "dist/chart"), "-f", filepath.Join(root, "hack/chart-values-all.yaml")).CombinedOutput(); err != nil {
		t.Errorf("helm lint --strict with every option refused: %v\n%s", err, out)
	}
}
