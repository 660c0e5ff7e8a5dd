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

// Command atomicbench measures what tracking a Customer's spec and status as
// units (x-kubernetes-map-type: atomic) saves the API server, against the same
// CRD with them tracked field by field, on one control plane in one run.
//
// It installs the Customer CRD twice: as it is, and under another group with
// the atomic markers of spec and status removed. It then alternates rounds of
// creates (as the webhook server writes a Customer) and of status writes (as
// the controller writes a Synced status) between the two, and prints the API
// server's CPU per request for each, their medians and their ratio, and one
// Customer's size with its managed fields.
//
//	go run ./hack/atomicbench
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/customer-operator/customer-operator/test/benchutil"
	"github.com/customer-operator/customer-operator/test/localcluster"
)

const (
	atomicGroup   = "crm.customer-operator.io"
	granularGroup = "granular.customer-operator.io"
	crdFile       = "config/crd/bases/crm.customer-operator.io_customers.yaml"
	atomicMarker  = "            x-kubernetes-map-type: atomic\n"
)

func main() {
	binDir := flag.String("k8s-bin-dir", "bin/k8s", "directory with etcd and kube-apiserver")
	rounds := flag.Int("rounds", 6, "rounds per variant and request kind, alternating")
	perRound := flag.Int("per-round", 1000, "requests per round")
	flag.Parse()
	if err := run(*binDir, *rounds, *perRound); err != nil {
		fmt.Fprintf(os.Stderr, "atomicbench: %v\n", err)
		os.Exit(1)
	}
}

