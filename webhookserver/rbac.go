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

// The webhook server faces the internet, so its ServiceAccount gets only what
// serving a webhook needs, and `make manifests` generates its own ClusterRole
// (webhook-server-role, config/rbac/webhook_server_role.yaml) from the markers in
// this file alone. It reads sources and Customers from its cache, writes Customers
// and a source's lastEventTime, records Events, and gets a source's Secret by
// name (internal/secretcache.NewByName): it can neither list Secrets nor delete
// anything.

// +kubebuilder:rbac:groups=crm.customer-operator.io,resources=customersources,verbs=get;list;watch
// +kubebuilder:rbac:groups=crm.customer-operator.io,resources=customersources/status,verbs=patch
// +kubebuilder:rbac:groups=crm.customer-operator.io,resources=customers,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
