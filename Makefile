# aws-auth-guardian. `make run` runs the operator against a local control
# plane; `make test` runs every test. Tools are pinned here and installed
# into ./bin; the control plane is built from Go modules (hack/).

CONTROLLER_TOOLS_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION    ?= v2.15.0
IMG                      ?= aws-auth-guardian:dev

# What bin/manager version and the start log say.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
VERSION_PKG     := github.com/aws-auth-guardian/aws-auth-guardian/internal/version
VERSION_LDFLAGS := -X $(VERSION_PKG).version=$(VERSION) -X $(VERSION_PKG).commit=$(COMMIT) -X $(VERSION_PKG).date=$(shell date -u +%Y-%m-%dT%H:%M:%SZ)

BIN            := $(CURDIR)/bin
CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
GOLANGCI_LINT  := $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
KUBECTL        := $(BIN)/kubectl
export KUBEBUILDER_ASSETS := $(BIN)/controlplane

# Plain `make` says what there is to do.
.DEFAULT_GOAL := help

# Every Go module: make lint covers them all.
GO_MODULES := . test/oracle test/deploy test/bench test/alerts hack/controlplane

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRD and RBAC from markers.
	$(CONTROLLER_GEN) rbac:roleName=aws-auth-guardian-manager crd paths="./..." output:crd:artifacts:config=config/crd/bases

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: verify-gen
verify-gen: $(CONTROLLER_GEN) ## Fail when the generated files differ from what the markers generate.
	@sums() { find api config -type f -print0 | sort -z | xargs -0 sha256sum; }; \
	before=$$(sums); $(MAKE) -s manifests generate; \
	[ "$$before" = "$$(sums)" ] || { echo "generated files were stale: 'make manifests generate' has now rewritten them; review and commit" >&2; exit 1; }

.PHONY: fmt
fmt: ## Run gofmt.
	gofmt -l -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

# --allow-parallel-runners: a golangci-lint of another checkout on the same
# machine holds a lock in the temp dir, which would fail this one.
.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint on every module (.golangci.yml).
	@for m in $(GO_MODULES); do \
		echo ">> golangci-lint in $$m"; \
		(cd $$m && $(GOLANGCI_LINT) run --allow-parallel-runners --config $(CURDIR)/.golangci.yml ./...) || exit 1; \
	done

.PHONY: controlplane
controlplane: ## Build kube-apiserver, etcd and kubectl into bin/controlplane (6 to 20+ minutes once, then cached).
	@hack/build-controlplane.sh

# go vet and go build download what they need without a word, then compile
# it: on a fresh clone, the longest silences of make test and make run.
# Times are for 2 cores shared with other work (load 2 to 3).
.PHONY: modules
modules: ## Download the operator's Go modules (once; then instant).
	@echo ">> go mod download: the operator's Go modules (227 MB: 3s measured on this proxy; minutes on a slow one; instant once cached)"
	@start=$$(date +%s) && go mod download && \
	echo ">> modules ready in $$(( $$(date +%s) - start ))s; the first go vet or go build then compiles them once, silently (108-125s measured on 2 cores; near 20 min seen on a loaded machine)"

.PHONY: test
test: modules verify-gen vet controlplane ## Every test: unit, fuzz seeds, the authenticator's own parser, envtest, the deploy manifests, the alert rules and dashboard, make run's script, a short chaos run.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed" >&2; exit 1; }
	@echo ">> go test ./...: unit, fuzz seeds, envtest, make run's script, a short chaos run (104s measured with a warm build cache; about 30s more cold)"
	go test -count=1 ./...
	@echo ">> test/oracle: every render read back by the EKS authenticator's own parser (18s measured warm; its own modules, about 2 min cold)"
	cd test/oracle && go mod download && go test -count=1 ./...
	@echo ">> test/deploy: config/default (kustomize) and the chart (Helm) applied to an API server (14s measured warm; its own modules, about 2 min cold)"
	cd test/deploy && go mod download && go vet ./... && go test -count=1 ./...
	@echo ">> test/alerts: every alert rule evaluated by Prometheus's rule engine, every rule and dashboard query checked against the metrics the operator exports (2s measured warm; its own modules: 85s measured with an empty build cache)"
	cd test/alerts && go mod download && go vet ./... && go test -count=1 ./...

