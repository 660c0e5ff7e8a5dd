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
	// durationCase is one value of a duration field: refused with an Invalid
	// error naming the field and holding each of inMessage, or accepted.
	type durationCase struct {
		name, value string
		accepted    bool
		inMessage   []string
	}
	refused := func(name, value string, inMessage ...string) durationCase {
		return durationCase{name: name, value: value, inMessage: inMessage}
	}
	accepted := func(name, value string) durationCase { return durationCase{name: name, value: value, accepted: true} }
	// expectDurations creates one object of kind for each case, spec giving its
	// spec with the field at the case's value.
	expectDurations := func(kind, field string, spec func(value string) map[string]any, cases ...durationCase) {
		GinkgoHelper()
		for _, c := range cases {
			err := create(kind, c.name, spec(c.value))
			if c.accepted {
				Expect(err).NotTo(HaveOccurred(), "%s %s", field, c.value)
				continue
			}
			Expect(err).To(HaveOccurred(), "%s %s", field, c.value)
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want an Invalid error, got %v", err)
			for _, m := range append([]string{field}, c.inMessage...) {
				Expect(err.Error()).To(ContainSubstring(m))
			}
		}
	}
	source := func(field string) func(string) map[string]any {
		return func(value string) map[string]any {
			return map[string]any{"provider": "phasio", "secretRef": map[string]any{"name": "s"}, field: value}
		}
	}

	It("refuses a CustomerSource whose timestampTolerance is no duration or out of its range, and accepts its bounds", func() {
		expectDurations("CustomerSource", "spec.timestampTolerance", source("timestampTolerance"),
			refused("words", "five minutes"), refused("days", "1d"), refused("zero", "0s", "at least 10s"), refused("a-day", "24h", "at most 1h"),
			accepted("low", "10s"), accepted("high", "1h"))
	})

	It("refuses a CustomerSource whose tombstoneRetention is no duration or out of its range, and accepts its bounds", func() {
		expectDurations("CustomerSource", "spec.tombstoneRetention", source("tombstoneRetention"),
			refused("words", "a week"), refused("negative", "-168h"), refused("short", "59m", "at least 1h"), refused("a-year", "8760h", "at most 2160h"),
			accepted("low", "1h"), accepted("high", "2160h"))
	})

	It("refuses a CustomerSink whose timeout is no duration or not positive", func() {
		sink := func(timeout string) map[string]any {
			return map[string]any{"url": "https://example.com/hook", "secretRef": map[string]any{"name": "s"}, "timeout": timeout}
		}
		expectDurations("CustomerSink", "spec.timeout", sink,
			refused("words", "ten seconds"), refused("bare", "10"), refused("zero", "0s", "at least 1s"), accepted("fine", "1.5s"))
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
