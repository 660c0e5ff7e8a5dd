#!/usr/bin/env bash
# The local dev environment (hack/dev/main.go): etcd + kube-apiserver from bin/k8s, the
# manager, the example sink receiver and the samples. `make dev` builds the control
# plane first and runs this. Flags go to the program: --no-manager, --no-events, --reset,
# --postgres (`make dev POSTGRES=1`: a local PostgreSQL and a sink keeping a table there).
set -euo pipefail

cd "$(dirname "$0")/.."
export K8S_BIN_DIR=${K8S_BIN_DIR:-bin/k8s}

# Built, then exec'd rather than `go run`: Ctrl-C then reaches the program itself,
# which stops everything it started before it exits.
mkdir -p .dev/bin
go build -o .dev/bin/dev ./hack/dev
exec .dev/bin/dev "$@"
