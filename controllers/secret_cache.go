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
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/internal/secretcache"
)

// SetupSecretCache bounds the lifetime of the Secrets that secrets (built with
// secretcache.New on mgr's cache) holds: a Secret is dropped when it is deleted,
// and, every sweepInterval, when no CustomerSource or CustomerSink in mgr's
// cache references it any more.
func SetupSecretCache(ctx context.Context, mgr ctrl.Manager, secrets *secretcache.Store, sweepInterval time.Duration) error {
	if err := secrets.DropDeleted(ctx, mgr.GetCache()); err != nil {
		return err
	}
	if err := mgr.Add(&secretcache.Sweeper{Store: secrets, Referenced: ReferencedSecrets(mgr.GetClient()), Interval: sweepInterval}); err != nil {
		return fmt.Errorf("adding the Secret cache's sweeper: %w", err)
	}
	return nil
}

// ReferencedSecrets returns a function that lists the Secrets the
// CustomerSources and CustomerSinks that c reads name.
func ReferencedSecrets(c client.Reader) func(context.Context) (map[types.NamespacedName]bool, error) {
	return func(ctx context.Context) (map[types.NamespacedName]bool, error) {
		sources := &crmv1alpha1.CustomerSourceList{}
		if err := c.List(ctx, sources, client.UnsafeDisableDeepCopy); err != nil {
			return nil, fmt.Errorf("listing CustomerSources: %w", err)
		}
		sinks := &crmv1alpha1.CustomerSinkList{}
		if err := c.List(ctx, sinks, client.UnsafeDisableDeepCopy); err != nil {
			return nil, fmt.Errorf("listing CustomerSinks: %w", err)
		}
		refs := make(map[types.NamespacedName]bool, len(sources.Items)+len(sinks.Items))
		for i := range sources.Items {
			s := &sources.Items[i]
			refs[types.NamespacedName{Namespace: s.Namespace, Name: s.Spec.SecretRef.Name}] = true
		}
		for i := range sinks.Items {
			s := &sinks.Items[i]
			if s.Spec.SecretRef != nil {
				refs[types.NamespacedName{Namespace: s.Namespace, Name: s.Spec.SecretRef.Name}] = true
			}
		}
		return refs, nil
	}
}
