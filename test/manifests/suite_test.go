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

// Package manifests tests what users install: dist/install.yaml and the Helm chart
// rendered by `make chart-test`, against a real API server, and the alerts and the
// dashboard against the metrics the operator registers.
package manifests

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// The repository's root, from this package's directory.
const root = "../.."

var (
	env       *envtest.Environment
	k8sClient client.Client
	startOnce sync.Once
	startErr  error
)

// apiServer starts the API server for the first test that needs it (the metrics
// tests do not), and fails the test when it cannot.
func apiServer(t *testing.T) client.Client {
	t.Helper()
	startOnce.Do(func() {
		env = &envtest.Environment{}
		cfg, err := env.Start()
		if err != nil {
			startErr = fmt.Errorf("starting the API server (KUBEBUILDER_ASSETS must hold kube-apiserver and etcd): %w", err)
			return
		}
		k8sClient, startErr = client.New(cfg, client.Options{})
	})
	if startErr != nil {
		t.Fatal(startErr)
	}
	return k8sClient
}

func TestMain(m *testing.M) {
	code := m.Run()
	if env != nil {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the API server:", err)
		}
	}
	os.Exit(code)
}

// readObjects decodes every object of a multi-document YAML file, failing the test
// when the file is missing: it is built by make, never skipped.
func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatalf("reading %s (`make build-installer chart-test` writes it): %v", path, err)
	}
	var objs []*unstructured.Unstructured
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		u := &unstructured.Unstructured{}
		err := dec.Decode(&u.Object)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("decoding %s: %v", path, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		objs = append(objs, u)
	}
	if len(objs) == 0 {
		t.Fatalf("%s holds no object", path)
	}
	return objs
}
