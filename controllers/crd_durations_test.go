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
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
)

var _ = Describe("CRD validation of durations and conditions", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	// create sends the object as a user's manifest would, so a duration may be any
	// string.
	create := func(kind, name string, spec map[string]any) error {
		u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
		u.SetGroupVersionKind(crmv1alpha1.GroupVersion.WithKind(kind))
		u.SetNamespace(ns)
		u.SetName(name)
		return k8sClient.Create(ctx, u)
	}
	expectRefused := func(err error, inMessage ...string) {
		GinkgoHelper()
		Expect(err).To(HaveOccurred())
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want an Invalid error, got %v", err)
		for _, m := range inMessage {
			Expect(err.Error()).To(ContainSubstring(m))
		}
	}
	source := func(field, value string) map[string]any {
		return map[string]any{"provider": "phasio", "secretRef": map[string]any{"name": "s"}, field: value}
	}

	It("refuses a CustomerSource whose timestampTolerance is no duration or out of its range, and accepts its bounds", func() {
		expectRefused(create("CustomerSource", "words", source("timestampTolerance", "five minutes")), "spec.timestampTolerance")
		expectRefused(create("CustomerSource", "days", source("timestampTolerance", "1d")), "spec.timestampTolerance")
		expectRefused(create("CustomerSource", "zero", source("timestampTolerance", "0s")), "spec.timestampTolerance", "at least 10s")
		expectRefused(create("CustomerSource", "a-day", source("timestampTolerance", "24h")), "spec.timestampTolerance", "at most 1h")
		Expect(create("CustomerSource", "low", source("timestampTolerance", "10s"))).To(Succeed())
		Expect(create("CustomerSource", "high", source("timestampTolerance", "1h"))).To(Succeed())
	})

	It("refuses a CustomerSource whose tombstoneRetention is no duration or out of its range, and accepts its bounds", func() {
		expectRefused(create("CustomerSource", "words", source("tombstoneRetention", "a week")), "spec.tombstoneRetention")
		expectRefused(create("CustomerSource", "negative", source("tombstoneRetention", "-168h")), "spec.tombstoneRetention")
		expectRefused(create("CustomerSource", "short", source("tombstoneRetention", "59m")), "spec.tombstoneRetention", "at least 1h")
		expectRefused(create("CustomerSource", "a-year", source("tombstoneRetention", "8760h")), "spec.tombstoneRetention", "at most 2160h")
		Expect(create("CustomerSource", "low", source("tombstoneRetention", "1h"))).To(Succeed())
		Expect(create("CustomerSource", "high", source("tombstoneRetention", "2160h"))).To(Succeed())
	})

	It("refuses a CustomerSink whose timeout is no duration or not positive", func() {
		sink := func(timeout string) map[string]any {
			return map[string]any{"url": "https://example.com/hook", "secretRef": map[string]any{"name": "s"}, "timeout": timeout}
		}
		expectRefused(create("CustomerSink", "words", sink("ten seconds")), "spec.timeout")
		expectRefused(create("CustomerSink", "bare", sink("10")), "spec.timeout")
		expectRefused(create("CustomerSink", "zero", sink("0s")), "spec.timeout", "at least 1s")
		Expect(create("CustomerSink", "fine", sink("1.5s"))).To(Succeed())
	})

	It("names every condition type a kind sets in its schema, as kubectl explain shows it", func() {
		for plural, types := range map[string][]string{
			"customers":       {"Ready", "Synced", "Reconciling", "Stalled"},
			"customersources": {"Ready", "Stalled"},
			"customersinks":   {"Ready", "Reconciling", "Stalled"},
		} {
			crd := &unstructured.Unstructured{}
			crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
			Expect(k8sClient.Get(ctx, key("", plural+"."+crmv1alpha1.GroupVersion.Group), crd)).To(Succeed())
			versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
			desc, _, _ := unstructured.NestedString(versions[0].(map[string]any),
				"schema", "openAPIV3Schema", "properties", "status", "properties", "conditions", "description")
			for _, t := range types {
				Expect(desc).To(ContainSubstring(t), "kubectl explain %s.status.conditions does not name %s: %q", plural, t, desc)
			}
		}
	})
})
