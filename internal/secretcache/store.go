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
// It works in one of two ways, chosen by the identity that uses it:
//
//   - New, for the controllers: the manager's cache watches Secrets as metadata
//     only (no values held in memory); the data of a Secret is fetched from the API
//     server on first use and again only when its resourceVersion in the metadata
//     cache changes. A rotated Secret takes effect on the next read. A Secret the
//     cache does not have (yet) is asked of the API server, at most once per
//     Secret in recheckMissing. This needs get, list and watch on Secrets.
//   - NewByName, for the webhook server, which faces the internet and so may only
//     get Secrets: each Secret is read by name and kept for a short TTL, so a
//     rotated Secret takes effect within the TTL, and a burst of webhooks costs one
//     read per Secret and TTL.
//
// Either way only referenced Secrets' values are held, and only while they are:
// DropDeleted forgets a Secret when it is deleted, and a Sweeper forgets those
// that nothing references any more (and, reading by name, those past the TTL).
package secretcache

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// DefaultTTL is how long NewByName keeps a Secret: short enough that a key
// rotation takes effect before a provider's first retry.
const DefaultTTL = 10 * time.Second

// Store returns Secret data, keyed by namespace and name.
type Store struct {
	// meta reads PartialObjectMetadata of Secrets from the manager's cache; nil
	// when the Store reads by name with a TTL.
	meta client.Reader
	// api reads Secrets from the API server, uncached.
	api client.Reader
	// ttl bounds the age of an entry when meta is nil.
	ttl time.Duration
	// namespaces, when not empty, are the only namespaces read when meta is nil
	// (with meta, the manager's cache enforces its own namespaces).
	namespaces []string
	now        func() time.Time

	// reads makes concurrent misses of one Secret share one API call.
	reads singleflight.Group

	mu        sync.Mutex
	entries   map[types.NamespacedName]entry
	lastSweep time.Time
}

type entry struct {
	resourceVersion string
	data            map[string][]byte
	// fetched and notFound are used when reading by name: a missing Secret is
	// remembered too, so webhooks for a source without its Secret do not each
	// cost an API call.
	fetched  time.Time
	notFound bool
	// uncached says the entry was read while the metadata cache did not
	// have the Secret; it answers for the Secret until recheckMissing has
	// passed or the cache has it.
	uncached bool
}

// recheckMissing is how long a Secret that the metadata cache does not have
// is answered from the one read of the API server that confirmed it: every
// Customer reconcile resolves its sinks' Secrets, and a sink naming a missing
// Secret must not cost an API read per Customer.
const recheckMissing = 10 * time.Second

// New returns a Store that checks the resourceVersion of a Secret in a metadata
// cache before each use. meta must serve metav1.PartialObjectMetadata of Secrets
// (the manager's cached client does, with a metadata-only informer); api must read
// Secrets directly from the API server (the manager's APIReader).
func New(meta, api client.Reader) *Store {
	return &Store{meta: meta, api: api, now: time.Now, entries: map[types.NamespacedName]entry{}}
}

// NewByName returns a Store that only ever gets Secrets by name from api (never
// lists or watches them) and keeps each for ttl (DefaultTTL when zero). When
// namespaces are given, Secrets of other namespaces are not read at all.
func NewByName(api client.Reader, ttl time.Duration, namespaces ...string) *Store {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Store{api: api, ttl: ttl, namespaces: namespaces, now: time.Now, entries: map[types.NamespacedName]entry{}}
}

// Get returns the data of a Secret. The error is a NotFound API error when the
// Secret does not exist. The returned map must not be modified.
func (s *Store) Get(ctx context.Context, key types.NamespacedName) (map[string][]byte, error) {
	if s.meta == nil {
		return s.getByName(ctx, key)
	}
	pom := &metav1.PartialObjectMetadata{}
	pom.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := s.meta.Get(ctx, key, pom); err != nil {
		if apierrors.IsNotFound(err) {
			return s.getUncached(ctx, key)
		}
		s.Forget(key)
		return nil, err
	}

	s.mu.Lock()
	e, ok := s.entries[key]
	current := ok && !e.notFound && e.resourceVersion == pom.ResourceVersion
	if current && e.uncached {
		// The cache has caught up: from now on it says when the Secret goes.
		e.uncached = false
		s.entries[key] = e
	}
	s.mu.Unlock()
	if current {
		return e.data, nil
	}
	e, err := s.fetch(ctx, key, false)
	if err != nil {
		return nil, err
	}
	return e.data, nil
}

