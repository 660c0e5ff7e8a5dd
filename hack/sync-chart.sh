#!/usr/bin/env bash
# Copies what the Helm chart shares with config/ into dist/chart: the CRDs (wrapped
# in the chart's crd.enable / crd.keep switches), the alerts and the dashboard.
# Run by `make chart`; CI fails when the committed chart differs from its output.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
chart=$root/dist/chart

rm -f "$chart"/templates/crd/*.yaml
for crd in "$root"/config/crd/bases/*.yaml; do
  if grep -q '{{' "$crd"; then
    echo "$crd contains '{{', which Helm would take for a template" >&2
    exit 1
  fi
  out=$chart/templates/crd/$(basename "$crd")
  {
    echo '{{- if .Values.crd.enable }}'
    # Keep the CRDs (and so every object of their kinds) on `helm uninstall` unless
    # crd.keep is false.
    awk '
      /^---$/ && !started { next }
      { started = 1 }
      /^  annotations:$/ && !done {
        print
        print "    {{- if .Values.crd.keep }}"
        print "    helm.sh/resource-policy: keep"
        print "    {{- end }}"
        done = 1
        next
      }
      { print }
    ' "$crd"
    echo '{{- end }}'
  } >"$out"
  grep -q 'helm.sh/resource-policy' "$out" || { echo "$crd: no metadata.annotations to add helm.sh/resource-policy to" >&2; exit 1; }
done

cp "$root/config/prometheus/alerts.yaml" "$chart/files/alerts.yaml"
cp "$root"/config/prometheus/dashboards/*.json "$chart/files/"

# The roles' rules, taken from the roles controller-gen generates from the RBAC
# markers, so the chart grants exactly what the installer grants.
rules() { # name file
  echo "{{- define \"customer-operator.$1\" -}}"
  awk '/^rules:$/ { on = 1; next } on { print }' "$2"
  echo '{{- end }}'
}
{
  echo '{{/*'
  echo 'The identities'"'"' permissions, copied by hack/sync-chart.sh from config/rbac/role.yaml'
  echo '(the controllers) and config/rbac/webhook_server_role.yaml (the webhook server), which'
  echo 'controller-gen generates from the RBAC markers. Do not edit: run `make chart`.'
  echo '*/}}'
  rules managerRules "$root/config/rbac/role.yaml"
  echo
  rules webhookRules "$root/config/rbac/webhook_server_role.yaml"
} >"$chart/templates/rbac/_rules.tpl"
