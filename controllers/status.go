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
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// statusLock says whether a status write carries the resourceVersion the status
// was computed from.
type statusLock bool

const (
	// withLock makes a write computed from a stale cache conflict, so the
	// reconcile is retried on fresh data instead of mixing its status with a
	// newer one, or announcing a transition that already happened.
	withLock statusLock = true
	// withoutLock is for a status computed whole on every reconcile, where the
	// last write winning is right.
	withoutLock statusLock = false
)

// patchStatus is the one way the reconcilers write status. It sends a JSON
// merge patch from oldStatus (what obj was read with) to newStatus, and sends
// nothing when the two are equal as the API server stores them: times are kept
// to the second, so a status equal but for sub-second times would be a patch
// that changes nothing and still costs the API server a decode, a patch and a
// compare. The patch goes out as metadata, so the API server answers with the
// object's metadata alone and neither side encodes or decodes the whole object
// again. It reports whether it wrote; an object that is gone is not an error.
func patchStatus(ctx context.Context, c client.Client, obj client.Object, oldStatus, newStatus any, lock statusLock) (bool, error) {
	gvk, err := apiutil.GVKForObject(obj, c.Scheme())
	if err != nil {
		return false, fmt.Errorf("writing status: %w", err)
	}
	if equality.Semantic.DeepEqual(oldStatus, newStatus) {
		return false, nil
	}
	before, err := json.Marshal(oldStatus)
	if err != nil {
		return false, fmt.Errorf("encoding %s status: %w", gvk.Kind, err)
	}
	after, err := json.Marshal(newStatus)
	if err != nil {
		return false, fmt.Errorf("encoding %s status: %w", gvk.Kind, err)
	}
	if bytes.Equal(before, after) {
		return false, nil
	}
	statusPatch, err := jsonpatch.CreateMergePatch(before, after)
	if err != nil {
		return false, fmt.Errorf("computing the %s status patch: %w", gvk.Kind, err)
	}
	data := make([]byte, 0, len(statusPatch)+64)
	data = append(data, '{')
	if lock {
		rv, err := json.Marshal(obj.GetResourceVersion())
		if err != nil {
			return false, fmt.Errorf("encoding the resourceVersion: %w", err)
		}
		data = append(append(append(data, `"metadata":{"resourceVersion":`...), rv...), `},`...)
	}
	data = append(append(append(data, `"status":`...), statusPatch...), '}')
	target := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: obj.GetNamespace(), Name: obj.GetName()}}
	target.SetGroupVersionKind(gvk)
	if err := c.Status().Patch(ctx, target, client.RawPatch(types.MergePatchType, data)); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("writing %s status: %w", gvk.Kind, err)
	}
	return true, nil
}
