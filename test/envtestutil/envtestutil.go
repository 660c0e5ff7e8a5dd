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

// Package envtestutil holds what the tests on a real API server share:
// starting one for a test, running an extra manager for one spec, and reading
// the metric series it leaves.
package envtestutil

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// StartAPIServer starts a kube-apiserver and etcd (from KUBEBUILDER_ASSETS)
// with no CRDs for the rest of the test, and returns its config.
func StartAPIServer(t testing.TB) *rest.Config {
	t.Helper()
	env := &envtest.Environment{}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting the API server (KUBEBUILDER_ASSETS=bin/k8s): %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	return cfg
}

// RunManager starts mgr for the rest of the spec: its cleanup stops mgr and
// waits for it to return.
func RunManager(ctx context.Context, mgr manager.Manager) {
	ginkgo.GinkgoHelper()
	mctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer ginkgo.GinkgoRecover()
		defer close(done)
		gomega.Expect(mgr.Start(mctx)).To(gomega.Succeed())
	}()
	ginkgo.DeferCleanup(func() {
		stop()
		gomega.Eventually(done).WithTimeout(20 * time.Second).Should(gomega.BeClosed())
	})
}

// SeriesNaming counts the series of customer_operator_* metrics in
// controller-runtime's registry (what /metrics serves) with a label value
// naming an object of one of namespaces, and gives up to five as examples.
func SeriesNaming(namespaces ...string) (int, []string) {
	ginkgo.GinkgoHelper()
	families, err := ctrlmetrics.Registry.Gather()
	gomega.Expect(err).NotTo(gomega.HaveOccurred())
	n := 0
	var examples []string
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "customer_operator_") {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				named := false
				for _, ns := range namespaces {
					if strings.HasPrefix(l.GetValue(), ns+"/") {
						named = true
					}
				}
				if named {
					n++
					if len(examples) < 5 {
						examples = append(examples, f.GetName()+"{"+l.GetName()+"="+l.GetValue()+"}")
					}
					break
				}
			}
		}
	}
	return n, examples
}
