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
	"context"
	"errors"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/delivery"
	"github.com/customer-operator/customer-operator/internal/secretcache"
)

// selects says whether a sink selects a Customer: its label selector and its
// provider filter both match. An invalid selector selects nothing.
func selects(sink *crmv1alpha1.CustomerSink, c *crmv1alpha1.Customer) bool {
	if len(sink.Spec.Providers) > 0 && !slices.Contains(sink.Spec.Providers, c.Spec.Provider) {
		return false
	}
	if sink.Spec.Selector == nil {
		return true
	}
	sel, err := metav1.LabelSelectorAsSelector(sink.Spec.Selector)
	if err != nil {
		return false
	}
	return sel.Matches(labels.Set(c.Labels))
}

// sinkState is what both the sink and the Customer controllers need to know of a
// sink: can it receive deliveries now, and where.
type sinkState struct {
	config  sinkConfig
	ready   bool
	reason  string
	message string
}

const sinkSuspendedMessage = "deliveries are suspended"

// resolveSink checks a sink of any type and resolves its configuration with its
// Secret. Both
// controllers call it, so a Customer never waits for the sink controller to have
// run first (after a restart, say).
// With a nil d, 410 Gone is not considered.
func resolveSink(ctx context.Context, secrets *secretcache.Store, d Deliveries, sink *crmv1alpha1.CustomerSink) (sinkState, error) {
	if _, err := metav1.LabelSelectorAsSelector(sink.Spec.Selector); err != nil {
		return sinkState{reason: crmv1alpha1.ReasonInvalidSpec, message: fmt.Sprintf("invalid selector: %v", err)}, nil
	}
	var data map[string][]byte
	if sink.Spec.SecretRef != nil {
		var err error
		data, err = secrets.Get(ctx, types.NamespacedName{Namespace: sink.Namespace, Name: sink.Spec.SecretRef.Name})
		if apierrors.IsNotFound(err) {
			return sinkState{reason: crmv1alpha1.ReasonSecretNotFound, message: fmt.Sprintf("Secret %q not found", sink.Spec.SecretRef.Name)}, nil
		}
		if err != nil {
			return sinkState{}, err
		}
	}
	config, err := configFromSink(sink, data)
	if err != nil {
		reason := crmv1alpha1.ReasonInvalidSpec
		if errors.Is(err, delivery.ErrInvalidSecret) {
			reason = crmv1alpha1.ReasonSecretInvalid
		}
		return sinkState{reason: reason, message: err.Error()}, nil
	}
	if sink.Spec.Suspend {
		return sinkState{config: config, reason: crmv1alpha1.ReasonSuspended, message: sinkSuspendedMessage}, nil
	}
	if d != nil && d.Health(client.ObjectKeyFromObject(sink), sink.Generation).Gone {
		return sinkState{config: config, reason: crmv1alpha1.ReasonEndpointGone,
			message: "the endpoint answered 410 Gone; deliveries stopped until the sink's spec changes"}, nil
	}
	return sinkState{config: config, ready: true, reason: crmv1alpha1.ReasonValid, message: "sink can receive deliveries"}, nil
}
