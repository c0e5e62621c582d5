# karpenter-gpu. Karpenter v1.15.0 needs Go >= 1.26.9; the go command fetches
# this toolchain from the module proxy on first use.
export GOTOOLCHAIN := go1.27.3

BIN        := $(CURDIR)/bin
ENVTEST    := $(BIN)/k8s
export KUBEBUILDER_ASSETS := $(ENVTEST)

# -p 1: the envtest, e2e and chaos suites each run a control plane and
# time-sensitive controllers; on 2 cores they must not compete.
GO_TEST_FLAGS ?= -count=1 -timeout 40m -p 1

.PHONY: all simulate test unit envtest-bin kueue-bin prometheus-bin chart e2e generate verify vet fuzz clean help

all: test

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "%-14s %s\n", $$1, $$2}'

envtest-bin: ## build kube-apiserver, kube-scheduler and etcd from source into bin/k8s (once)
	@./tools/build-envtest.sh

kueue-bin: ## build Kueue's manager (sigs.k8s.io/kueue, tools/kueue/go.mod) and copy its CRDs into bin/kueue (once)
	@./tools/build-kueue.sh

prometheus-bin: ## build Prometheus and promtool (tools/prometheus/go.mod) into bin/prometheus for the simulator's kube-state-metrics test (once)
	@./tools/build-prometheus.sh

test: envtest-bin kueue-bin prometheus-bin vet chart ## everything CI runs: unit, property, envtest and end-to-end suites
	@cd tools/crdcheck && go test -count=1 ./... # CEL rules compiled and exercised offline
	@FUZZTIME=10s ./tools/fuzz.sh # parsers and the LP bound must not panic on any input
	@./tools/gotest.sh $(GO_TEST_FLAGS) ./... # unit, property, envtest and e2e suites; prints the totals last
	@cd test/kueue && go vet ./... && ../../tools/gotest.sh $(GO_TEST_FLAGS) ./... # Kueue end to end (its own module, ~1 min); its totals

# A busy day of the bundled trace (day 116: 27 GPU pods alive at its start,
# 158 arriving and 153 leaving within it); the whole trace (SIM_WINDOW=)
# takes much longer (see designs/simulator.md). The stock reference is cached
# under the user cache directory (--no-cache to replay it).
SIM_WINDOW ?= --start 2784h --duration 24h
simulate: ## replay the bundled Alibaba trace with karpenter-gpu and stock Karpenter side by side (ARGS=... for more flags)
	go run ./cmd/simulator --compare $(SIM_WINDOW) $(ARGS)

chart: ## helm lint + helm template of charts/karpenter-gpu into bin/rendered (builds helm once)
	@./tools/helm/lint.sh

e2e: envtest-bin kueue-bin ## only the end-to-end runs on a real control plane (test/e2e, and test/kueue with the real Kueue)
	go test -count=1 -v ./test/e2e/
	cd test/kueue && go test -count=1 -v ./...

unit: ## tests that need no API server
	go test $(GO_TEST_FLAGS) ./pkg/catalog/... ./pkg/cloudprovider/... ./pkg/packing/... ./pkg/trace/... ./providers/fake/... ./providers/aws/

vet: ## go vet
	go vet ./...

generate: ## regenerate deepcopy and the GPUNodeClass CRD; copy it and core's karpenter.sh CRDs into the chart
	./tools/codegen/generate.sh
	./tools/helm/sync-crds.sh

verify: generate ## fail when generated files are stale
	git diff --exit-code -- pkg/apis charts

fuzz: ## run every fuzz target for FUZZTIME (default 60s here, 10s in make test)
	FUZZTIME=$${FUZZTIME:-60s} ./tools/fuzz.sh

# The controller image for linux/amd64 and linux/arm64, built from the Go
# module proxy alone (tools/image: go build + go-containerregistry, empty
# base, no container runtime), written as an OCI image layout to bin/image
# and named as the chart pulls it by default; then checked by tools/image's
# tests. IMAGE_ARGS=--platforms=linux/amd64 for one platform; --help for more.
.PHONY: image
image: ## build the controller image (linux/amd64 + linux/arm64) into bin/image (OCI layout)
	cd tools/image && go run . --root $(CURDIR) $(IMAGE_ARGS)
	cd tools/image && go test -count=1 -run 'TestMakeImageLayout|TestChartDefaultsMatchImage' .

clean:
	rm -rf $(BIN)
