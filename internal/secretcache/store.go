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

// Package secretcache reads the data of the few Secrets that CustomerSources and
// CustomerSinks reference, without caching every Secret of the cluster.
//
// The manager's cache watches Secrets as metadata only (no values held in memory);
// the data of a Secret is fetched from the API server on first use and again only
// when its resourceVersion in the metadata cache changes. So a rotated Secret takes
// effect on the next request, and only referenced Secrets' values are held.
package secretcache

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Store returns Secret data, keyed by namespace and name.
type Store struct {
	// meta reads PartialObjectMetadata of Secrets from the manager's cache.
	meta client.Reader
	// api reads Secrets from the API server, uncached.
	api client.Reader

	mu      sync.Mutex
	entries map[types.NamespacedName]entry
}

type entry struct {
	resourceVersion string
	data            map[string][]byte
}

// New returns a Store. meta must serve metav1.PartialObjectMetadata of Secrets
// (the manager's cached client does, with a metadata-only informer); api must read
// Secrets directly from the API server (the manager's APIReader).
func New(meta, api client.Reader) *Store {
	return &Store{meta: meta, api: api, entries: map[types.NamespacedName]entry{}}
}

// Get returns the data of a Secret. The error is a NotFound API error when the
// Secret does not exist. The returned map must not be modified.
func (s *Store) Get(ctx context.Context, key types.NamespacedName) (map[string][]byte, error) {
	pom := &metav1.PartialObjectMetadata{}
	pom.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := s.meta.Get(ctx, key, pom); err != nil {
		s.forget(key)
		return nil, err
	}

	s.mu.Lock()
	e, ok := s.entries[key]
	s.mu.Unlock()
	if ok && e.resourceVersion == pom.ResourceVersion {
		return e.data, nil
	}

	secret := &corev1.Secret{}
	if err := s.api.Get(ctx, key, secret); err != nil {
		return nil, fmt.Errorf("reading Secret %s: %w", key, err)
	}
	s.mu.Lock()
	s.entries[key] = entry{resourceVersion: secret.ResourceVersion, data: secret.Data}
	s.mu.Unlock()
	return secret.Data, nil
}

func (s *Store) forget(key types.NamespacedName) {
	s.mu.Lock()
	delete(s.entries, key)
	s.mu.Unlock()
}
