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

package argocd

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite dist/argocd/argocd-cm.yaml from the health checks")

// healthTests is Argo CD's health_test.yaml.
type healthTests struct {
	Tests []struct {
		HealthStatus Health `json:"healthStatus"`
		InputPath    string `json:"inputPath"`
	} `json:"tests"`
}

// TestHealthChecks runs each kind's health check over its health_test.yaml, as
// Argo CD's own test of resource_customizations does.
func TestHealthChecks(t *testing.T) {
	for _, kind := range Kinds {
		t.Run(kind, func(t *testing.T) {
			script, err := Script(kind)
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(Dir(), Group, kind)
			b, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var cases healthTests
			if err := yaml.Unmarshal(b, &cases); err != nil {
				t.Fatalf("health_test.yaml: %v", err)
			}
			statuses := map[string]bool{}
			for _, c := range cases.Tests {
				obj := map[string]any{}
				in, err := os.ReadFile(filepath.Join(dir, c.InputPath))
				if err != nil {
					t.Fatal(err)
				}
				if err := yaml.Unmarshal(in, &obj); err != nil {
					t.Fatalf("%s: %v", c.InputPath, err)
				}
				got, err := Run(script, obj)
				if err != nil {
					t.Fatalf("%s: %v", c.InputPath, err)
				}
				if got != c.HealthStatus {
					t.Errorf("%s: got %+v, want %+v", c.InputPath, got, c.HealthStatus)
				}
				statuses[got.Status] = true
			}
			want := []string{"Healthy", "Progressing", "Degraded"}
			if kind != "Customer" {
				want = append(want, "Suspended")
			}
			for _, s := range want {
				if !statuses[s] {
					t.Errorf("no case of health_test.yaml is %s", s)
				}
			}
		})
	}
}

// TestRunIsArgoCDsSandbox shows the runner is as strict as Argo CD's for
// argocd-cm checks, so a check that passes here runs there: no string library,
// and one second.
func TestRunIsArgoCDsSandbox(t *testing.T) {
	if _, err := Run(`return {status = string.upper("healthy")}`, nil); err == nil {
		t.Error("a script using the string library ran; Argo CD's argocd-cm checks do not have it")
	}
	start := time.Now()
	if _, err := Run(`while true do end`, nil); err == nil {
		t.Error("an endless script returned")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("an endless script ran %s, past the one-second limit", d)
	}
	h, err := Run(`local t = {} table.insert(t, "ok") return {status = "Healthy", message = t[1]}`, nil)
	if err != nil || h != (Health{Status: "Healthy", Message: "ok"}) {
		t.Errorf("base and table: %+v, %v", h, err)
	}
}

const configMapPath = "../../dist/argocd/argocd-cm.yaml"

// renderConfigMap is dist/argocd/argocd-cm.yaml: the checks as argocd-cm keys.
func renderConfigMap() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`# Argo CD health checks for customer-operator's kinds, generated from
# config/argocd/resource_customizations (go test ./test/argocd -update). Merge them into
# Argo CD's argocd-cm:
#   kubectl -n argocd patch configmap argocd-cm --patch-file dist/argocd/argocd-cm.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels:
    app.kubernetes.io/name: argocd-cm
    app.kubernetes.io/part-of: argocd
data:
`)
	for _, kind := range Kinds {
		script, err := Script(kind)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "  resource.customizations.health.%s_%s: |\n", Group, kind)
		for _, line := range strings.Split(strings.TrimRight(script, "\n"), "\n") {
			if line == "" {
				b.WriteString("\n")
				continue
			}
			b.WriteString("    " + line + "\n")
		}
	}
	return b.Bytes(), nil
}

func TestArgoCDConfigMapIsCurrent(t *testing.T) {
	want, err := renderConfigMap()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.MkdirAll(filepath.Dir(configMapPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(configMapPath, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(configMapPath)
	if err != nil {
		t.Fatalf("%v: run go test ./test/argocd -update", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is not what the health checks render: run go test ./test/argocd -update", configMapPath)
	}
	// What Argo CD reads back from the ConfigMap is each script as it is.
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(got, &cm); err != nil {
		t.Fatal(err)
	}
	for _, kind := range Kinds {
		script, _ := Script(kind)
		if cm.Data["resource.customizations.health."+Group+"_"+kind] != script {
			t.Errorf("the ConfigMap's check of %s differs from health.lua", kind)
		}
	}
}
