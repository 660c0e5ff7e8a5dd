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

package webhookserver

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
)

// maxNameLength keeps names valid as label values too (63), so a Customer's name
// can be used in selectors.
const maxNameLength = 63

// CustomerName is the name of a provider's Customer: "{provider}-{external id}",
// lower-cased, with characters outside [a-z0-9-] replaced by "-". When that was
// lossy (the external id had other characters or upper case) or too long, a short
// hash of the exact external id is appended, so two ids that differ only in the
// replaced characters never share a name.
func CustomerName(provider crmv1alpha1.Provider, externalID string) string {
	raw := string(provider) + "-" + externalID
	name, lossy := sanitize(raw)
	if !lossy && len(name) <= maxNameLength {
		return name
	}
	return withHash(name, raw)
}

// SourceCustomerName is the name of a source's Customer when CustomerName is
// taken by another source's record of the same provider id (two accounts of one
// provider, each with its own CustomerSource, can both have a customer "678"):
// "{provider}-{external id}-{source}", sanitized like CustomerName, always with a
// hash of the three, so the name is the same on every replica and for every event.
func SourceCustomerName(provider crmv1alpha1.Provider, externalID, source string) string {
	name, _ := sanitize(string(provider) + "-" + externalID + "-" + source)
	return withHash(name, string(provider)+"\x00"+externalID+"\x00"+source)
}

// sanitize lower-cases s and replaces characters outside [a-z0-9-]; lossy says
// whether that changed it.
func sanitize(raw string) (name string, lossy bool) {
	var b strings.Builder
	b.Grow(len(raw))
	for _, r := range raw {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			b.WriteRune(r)
		case r >= 'A' && r <= 'Z':
			b.WriteRune(r + ('a' - 'A'))
			lossy = true
		default:
			b.WriteByte('-')
			lossy = true
		}
	}
	name = strings.Trim(b.String(), "-")
	return name, lossy || name != raw
}

// withHash appends 8 hex digits of the SHA-256 of exact to name, shortening name
// so the result stays within maxNameLength.
func withHash(name, exact string) string {
	sum := sha256.Sum256([]byte(exact))
	suffix := hex.EncodeToString(sum[:])[:8]
	if max := maxNameLength - len(suffix) - 1; len(name) > max {
		name = strings.TrimRight(name[:max], "-")
	}
	return name + "-" + suffix
}
