{{/* The chart's name. */}}
{{- define "customer-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object's name: the release name, with the chart's name added
when the release name does not contain it (customer-operator, as with kustomize).
*/}}
{{- define "customer-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "customer-operator.labels" -}}
app.kubernetes.io/name: {{ include "customer-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* What every operator pod carries, and the metrics Service selects. */}}
{{- define "customer-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "customer-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "customer-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "customer-operator.controllerServiceAccount" -}}
{{- include "customer-operator.fullname" . }}-controller-manager
{{- end }}

{{- define "customer-operator.webhookServiceAccount" -}}
{{- include "customer-operator.fullname" . }}-webhook-server
{{- end }}

{{/* The securityContexts of both Deployments: the values' (the restricted Pod
Security Standard's by default). */}}
{{- define "customer-operator.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}

{{- define "customer-operator.containerSecurityContext" -}}
{{- toYaml .Values.securityContext }}
{{- end }}

{{/* The probes of both Deployments. */}}
{{- define "customer-operator.probes" -}}
livenessProbe:
  httpGet:
    path: /healthz
    port: health
  initialDelaySeconds: 15
  periodSeconds: 20
readinessProbe:
  httpGet:
    path: /readyz
    port: health
  initialDelaySeconds: 5
  periodSeconds: 10
{{- end }}

{{/* The Secret whose token the ServiceMonitor sends. */}}
{{- define "customer-operator.scraperSecret" -}}
{{- default (printf "%s-metrics-scraper-token" (include "customer-operator.fullname" .)) .Values.serviceMonitor.authorization.secretName }}
{{- end }}
