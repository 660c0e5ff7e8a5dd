# customer-operator

# Tool versions, pinned. Tools install into bin/.
CONTROLLER_TOOLS_VERSION ?= v0.23.0
KUSTOMIZE_VERSION ?= v5.8.2
HELM_VERSION ?= v3.22.0
GOLANGCI_LINT_VERSION ?= v2.15.0
GINKGO_VERSION ?= $(shell go list -m -f '{{.Version}}' github.com/onsi/ginkgo/v2)

LOCALBIN ?= $(shell pwd)/bin
K8S_BIN ?= $(LOCALBIN)/k8s
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
KUSTOMIZE ?= $(LOCALBIN)/kustomize-$(KUSTOMIZE_VERSION)
HELM ?= $(LOCALBIN)/helm-$(HELM_VERSION)
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)

# kubectl for install/deploy: KUBECTL if set, else the one on PATH, else bin/k8s/kubectl
# (built by `make controlplane` when missing).
KUBECTL ?= $(shell command -v kubectl 2>/dev/null || echo $(K8S_BIN)/kubectl)

# The image of the Deployments, and what `make image` tags its archive with.
IMG ?= customer-operator:latest
# Printed by `manager --version`.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS ?= -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# `make image`: the archive, the platform, and the CA certificates it ships.
IMAGE_ARCHIVE ?= dist/customer-operator.tar
IMAGE_ARCH ?= $(shell go env GOARCH)
CA_CERTS ?= /etc/ssl/certs/ca-certificates.crt

# Fuzzing per provider decoder in `make test`: a count of inputs, not a duration.
# Go 1.26's fuzz coordinator can fail a run that reaches a -fuzztime deadline
# with "context deadline exceeded" and no failing input (go.dev/issue/75804);
# a count has no deadline to race.
FUZZTIME ?= 50000x

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

# The controllers' ClusterRole (manager-role) comes from the markers in api/ and
# controllers/; the internet-facing webhook server gets its own, smaller one
# (webhook-server-role) from webhookserver/rbac.go alone.
.PHONY: manifests
manifests: controller-gen ## Generate CRDs and RBAC from the markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd:allowDangerousTypes=false paths="./api/...;./controllers/..." output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=webhook-server-role,fileName=webhook_server_role.yaml paths="./webhookserver" output:rbac:artifacts:config=config/rbac

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
	@git diff --exit-code -- config/crd config/rbac api || { echo "generated files are out of date: run make manifests generate and commit"; exit 1; }

.PHONY: controlplane
controlplane: ## Build kube-apiserver, etcd and kubectl from source into bin/k8s (reused when present).
	K8S_BIN_DIR=$(K8S_BIN) bash hack/build-controlplane.sh

.PHONY: test
test: manifests generate fmt vet controlplane build-installer chart-test ## Run all tests against a real API server, the chart and image checks, plus short fuzzing.
	KUBEBUILDER_ASSETS=$(K8S_BIN) go test ./... -count=1 -timeout 20m
	$(MAKE) test-image
	$(MAKE) fuzz

.PHONY: lint
lint: golangci-lint ## Run golangci-lint (.golangci.yml).
	$(GOLANGCI_LINT) run ./...

.PHONY: test-e2e
test-e2e: manifests controlplane ## Run the operator's binary as separate processes: leader failover, API server and sink outages.
	KUBEBUILDER_ASSETS=$(K8S_BIN) go test -tags e2e ./test/e2e -count=1 -v -timeout 30m

.PHONY: fuzz
fuzz: ## Fuzz each provider decoder for FUZZTIME (a count of inputs, or a duration).
	@for pkg in $$(go list ./webhookserver/providers/...); do \
		for f in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
			go test $$pkg -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -timeout 5m || exit 1; \
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
	go run -ldflags "-X main.version=$(VERSION) -X main.commit=$(COMMIT)" .

.PHONY: dev
dev: manifests generate controlplane ## Run the operator on an embedded local control plane (no cluster needed).
	K8S_BIN_DIR=$(K8S_BIN) bash hack/dev.sh $(if $(POSTGRES),--postgres,)

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine).
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t $(IMG) .

##@ Image

.PHONY: image
image: ## Write the manager's image archive to IMAGE_ARCHIVE (no Docker needed): static binary, CA certificates, user 65532.
	@mkdir -p bin/image $(dir $(IMAGE_ARCHIVE))
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) go build -trimpath -ldflags "$(LDFLAGS)" -o bin/image/manager .
	cd hack/image && go run . --binary $(abspath bin/image/manager) --ca-certificates $(CA_CERTS) \
		--tag $(IMG) --arch $(IMAGE_ARCH) --output $(abspath $(IMAGE_ARCHIVE))

