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
	"fmt"
	"net/http"
	"time"

	"github.com/customer-operator/customer-operator/controllers/delivery"
)

// A receiver checks a delivery before trusting it, with the raw body as received.
func ExampleVerify() {
	header := http.Header{}
	header.Set("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
	header.Set("webhook-timestamp", "1614265330")
	header.Set("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	body := []byte(`{"test": 2432232314}`)

	// A real receiver passes time.Now(); the published vector is from 2021.
	now := time.Unix(1614265330, 0)
	err := delivery.Verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", header, body, 5*time.Minute, now)
	fmt.Println("verified:", err == nil)

	err = delivery.Verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", header, body, 5*time.Minute, now.Add(time.Hour))
	fmt.Println(err)
	// Output:
	// verified: true
	// webhook-timestamp invalid or outside the tolerance
}
