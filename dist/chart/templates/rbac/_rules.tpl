{{/*
The controllers' permissions: the same rules as config/rbac/role.yaml, generated
there from the RBAC markers (test/manifests fails when the two differ).
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
  - create
  - delete
  - get
  - list
  - patch
  - update
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

{{/*
The webhook server's permissions. It faces the internet, so it may read Secrets
only by name, and neither list them nor delete anything.
*/}}
{{- define "customer-operator.webhookRules" -}}
- apiGroups:
  - ""
  resources:
  - secrets
  verbs:
  - get
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
  - events.k8s.io
  resources:
  - events
  verbs:
  - create
{{- end }}