.PHONY: test-image
test-image: image ## Unpack the image archive and run the manager from it (--version).
	cd hack/image && IMAGE_ARCHIVE=$(abspath $(IMAGE_ARCHIVE)) IMAGE_TAG=$(IMG) IMAGE_VERSION=$(VERSION) IMAGE_COMMIT=$(COMMIT) go test ./... -count=1

##@ Release

# Builds config/default with IMG as the image, in a temporary copy of config/ so the
# committed tree keeps its placeholder.
define build-default
set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; cp -r config "$$tmp/"; \
(cd "$$tmp/config/default" && $(KUSTOMIZE) edit set image controller=$(IMG)); \
$(KUSTOMIZE) build "$$tmp/config/default"
endef

.PHONY: build-installer
build-installer: manifests kustomize ## Write dist/install.yaml: CRDs, namespace, RBAC, Deployments, Services, PDB, NetworkPolicies (IMG sets the image).
	@mkdir -p dist
	@{ $(build-default); } > dist/install.yaml
	@echo "wrote dist/install.yaml (image $(IMG))"
	@# Not part of the installer (it needs the Prometheus Operator's CRDs), but it must build.
	$(KUSTOMIZE) build config/prometheus > /dev/null

.PHONY: chart
chart: manifests ## Copy the CRDs, alerts and dashboard from config/ into the Helm chart (dist/chart).
	bash hack/sync-chart.sh

# Rendered for test/manifests, which applies them to a real API server next to
# dist/install.yaml (hence releases and namespaces of their own).
CHART_RENDERED ?= bin/chart
# The Kubernetes version the chart is rendered for (helm template assumes 1.20, below
# the chart's kubeVersion).
CHART_KUBE_VERSION ?= 1.33.0
.PHONY: chart-test
chart-test: chart helm ## helm lint and helm template the chart, with default values and with every option on.
	$(HELM) lint --strict dist/chart
	$(HELM) lint --strict dist/chart -f hack/chart-values-all.yaml
	@mkdir -p $(CHART_RENDERED)
	$(HELM) template chart-default dist/chart --namespace chart-default --kube-version $(CHART_KUBE_VERSION) > $(CHART_RENDERED)/default.yaml
	$(HELM) template chart-all dist/chart --namespace chart-all --kube-version $(CHART_KUBE_VERSION) -f hack/chart-values-all.yaml > $(CHART_RENDERED)/all.yaml

##@ Deployment

ignore-not-found ?= false

.PHONY: kubectl
kubectl: ## Find kubectl (KUBECTL, PATH, bin/k8s) or build it.
	@[ -x "$(KUBECTL)" ] || $(MAKE) controlplane

.PHONY: install
install: manifests kustomize kubectl ## Install the CRDs into the cluster of your kubeconfig.
	$(KUSTOMIZE) build config/crd | $(KUBECTL) apply --server-side -f -

.PHONY: uninstall
uninstall: kustomize kubectl ## Remove the CRDs, and with them every Customer, source and sink (ignore-not-found=true to ignore missing ones).
	$(KUSTOMIZE) build config/crd | $(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -f -

.PHONY: deploy
deploy: manifests kustomize kubectl ## Deploy the operator with image IMG into the cluster of your kubeconfig.
	@{ $(build-default); } | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: kustomize kubectl ## Remove the operator, its CRDs and their objects (ignore-not-found=true to ignore missing ones).
	$(KUSTOMIZE) build config/default | $(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -f -

##@ Tools

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN)
$(CONTROLLER_GEN):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/controller-gen $(CONTROLLER_GEN)

.PHONY: kustomize
kustomize: $(KUSTOMIZE)
$(KUSTOMIZE):
	$(call go-install-tool,$(KUSTOMIZE),sigs.k8s.io/kustomize/kustomize/v5,kustomize,$(KUSTOMIZE_VERSION))

.PHONY: helm
helm: $(HELM)
$(HELM):
	$(call go-install-tool,$(HELM),helm.sh/helm/v3/cmd/helm,helm,$(HELM_VERSION))

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT)
$(GOLANGCI_LINT):
	$(call go-install-tool,$(GOLANGCI_LINT),github.com/golangci/golangci-lint/v2/cmd/golangci-lint,golangci-lint,$(GOLANGCI_LINT_VERSION))

# go-install-tool installs package $(2)@$(4), whose binary is named $(3), as $(1).
define go-install-tool
@mkdir -p $(LOCALBIN)
GOBIN=$(LOCALBIN) go install $(2)@$(4)
mv $(LOCALBIN)/$(3) $(1)
endef