// getUncached answers for a Secret the metadata cache does not have. The cache
// may not have seen it yet: a Secret applied together with the source or sink
// that names it (as GitOps tools and kubectl apply -f do) may reach the
// source's or sink's informer first, and the object would be reported as
// missing its Secret when it is not. The API server answers, once per
// recheckMissing.
func (s *Store) getUncached(ctx context.Context, key types.NamespacedName) (map[string][]byte, error) {
	now := s.now()
	return s.readThrough(ctx, key, func(e entry) bool { return e.uncached && now.Sub(e.fetched) < recheckMissing })
}

func (s *Store) getByName(ctx context.Context, key types.NamespacedName) (map[string][]byte, error) {
	if len(s.namespaces) > 0 && !slices.Contains(s.namespaces, key.Namespace) {
		return nil, fmt.Errorf("reading Secret %s: namespace %q is not watched", key, key.Namespace)
	}
	now := s.now()
	return s.readThrough(ctx, key, func(e entry) bool { return now.Sub(e.fetched) < s.ttl })
}

// readThrough answers from the entry of key while fresh says it may, and from
// the API server otherwise; a missing Secret is remembered as missing.
func (s *Store) readThrough(ctx context.Context, key types.NamespacedName, fresh func(entry) bool) (map[string][]byte, error) {
	s.mu.Lock()
	e, ok := s.entries[key]
	s.mu.Unlock()
	if !ok || !fresh(e) {
		var err error
		if e, err = s.fetch(ctx, key, true); err != nil {
			return nil, err
		}
	}
	if e.notFound {
		return nil, apierrors.NewNotFound(corev1.Resource("secrets"), key.Name)
	}
	return e.data, nil
}

// fetch reads a Secret from the API server and remembers it; a missing one is
// remembered as missing when keepMissing is set, and forgotten otherwise.
// Concurrent fetches of one Secret share a single read.
func (s *Store) fetch(ctx context.Context, key types.NamespacedName, keepMissing bool) (entry, error) {
	v, err, _ := s.reads.Do(key.String(), func() (any, error) {
		secret := &corev1.Secret{}
		e := entry{fetched: s.now(), uncached: keepMissing && s.meta != nil}
		err := s.api.Get(ctx, key, secret)
		switch {
		case err == nil:
			e.resourceVersion, e.data = secret.ResourceVersion, secret.Data
		case apierrors.IsNotFound(err) && keepMissing:
			e.notFound = true
		case apierrors.IsNotFound(err):
			s.Forget(key)
			return entry{}, err
		default:
			return entry{}, fmt.Errorf("reading Secret %s: %w", key, err)
		}
		s.mu.Lock()
		s.entries[key] = e
		s.sweepLocked(e.fetched)
		s.mu.Unlock()
		return e, nil
	})
	if err != nil {
		return entry{}, err
	}
	return v.(entry), nil
}

// sweepLocked drops expired entries, at most once per TTL, so Secrets no longer
// referenced do not stay in memory when reading by name.
func (s *Store) sweepLocked(now time.Time) {
	if s.meta != nil || now.Sub(s.lastSweep) < s.ttl {
		return
	}
	s.lastSweep = now
	for k, e := range s.entries {
		if now.Sub(e.fetched) >= s.ttl {
			delete(s.entries, k)
		}
	}
}

// Forget drops what the Store holds of a Secret; the next Get reads it again.
func (s *Store) Forget(key types.NamespacedName) {
	s.mu.Lock()
	delete(s.entries, key)
	s.mu.Unlock()
}

// Retain drops the entries of Secrets that keep does not name and, when reading
// by name, those past the TTL; it returns how many it dropped. A Secret dropped
// while still in use is only read again.
func (s *Store) Retain(keep func(types.NamespacedName) bool) int {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.entries)
	for k, e := range s.entries {
		if (keep != nil && !keep(k)) || (s.meta == nil && now.Sub(e.fetched) >= s.ttl) {
			delete(s.entries, k)
		}
	}
	return n - len(s.entries)
}

// DropDeleted makes the Store forget a Secret as soon as the metadata informer
// of Secrets (the one New's meta reader serves from) sees it deleted, rather
// than hold its data until something asks for it again.
func (s *Store) DropDeleted(ctx context.Context, informers cache.Informers) error {
	pom := &metav1.PartialObjectMetadata{}
	pom.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	inf, err := informers.GetInformer(ctx, pom)
	if err != nil {
		return fmt.Errorf("getting the informer of Secrets' metadata: %w", err)
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		DeleteFunc: func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if o, ok := obj.(client.Object); ok {
				s.Forget(client.ObjectKeyFromObject(o))
			}
		},
	}); err != nil {
		return fmt.Errorf("watching Secrets' deletes: %w", err)
	}
	return nil
}