.PHONY: chart-sync
chart-sync: ## Refresh the chart's copies of config/ (the deploy test fails while they differ).
	cd test/deploy && go test -count=1 -run TestChartFilesMatchConfig -update .

.PHONY: bench
bench: controlplane build ## The real binary measured: heal latency (also with the access entry target on: EKS answering, hanging, slow), outages, bursts, scale, memory, requests at rest, access entries under faults and with EKS slow; BENCH_SIZES=1000,3000 adds them converged from nothing, at rest and repaired (7 more minutes); writes docs/benchmarks.md (about 15 minutes).
	hack/bench.sh

.PHONY: chaos
chaos: controlplane build ## The real binary under random operations, kill -9, leader takeovers, API server restarts, and access entries under 500 random changes with kill -9 and EKS faults (about 6 minutes).
	CHAOS_MANAGER_BINARY=$(BIN)/manager hack/chaos.sh

.PHONY: fuzz
fuzz: ## Fuzz render and parse for a while each.
	go test -run='^$$' -fuzz=FuzzRender -fuzztime=60s ./internal/awsauth
	go test -run='^$$' -fuzz=FuzzParse -fuzztime=60s ./internal/awsauth

##@ Build

.PHONY: build
build: manifests generate ## Build bin/manager, stamped with its version (bin/manager version).
	go build -ldflags "$(VERSION_LDFLAGS)" -o $(BIN)/manager .

# EKS=fake (make passes a command-line variable on to the script's
# environment) also serves a fake EKS and IAM on loopback, and the
# operator writes the samples' access entries there; no AWS account is used.
.PHONY: run
run: modules build controlplane ## Run bin/manager against a local control plane with config/policy and config/samples; prints what to try. EKS=fake adds a fake EKS and IAM, for access entries.
	hack/run-local.sh

.PHONY: docker-build
docker-build: ## Build the image (needs a Docker engine).
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t $(IMG) .

##@ Deployment (current kubeconfig)

.PHONY: install
install: manifests controlplane ## Install the CRD.
	$(KUBECTL) apply -f config/crd/bases

.PHONY: uninstall
uninstall: manifests controlplane ## Remove the CRD (and with it every mapping: see the README first).
	$(KUBECTL) delete -f config/crd/bases

.PHONY: deploy
deploy: manifests controlplane ## Deploy the operator, with the image IMG.
	$(KUBECTL) kustomize config/default | sed 's|image: aws-auth-guardian:dev|image: $(IMG)|' | $(KUBECTL) apply -f -

.PHONY: undeploy
undeploy: controlplane ## Remove the operator and its policies; the CRD, the mappings and aws-auth stay.
	$(KUBECTL) delete --ignore-not-found -k config/policy
	$(KUBECTL) delete --ignore-not-found -k config/rbac
	$(KUBECTL) delete --ignore-not-found -k config/manager

##@ Tools

# Each tool is built from source once per version (no binary downloads here).
$(CONTROLLER_GEN):
	@mkdir -p $(BIN)
	@echo ">> installing controller-gen $(CONTROLLER_TOOLS_VERSION) into bin/ (download and build, once: 56s measured with empty caches)"
	GOBIN=$(BIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(BIN)/controller-gen $@

$(GOLANGCI_LINT):
	@mkdir -p $(BIN)
	@echo ">> installing golangci-lint $(GOLANGCI_LINT_VERSION) into bin/ (download and build, once: 101s measured with empty caches)"
	GOBIN=$(BIN) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(BIN)/golangci-lint $@

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ { printf "  %-14s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)
