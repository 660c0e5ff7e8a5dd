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

package delivery_test

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/delivery"
)

// Encode refuses what no sink can be sent, rather than send a body without an
// identity or in a shape no format names.
func TestEncodeRefusesWhatNoSinkCanBeSent(t *testing.T) {
	c := &crmv1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: "tenant-a", Name: "acme"},
		Spec: crmv1alpha1.CustomerSpec{DisplayName: "Acme"}}
	ok := delivery.Event{ID: "msg_1", Type: delivery.TypeUpserted, Time: time.Now(), Customer: c}
	for _, tc := range []struct {
		name   string
		format crmv1alpha1.SinkFormat
		ev     delivery.Event
		want   string
	}{
		{"no Customer", crmv1alpha1.FormatStandardWebhooks, delivery.Event{ID: "msg_1", Type: delivery.TypeUpserted}, "no Customer"},
		{"no ID", crmv1alpha1.FormatStandardWebhooks, delivery.Event{Type: delivery.TypeUpserted, Customer: c}, "no ID or type"},
		{"no type", crmv1alpha1.FormatCloudEvents, delivery.Event{ID: "msg_1", Customer: c}, "no ID or type"},
		{"an unknown format", "protobuf", ok, `unknown sink format "protobuf"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, contentType, err := delivery.Encode(tc.format, nil, tc.ev)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Encode = %q (%s), %v; want an error saying %q", body, contentType, err, tc.want)
			}
			if body != nil {
				t.Errorf("Encode returned a body with its error: %q", body)
			}
		})
	}
	if _, _, err := delivery.Encode("", nil, ok); err != nil {
		t.Errorf("Encode in the default format: %v", err)
	}
}
