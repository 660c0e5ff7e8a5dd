{{/*
The identities' permissions, copied by hack/sync-chart.sh from config/rbac/role.yaml
(the controllers) and config/rbac/webhook_server_role.yaml (the webhook server), which
controller-gen generates from the RBAC markers. Do not edit: run `make chart`.
*/}}
{{- define "customer-operator.managerRules" -}}
- apiGroups:
  - ""
  resources:
  - secrets
  verbs:
  - get
  - list
  - watch
- apiGroups:
  - crm.customer-operator.io
  resources:
  - customers
  verbs:
  - delete
  - get
  - list
  - patch
  - watch
- apiGroups:
  - crm.customer-operator.io
  resources:
  - customers/finalizers
  verbs:
  - update
- apiGroups:
  - crm.customer-operator.io
  resources:
  - customers/status
  - customersinks/status
  - customersources/status
  verbs:
  - get
  - patch
  - update
- apiGroups:
  - crm.customer-operator.io
  resources:
  - customersinks
  - customersources
  verbs:
  - get
  - list
  - watch
- apiGroups:
  - events.k8s.io
  resources:
  - events
  verbs:
  - create
  - patch
{{- end }}

{{- define "customer-operator.webhookRules" -}}
- apiGroups:
  - ""
  resources:
  - secrets
  verbs:
  - get
- apiGroups:
  - ""
  - events.k8s.io
  resources:
  - events
  verbs:
  - create
  - patch
- apiGroups:
  - crm.customer-operator.io
  resources:
  - customers
  verbs:
  - create
  - get
  - list
  - update
  - watch
- apiGroups:
  - crm.customer-operator.io
  resources:
  - customersources
  verbs:
  - get
  - list
  - watch
- apiGroups:
  - crm.customer-operator.io
  resources:
  - customersources/status
  verbs:
  - patch
{{- end }}
