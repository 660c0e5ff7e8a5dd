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
	"flag"
	"fmt"
)

// BindFlags binds the webhook server's flags to o, with DefaultOptions as their
// defaults.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.BindAddress, "webhook-bind-address", DefaultOptions.BindAddress, "Address the webhook server listens on.")
	fs.Int64Var(&o.MaxBodyBytes, "webhook-max-body-bytes", DefaultOptions.MaxBodyBytes, "Largest webhook body accepted; larger ones are answered 413.")
	fs.DurationVar(&o.ReadHeaderTimeout, "webhook-read-header-timeout", DefaultOptions.ReadHeaderTimeout, "Time allowed to read a webhook request's headers.")
	fs.DurationVar(&o.ReadTimeout, "webhook-read-timeout", DefaultOptions.ReadTimeout, "Time allowed to read a whole webhook request.")
	fs.DurationVar(&o.APITimeout, "webhook-api-timeout", DefaultOptions.APITimeout, "Time allowed for the Kubernetes API calls of one webhook; past it the answer is 503.")
	fs.IntVar(&o.MaxEventsPerRequest, "webhook-max-events-per-request", DefaultOptions.MaxEventsPerRequest, "Events (customer events or not) one webhook request may carry; decoding stops at the first one past it and the answer is 413.")
	fs.Int64Var(&o.MaxBufferedBytes, "webhook-max-buffered-bytes", DefaultOptions.MaxBufferedBytes, "Request body bytes buffered at once across the webhook server, their decoding included; past it a request is answered 503 with Retry-After.")
	fs.IntVar(&o.AuthFailuresPerMinute, "webhook-auth-failures-per-minute", DefaultOptions.AuthFailuresPerMinute, "Failed authentications (and stalled or broken-off bodies) one client address may make at one source at once and per minute; past it its requests to that source are answered 429. Negative: no limit.")
	fs.IntVar(&o.AddressFailuresPerMinute, "webhook-address-failures-per-minute", DefaultOptions.AddressFailuresPerMinute, "Failed authentications and unknown paths one client address may have across all sources at once and per minute; past it all its requests are answered 429. Keep it well above --webhook-auth-failures-per-minute: providers share addresses between tenants. Negative: no limit.")
	fs.IntVar(&o.MaxBodyReadsPerAddress, "webhook-max-body-reads-per-address", DefaultOptions.MaxBodyReadsPerAddress, "Request bodies one client address may have being read at once before they are authenticated; past it the answer is 429. Negative: no limit.")
	fs.DurationVar(&o.SweepInterval, "state-sweep-interval", DefaultOptions.SweepInterval, "How often what is kept for objects that are gone is pruned: cached Secret data nothing references, and the limits and metric series of deleted CustomerSources.")
	fs.Func("webhook-trusted-proxies", "Comma-separated CIDRs of reverse proxies (the Ingress controller) whose X-Forwarded-For names the client address; empty: the peer is the client.", func(v string) (err error) {
		o.TrustedProxies, err = ParsePrefixes(v)
		return err
	})
}

// Validate checks what the flags' types cannot, naming the flag.
func (o *Options) Validate() error {
	if o.SweepInterval <= 0 {
		return fmt.Errorf("--state-sweep-interval must be positive, not %s", o.SweepInterval)
	}
	return nil
}