func run(binDir string, rounds, perRound int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "atomicbench-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	abs, err := filepath.Abs(binDir)
	if err != nil {
		return err
	}
	cp := &localcluster.ControlPlane{BinDir: abs, Dir: dir,
		APIServerArgs: []string{"--max-requests-inflight=1000", "--max-mutating-requests-inflight=500"}}
	if err := cp.Start(ctx); err != nil {
		return err
	}
	defer cp.Stop()

	crd, err := os.ReadFile(crdFile)
	if err != nil {
		return err
	}
	if strings.Count(string(crd), atomicMarker) != 2 {
		return fmt.Errorf("%s: expected the atomic markers of spec and status", crdFile)
	}
	granular := strings.ReplaceAll(strings.ReplaceAll(string(crd), atomicGroup, granularGroup), atomicMarker, "")
	crds := filepath.Join(dir, "crds")
	if err := os.MkdirAll(crds, 0o700); err != nil {
		return err
	}
	if err := errors.Join(os.WriteFile(filepath.Join(crds, "atomic.yaml"), crd, 0o600),
		os.WriteFile(filepath.Join(crds, "granular.yaml"), []byte(granular), 0o600)); err != nil {
		return err
	}
	if err := cp.InstallCRDs(crds); err != nil {
		return err
	}

	cfg := cp.RESTConfig()
	cfg.QPS, cfg.Burst = -1, -1
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	variants := []string{"atomic", "granular"}
	groups := map[string]string{"atomic": atomicGroup, "granular": granularGroup}
	resource := func(v string) dynamic.ResourceInterface {
		return dc.Resource(schema.GroupVersionResource{Group: groups[v], Version: "v1alpha1", Resource: "customers"}).Namespace("default")
	}
	apiCPU := func() time.Duration {
		d, _ := localcluster.CPUTime(cp.APIServer().Pid())
		return d
	}
	perRequest := map[string][]float64{}
	measure := func(key string, n, workers int, f func(i int) error) error {
		before := apiCPU()
		if _, err := benchutil.Parallel(n, workers, f); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		perRequest[key] = append(perRequest[key], float64(apiCPU()-before)/float64(time.Millisecond)/float64(n))
		return nil
	}
	// Alternating which variant goes first, so that neither always runs on the
	// busier half of a round.
	order := func(r int) []string {
		if r%2 == 1 {
			return []string{variants[1], variants[0]}
		}
		return variants
	}
	name := func(r, i int) string { return fmt.Sprintf("gettrx-cus-r%d-%05d", r, i) }
	for r := range rounds {
		for _, v := range order(r) {
			err := measure("create "+v, perRound, 16, func(i int) error {
				_, err := resource(v).Create(ctx, customer(groups[v], name(r, i)), metav1.CreateOptions{FieldManager: "customer-operator-webhook"})
				return err
			})
			if err != nil {
				return err
			}
		}
	}
	for r := range rounds {
		// Each round's status differs from the last, so every write changes it.
		status := []byte(fmt.Sprintf(`{"status":{"observedGeneration":1,"conditions":[`+
			`{"type":"Ready","status":"True","observedGeneration":1,"lastTransitionTime":"2026-11-24T07:00:00Z","reason":"Valid","message":"customer record is valid"},`+
			`{"type":"Synced","status":"True","observedGeneration":1,"lastTransitionTime":"2026-11-24T07:00:%02dZ","reason":"Synced","message":"generation 1 delivered to 1 sink(s)"}],`+
			`"lastEvent":{"id":"evt_1","type":"customer.created","time":"2026-11-24T07:00:00Z","receivedAt":"2026-11-24T07:00:00Z"},`+
			`"sinks":[{"name":"receiver","syncedGeneration":1,"sinkGeneration":1,"lastSyncTime":"2026-11-24T07:00:00Z"}]}}`, r))
		for _, v := range order(r) {
			err := measure("status write "+v, perRound, 8, func(i int) error {
				_, err := resource(v).Patch(ctx, name(r, i), types.MergePatchType, status, metav1.PatchOptions{FieldManager: "manager"}, "status")
				return err
			})
			if err != nil {
				return err
			}
		}
	}

	fmt.Printf("API server CPU per request, %d rounds of %d, medians:\n\n", rounds, perRound)
	fmt.Println("| request | atomic | granular | atomic / granular |")
	fmt.Println("|---|---|---|---|")
	for _, kind := range []string{"create", "status write"} {
		a, g := benchutil.Median(perRequest[kind+" atomic"]), benchutil.Median(perRequest[kind+" granular"])
		fmt.Printf("| %s | %.2f ms | %.2f ms | %.2f |\n", kind, a, g, a/g)
	}
	fmt.Println()
	for _, v := range variants {
		u, err := resource(v).Get(ctx, name(0, 0), metav1.GetOptions{})
		if err != nil {
			return err
		}
		all, _ := json.Marshal(u.Object)
		mf, _ := json.Marshal(u.GetManagedFields())
		fmt.Printf("%s: a Customer with its status is %d JSON bytes, %d of them managed fields\n", v, len(all), len(mf))
	}
	for _, k := range slices.Sorted(maps.Keys(perRequest)) {
		fmt.Fprintf(os.Stderr, "%s: %.2f ms per round\n", k, perRequest[k])
	}
	return nil
}

// customer is a Customer as the webhook server creates it for a GETTRX event.
func customer(group, name string) *unstructured.Unstructured {
	now := time.Now().UTC()
	id := strings.TrimPrefix(name, "gettrx-")
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": group + "/v1alpha1", "kind": "Customer",
		"metadata": map[string]any{"name": name, "namespace": "default",
			"finalizers": []any{"crm.customer-operator.io/sink-delivery"},
			"labels":     map[string]any{"crm.customer-operator.io/provider": "gettrx", "crm.customer-operator.io/source": "gettrx"},
			"annotations": map[string]any{
				"crm.customer-operator.io/last-event-id": "evt_" + id, "crm.customer-operator.io/last-event-type": "customer.created",
				"crm.customer-operator.io/last-event-time": now.Format(time.RFC3339), "crm.customer-operator.io/last-event-received": now.Format(time.RFC3339Nano),
				"crm.customer-operator.io/recent-event-ids": `["evt_` + id + `"]`}},
		"spec": map[string]any{"provider": "gettrx", "externalID": id, "displayName": "Customer " + id,
			"email": id + "@example.com", "phone": "+44 20 7946 0000", "lifecycle": "Active",
			"addresses":         []any{map[string]any{"type": "billing", "line1": "1 Test Street", "city": "London", "postalCode": "N1 9GU", "country": "GB"}},
			"providerUpdatedAt": now.Format(time.RFC3339), "attributes": map[string]any{"description": "load test"}},
	}}
}
