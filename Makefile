# customer-operator

# Tool versions, pinned. Tools install into bin/.
CONTROLLER_TOOLS_VERSION ?= v0.23.0
GINKGO_VERSION ?= $(shell go list -m -f '{{.Version}}' github.com/onsi/ginkgo/v2)

LOCALBIN ?= $(shell pwd)/bin
K8S_BIN ?= $(LOCALBIN)/k8s
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)

# Fuzz time per provider decoder in `make test`.
FUZZTIME ?= 5s

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate CRDs and RBAC from the markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd:allowDangerousTypes=false paths="./..." output:crd:artifacts:config=config/crd/bases

.PHONY: generate
generate: controller-gen ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## go fmt.
	go fmt ./...

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: verify-generated
verify-generated: manifests generate ## Fail when generated files are not committed.
	@git diff --exit-code -- config/crd api || { echo "generated files are out of date: run make manifests generate and commit"; exit 1; }

.PHONY: controlplane
controlplane: ## Build kube-apiserver, etcd and kubectl from source into bin/k8s (reused when present).
	K8S_BIN_DIR=$(K8S_BIN) bash hack/build-controlplane.sh

.PHONY: test
test: manifests generate fmt vet controlplane ## Run all tests against a real API server, plus short fuzzing.
	KUBEBUILDER_ASSETS=$(K8S_BIN) go test ./... -count=1 -timeout 20m
	$(MAKE) fuzz

.PHONY: test-e2e
test-e2e: manifests controlplane ## Run the operator's binary as separate processes: leader failover, API server and sink outages.
	KUBEBUILDER_ASSETS=$(K8S_BIN) go test -tags e2e ./test/e2e -count=1 -v -timeout 30m

.PHONY: fuzz
fuzz: ## Fuzz each provider decoder for FUZZTIME.
	@for pkg in $$(go list ./webhookserver/providers/...); do \
		for f in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
			go test $$pkg -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) || exit 1; \
		done; \
	done

.PHONY: bench
bench: controlplane ## Run the benchmarks (figures and ratios against baselines measured in the same run).
	KUBEBUILDER_ASSETS=$(K8S_BIN) go test ./... -run '^$$' -bench . -benchmem -count 5

##@ Build

.PHONY: build
build: generate fmt vet ## Build the manager binary.
	go build -o bin/manager .

.PHONY: run
run: manifests generate ## Run the manager against the cluster of your kubeconfig.
	go run ./main.go

.PHONY: dev
dev: manifests generate controlplane ## Run the operator on an embedded local control plane (no cluster needed).
	K8S_BIN_DIR=$(K8S_BIN) bash hack/dev.sh

IMG ?= customer-operator:latest
.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine).
	docker build -t $(IMG) .

##@ Deployment

.PHONY: install
install: manifests ## Install the CRDs into the cluster of your kubeconfig.
	$(K8S_BIN)/kubectl apply -k config/crd

.PHONY: deploy
deploy: manifests ## Deploy the operator into the cluster of your kubeconfig.
	$(K8S_BIN)/kubectl apply -k config/default

##@ Tools

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN)
$(CONTROLLER_GEN):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/controller-gen $(CONTROLLER_GEN)
