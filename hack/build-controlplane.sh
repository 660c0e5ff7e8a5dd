#!/usr/bin/env bash
# Builds a real control plane (kube-apiserver, kubectl, etcd) from the Go module
# proxy into bin/k8s/, so tests and `make dev` need no cluster, no Docker and no
# release downloads. Binaries that are already present and report the expected
# version are reused.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${K8S_BIN_DIR:-$root/bin/k8s}
kube_version=v1.37.2
mkdir -p "$out"

log() { printf '[controlplane] %s\n' "$*" >&2; }


ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=${kube_version} \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=37 \
 -X k8s.io/client-go/pkg/version.gitVersion=${kube_version} \
 -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=37"

build_kube() {
  local name=$1
  if [ -x "$out/$name" ] && "$out/$name" --version 2>/dev/null | grep -q "${kube_version}"; then
    log "reusing $out/$name ($kube_version)"
    return
  fi
  log "building $name $kube_version from k8s.io/kubernetes (first build: several minutes)"
  (cd "$root/hack/controlplane/kube" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" \
    -o "$out/$name" "k8s.io/kubernetes/cmd/$name")
}

build_kubectl() {
  if [ -x "$out/kubectl" ] && "$out/kubectl" version --client 2>/dev/null | grep -q "${kube_version}"; then
    log "reusing $out/kubectl ($kube_version)"
    return
  fi
  log "building kubectl $kube_version"
  (cd "$root/hack/controlplane/kube" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" \
    -o "$out/kubectl" k8s.io/kubernetes/cmd/kubectl)
}

build_etcd() {
  local want
  want=$(cd "$root/hack/controlplane/etcd" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
  want=${want#v}
  if [ -x "$out/etcd" ] && "$out/etcd" --version 2>/dev/null | grep -q "etcd Version: ${want}"; then
    log "reusing $out/etcd ($want)"
    return
  fi
  log "building etcd $want from go.etcd.io/etcd/server/v3"
  (cd "$root/hack/controlplane/etcd" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" \
    -o "$out/etcd" go.etcd.io/etcd/server/v3)
}

build_etcd
build_kube kube-apiserver
build_kubectl
log "control plane ready in $out"
