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

package secretcache

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/customer-operator/customer-operator/test/envtestutil"
)

// laggingMetadata is a metadata cache that has not seen some Secrets yet (or
// has seen them deleted): it answers NotFound for those, and reads every other
// one from the API server.
type laggingMetadata struct {
	client.Reader
	mu     sync.Mutex
	unseen map[types.NamespacedName]bool
}

func (m *laggingMetadata) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	m.mu.Lock()
	unseen := m.unseen[key]
	m.mu.Unlock()
	if unseen {
		return apierrors.NewNotFound(corev1.Resource("secrets"), key.Name)
	}
	return m.Reader.Get(ctx, key, obj, opts...)
}

func (m *laggingMetadata) hide(key types.NamespacedName, hidden bool) {
	m.mu.Lock()
	m.unseen[key] = hidden
	m.mu.Unlock()
}

// countingReads counts the reads of the API server.
type countingReads struct {
	client.Reader
	n atomic.Int64
}

func (c *countingReads) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	c.n.Add(1)
	return c.Reader.Get(ctx, key, obj, opts...)
}

type storeFixture struct {
	k8s   client.Client
	meta  *laggingMetadata
	api   *countingReads
	store *Store
	now   time.Time
}

func newStoreFixture(t *testing.T) *storeFixture {
	t.Helper()
	k8s, err := client.New(envtestutil.StartAPIServer(t), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := &storeFixture{k8s: k8s, now: time.Now()}
	f.meta = &laggingMetadata{Reader: k8s, unseen: map[types.NamespacedName]bool{}}
	f.api = &countingReads{Reader: k8s}
	f.store = New(f.meta, f.api)
	f.store.now = func() time.Time { return f.now }
	return f
}

func (f *storeFixture) createSecret(t *testing.T, key types.NamespacedName, value string) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}, Data: map[string][]byte{"token": []byte(value)}}
	if err := f.k8s.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

func (f *storeFixture) token(t *testing.T, key types.NamespacedName) (string, bool) {
	t.Helper()
	data, err := f.store.Get(context.Background(), key)
	if apierrors.IsNotFound(err) {
		return "", false
	}
	if err != nil {
		t.Fatalf("reading Secret %s: %v", key, err)
	}
	return string(data["token"]), true
}

func TestStoreReadsASecretItsMetadataCacheHasNotSeenYet(t *testing.T) {
	f := newStoreFixture(t)
	ctx := context.Background()
	key := types.NamespacedName{Namespace: "default", Name: "just-applied"}

	// Applied together with the source that names it, the Secret may reach the
	// source's reconcile before the Secrets' cache.
	f.meta.hide(key, true)
	f.createSecret(t, key, "s3cret")
	if got, ok := f.token(t, key); !ok || got != "s3cret" {
		t.Fatalf("a Secret the cache has not seen yet: got (%q, found %v), want its data", got, ok)
	}

	// Once the cache has it, it answers as before.
	f.meta.hide(key, false)
	if got, ok := f.token(t, key); !ok || got != "s3cret" {
		t.Fatalf("the same Secret seen by the cache: got (%q, found %v), want its data", got, ok)
	}

	// Deleted, and the cache has seen the delete: missing at once.
	if err := f.k8s.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}); err != nil {
		t.Fatal(err)
	}
	f.meta.hide(key, true)
	if got, ok := f.token(t, key); ok {
		t.Fatalf("a deleted Secret: got %q, want NotFound", got)
	}
}

func TestStoreAsksTheAPIServerForAMissingSecretOncePerInterval(t *testing.T) {
	f := newStoreFixture(t)
	key := types.NamespacedName{Namespace: "default", Name: "never-created"}
	f.meta.hide(key, true)

	// A sink naming a missing Secret is resolved at every reconcile of every
	// Customer it selects: thousands of reads, some at once.
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 100 {
				if _, ok := f.token(t, key); ok {
					t.Error("a missing Secret was found")
				}
			}
		})
	}
	wg.Wait()
	if n := f.api.n.Load(); n != 1 {
		t.Fatalf("1600 reads of a missing Secret within %s asked the API server %d times, want 1", recheckMissing, n)
	}

	// Created later: the next check after the interval finds it, even if the
	// cache is still behind.
	f.createSecret(t, key, "late")
	f.now = f.now.Add(recheckMissing - time.Millisecond)
	if _, ok := f.token(t, key); ok {
		t.Fatal("the Secret was read again before the interval ended")
	}
	f.now = f.now.Add(time.Millisecond)
	if got, ok := f.token(t, key); !ok || got != "late" {
		t.Fatalf("after the interval: got (%q, found %v), want the Secret created since", got, ok)
	}
	if n := f.api.n.Load(); n != 2 {
		t.Fatalf("the API server was asked %d times, want 2", n)
	}
}
