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
	"github.com/customer-operator/customer-operator/webhookserver/providers"
	"github.com/customer-operator/customer-operator/webhookserver/providers/gettrx"
	"github.com/customer-operator/customer-operator/webhookserver/providers/payway"
	"github.com/customer-operator/customer-operator/webhookserver/providers/phasio"
	"github.com/customer-operator/customer-operator/webhookserver/providers/smarterpay"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
)

// registry is the one table of providers; a new provider is a package and a line here.
var registry = map[crmv1alpha1.Provider]providers.Provider{
	crmv1alpha1.ProviderPhasio:     phasio.New(),
	crmv1alpha1.ProviderSmarterPay: smarterpay.New(),
	crmv1alpha1.ProviderGETTRX:     gettrx.New(),
	crmv1alpha1.ProviderPayway:     payway.New(),
}

// Lookup returns the provider of a name, or nil.
func Lookup(name crmv1alpha1.Provider) providers.Provider {
	return registry[name]
}
