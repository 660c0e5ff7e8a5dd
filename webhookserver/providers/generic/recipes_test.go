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

package generic_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"github.com/customer-operator/customer-operator/webhookserver/providers/generic"
)

// TestRecipesCompile: every recipe under config/samples/generic compiles
// within the default limits.
func TestRecipesCompile(t *testing.T) {
	for _, name := range []string{"stripe", "shopify", "standard-webhooks", "github"} {
		src, secret := Recipe(t, name)
		src.UID, src.Generation = "recipe-"+types.UID(name), 1
		bound, err := generic.For(src)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if err := bound.ValidateSecret(secret); err != nil {
			t.Errorf("%s: the sample Secret: %v", name, err)
		}
	}
}
