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
	"time"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/delivery"
)

// sinkAddressLookupTimeout bounds the DNS lookup of a sink's host, so a slow
// resolver cannot hold a reconcile worker.
const sinkAddressLookupTimeout = 5 * time.Second

// checkSinkAddress refines a sink that could otherwise receive: if the host of
// its URL, database or brokers is, or resolves to, an address the policy
// refuses, it is not Ready (AddressNotAllowed), with the address in the message.
// Every sender enforces the same policy at connect time, so this is what people
// see, not what protects: a name that resolves elsewhere later is still refused
// when dialled.
func checkSinkAddress(ctx context.Context, policy delivery.AddressPolicy, _ *crmv1alpha1.CustomerSink, state sinkState) sinkState {
	if !state.ready {
		return state
	}
	ctx, cancel := context.WithTimeout(ctx, sinkAddressLookupTimeout)
	defer cancel()
	var notAllowed *delivery.AddressNotAllowedError
	for _, u := range state.config.addressURLs() {
		if err := policy.CheckURL(ctx, u); errors.As(err, &notAllowed) {
			return sinkState{config: state.config, reason: crmv1alpha1.ReasonAddressNotAllowed, message: notAllowed.Error()}
		}
	}
	return state
}
