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
	"context"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// warnings collects the API server's warnings, as kubectl prints them.
type warnings struct {
	mu   sync.Mutex
	seen []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen = append(w.seen, text)
}

// TestPodsMeetRestrictedPodSecurity applies the Deployments of dist/install.yaml and
// of the chart (defaults, and every option on, with OpenShift's security contexts)
// into a namespace that enforces and warns at the restricted Pod Security level: the
// API server must warn about none of them, and must admit their Pods.
func TestPodsMeetRestrictedPodSecurity(t *testing.T) {
	apiServer(t)
	w := &warnings{}
	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandlerWithContext = nil
	cfg.WarningHandler = w
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const ns = "restricted-pods"
	namespace := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
		"pod-security.kubernetes.io/warn":    "restricted",
		"pod-security.kubernetes.io/audit":   "restricted",
	}}}
	if err := client.IgnoreAlreadyExists(c.Create(ctx, namespace)); err != nil {
		t.Fatal(err)
	}

	checked := 0
	for source, prefix := range map[string]string{"dist/install.yaml": "install", "bin/chart/default.yaml": "default", "bin/chart/all.yaml": "all"} {
		for _, d := range find(readObjects(t, source), "Deployment", "") {
			d.SetNamespace(ns)
			d.SetName(prefix + "-" + d.GetLabels()["control-plane"])
			w.seen = nil
			if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(d), client.FieldOwner("test-pod-security"), client.ForceOwnership); err != nil {
				t.Errorf("%s: Deployment %s refused: %v", source, d.GetName(), err)
				continue
			}
			if len(w.seen) != 0 {
				t.Errorf("%s: Deployment %s: the API server warned %q", source, d.GetName(), w.seen)
			}

			// Pods are what the level is enforced on: the Deployment's Pod, dry run.
			tmpl, _, _ := unstructured.NestedMap(d.Object, "spec", "template")
			pod := &corev1.Pod{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(tmpl, pod); err != nil {
				t.Fatal(err)
			}
			pod.Namespace, pod.Name = ns, d.GetName()
			pod.Spec.PriorityClassName = "" // the priority classes are not the test's
			if err := c.Create(ctx, pod, client.DryRunAll); err != nil {
				t.Errorf("%s: the Pod of Deployment %s is refused in a restricted namespace: %v", source, d.GetName(), err)
			}
			checked++
		}
	}
	if checked != 6 {
		t.Errorf("checked %d Deployments, want 6 (two each in dist/install.yaml and both chart renderings)", checked)
	}
}
