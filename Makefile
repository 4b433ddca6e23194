# coffer: make build | test | e2e | demo | lint
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/coffer-csi/coffer/internal/version.Version=$(VERSION)
# grpcnotrace: gRPC without golang.org/x/net/trace and its HTML debug pages,
# which coffer never serves (less binary, so less memory in every DaemonSet
# pod); the Dockerfile and hack/image (BuildTags) build the same way.
TAGS     := grpcnotrace
BIN      := bin
export GOFLAGS ?= -mod=readonly

.PHONY: all build test unit lint fuzz align-modules e2e bench bench-hostile bench-fleet demo clean manifests deploy-test image image-docker node-test tools-test

all: build

## build: the node's binary (coffer), the controller's (coffer-controller) and the AWS fake,
## into ./bin
build:
	CGO_ENABLED=0 $(GO) build -trimpath -tags $(TAGS) -ldflags '$(LDFLAGS)' -o $(BIN)/coffer ./cmd/coffer
	CGO_ENABLED=0 $(GO) build -trimpath -tags $(TAGS) -ldflags '$(LDFLAGS)' -o $(BIN)/coffer-controller ./cmd/coffer-controller
	$(GO) build -o $(BIN)/fakeaws ./tests/fakeaws/cmd/fakeaws

## test: lint, and every unit and integration test with the race detector. Every fuzz
## target's committed corpus (seeds in the code and testdata/fuzz) runs as ordinary tests:
## the same commit always gives the same answer. Exploration is make fuzz.
test: lint unit

## unit: every package's own tests, the whole-stack suite (tests/socket), fakeaws and docs
unit:
	$(GO) test -race -count=1 ./...

## fuzz: explore every fuzz target for FUZZTIME each (default 30s; make fuzz FUZZTIME=10m).
## Run it before stopping; every input it finds is a bug: fix it, and commit the input
## (written under the package's testdata/fuzz) as a seed, so make test runs it from then on.
FUZZTIME ?= 30s
FUZZ_TARGETS := \
	FuzzCheckFilePath:./provider/spc FuzzParse:./provider/spc FuzzParseARN:./provider/spc \
	FuzzParseAttributes:./provider/spc FuzzRender:./provider/render FuzzToken:./auth FuzzSessionName:./auth \
	FuzzParseDeclaration:./secretsync FuzzTemplate:./secretsync FuzzTemplateFile:./provider/render \
	FuzzAttackClass:./provider/render FuzzAttackDeclaration:./secretsync \
	FuzzConvert:./secretsync/esoconvert FuzzDecode:./provider/changes FuzzParse:./changefeed
# Go's fuzzer sometimes ends a short run with a bare "context deadline
# exceeded" when -fuzztime runs out while it minimizes an input (no failing
# input is written): such a run is tried once more; any real failure fails.
fuzz:
	@set -e; log=$$(mktemp); trap 'rm -f $$log' EXIT; for t in $(FUZZ_TARGETS); do \
	  name=$${t%%:*}; pkg=$${t#*:}; \
	  echo "fuzz $$name ($$pkg) for $(FUZZTIME)"; \
	  if $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg >$$log 2>&1; then cat $$log; else \
	    cat $$log; \
	    if grep -q 'context deadline exceeded' $$log && ! grep -q 'Failing input written' $$log; then \
	      echo "fuzz $$name: the fuzzer's own deadline error, not a failing input; once more"; \
	      $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
	    else exit 1; fi; \
	  fi; \
	done

## lint: gofmt, go vet and staticcheck (installed into ./bin at a pinned version) must be clean
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(BIN)/tools/staticcheck-$(STATICCHECK_VERSION)
$(STATICCHECK):
	@mkdir -p $(BIN)/tools
	GOFLAGS= GOBIN=$(CURDIR)/$(BIN)/tools $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(BIN)/tools/staticcheck $@

lint: $(STATICCHECK)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

## e2e: end-to-end suite with the real Secrets Store CSI Driver, kube-apiserver and
## kube-controller-manager (as root: the driver mounts tmpfs). The first run builds
## them into ~/.cache/coffer/e2e (measured cold: 47 minutes on a busy 2-core VM, 18 minutes of
## CPU time); later runs take minutes. One scenario: make e2e E2E_RUN=TestRotation
E2E_ENV := $(BIN)/e2e.env
E2E_RUN ?= .
e2e:
	@if [ "$$(id -u)" != 0 ]; then \
	  echo "make e2e: must run as root: the CSI driver mounts a tmpfs for every volume, as on a node (CI runs as root). Try: sudo make e2e" >&2; \
	  exit 1; fi
	@mkdir -p $(BIN)
	tests/e2e/hack/provision.sh > $(E2E_ENV)
	$(MAKE) build
	cd tests/deploy && $(GO) run ./cmd/policies -values 'sync: {atMount: true, controller: {enabled: true, restarts: {enabled: true}}}' > $(CURDIR)/$(BIN)/e2e-policies.json
	cd tests/e2e && $(GO) vet ./...
	cd tests/e2e && env $$(cat $(CURDIR)/$(E2E_ENV)) \
	  E2E_COFFER=$(CURDIR)/$(BIN)/coffer E2E_COFFER_CONTROLLER=$(CURDIR)/$(BIN)/coffer-controller E2E_FAKEAWS=$(CURDIR)/$(BIN)/fakeaws E2E_POLICIES=$(CURDIR)/$(BIN)/e2e-policies.json \
	  $(GO) test -count=1 -v -timeout 15m -run '$(E2E_RUN)' ./...

## bench: the provider benchmark (real binary over its socket, AWS fake with 20 ms per call):
## prints a markdown table and JSON, writes tests/bench/results.{md,json} with the commit measured
## and each figure's median and spread over BENCH_RUNS runs (about 13 minutes a run on 2 cores,
## most of it S6, paced by the node's AWS budget); then microbenchmarks.
## ASCP_BIN=/path/to/ascp measures AWS's provider beside coffer (build it with
## ../shared/peers/build-ascp.sh; it runs in a mount namespace of its own, so as root)
BENCH_RUNS ?= 3
ASCP_BIN ?=
bench: build
	COFFER_BENCH_RUNS=$(BENCH_RUNS) COFFER_BENCH_REPORT=$(CURDIR)/tests/bench/results COFFER_BIN=$(CURDIR)/$(BIN)/coffer ASCP_BIN=$(if $(ASCP_BIN),$(abspath $(ASCP_BIN))) \
	  $(GO) test -count=1 -run '^TestReport$$' -v -timeout $$(( $(BENCH_RUNS) * 20 + 10 ))m ./tests/bench/
	$(GO) test -run '^$$' -bench . -benchmem ./provider/...

## bench-hostile: S9 alone (six hostile classes mounting at once beside a benign pod of
## another namespace), written to tests/bench/hostile.{md,json}; about a minute
bench-hostile: build
	COFFER_HOSTILE_REPORT=$(CURDIR)/tests/bench/hostile COFFER_BIN=$(CURDIR)/$(BIN)/coffer \
	  $(GO) test -count=1 -run '^TestHostileReport$$' -v -timeout 10m ./tests/bench/

## bench-fleet: the fleet simulation (tests/bench/fleet_test.go, events_test.go): simulated
## nodes, each with coffer's real mount, credential and cache code, against the AWS fake enforcing
## the account's quotas, at FLEET_NODES nodes, beside a model of AWS's provider's calls, then with
## change events; writes tests/bench/fleet.{md,json} with the commit measured, and the plot
## tests/bench/fleet.png (about 25 minutes on 2 cores)
FLEET_NODES ?= 1000,2000,5000
bench-fleet:
	COFFER_FLEET_NODES=$(FLEET_NODES) COFFER_FLEET_REPORT=$(CURDIR)/tests/bench/fleet \
	  $(GO) test -count=1 -run '^TestFleet$$' -v -timeout 60m ./tests/bench/
	cd tests/bench/fleetplot && $(GO) run . -in ../fleet.json -out ../fleet.png

## align-modules: one version of each dependency in every go.mod of the repository (the go
## command's selection over all modules at once, then tidy); tests/modules checks it in make test
align-modules:
	./hack/align-modules.sh

## manifests: write the plain installer deployment/coffer.yaml (and its copy in the Kustomize
## base) from the Helm chart; make deploy-test fails when they are stale
manifests:
	cd tests/deploy && $(GO) run ./cmd/manifests

## deploy-test: check everything under deployment/ and the Dockerfile (tests/deploy): the chart
## rendered with the Helm SDK for many value sets, the installer, Kustomize, Flux and the
## examples, server-side dry-run against a real kube-apiserver (provisioned as for make e2e;
## no root needed); IAM policies against the AWS fake; the image's build stage, emulated
DEPLOY_ENV := $(BIN)/deploy.env
deploy-test:
	@mkdir -p $(BIN)
	tests/deploy/hack/provision.sh > $(DEPLOY_ENV)
	cd tests/deploy && $(GO) vet ./...
	cd tests/deploy && env $$(cat $(CURDIR)/$(DEPLOY_ENV)) DEPLOY_REQUIRE_APISERVER=1 \
	  $(GO) test -count=1 -timeout 15m ./...

## image: coffer's container image, built from source with no Docker daemon and no registry
## (hack/image, with go-containerregistry): two static binaries (coffer, coffer-controller), a CA bundle, the nonroot user
## and the entrypoint, as the Dockerfile gives, written to bin/coffer-image.tar, tagged
## $(IMAGE):$(VERSION). `docker load`, `ctr images import`, `skopeo copy docker-archive:`
## and `crane push` take it (see docs/install.md, "Build from source and the image").
IMAGE ?= ghcr.io/coffer-csi/coffer
IMAGE_ARCHIVE := $(BIN)/coffer-image.tar
image:
	@mkdir -p $(BIN)
	cd hack/image && $(GO) run ./cmd/image -repo $(CURDIR) -version $(VERSION) \
	  -revision "$$(git rev-parse HEAD 2>/dev/null)" -ref $(IMAGE):$(VERSION) -out $(CURDIR)/$(IMAGE_ARCHIVE)

## tools-test: the image builder's tests (they build the image and check the archive's content)
## and the shared cluster harness's
tools-test:
	cd hack/image && $(GO) test -count=1 ./...
	cd tests/harness && $(GO) test -race -count=1 ./...

## image-docker: the same image with Docker, from the Dockerfile
image-docker:
	docker build --build-arg VERSION=$(VERSION) -t $(IMAGE):$(VERSION) .

## node-test: the node tier (tests/node, as root): a one-node cluster with a real kubelet,
## containerd, runc and CNI bridge; the CSI driver and coffer installed by their Helm
## charts from images built here; real pods; Flux's own controllers reconciling deployment/flux
## (TestFlux). One scenario: make node-test NODE_RUN=TestReadFiles
NODE_ENV := $(BIN)/node.env
NODE_RUN ?= .
node-test:
	@if [ "$$(id -u)" != 0 ]; then \
	  echo "make node-test: must run as root: it runs kubelet and containerd, mounts and network namespaces (CI runs as root). Try: sudo make node-test" >&2; \
	  exit 1; fi
	@mkdir -p $(BIN)
	@# Exit status 3: a part cannot be had on this machine (provisioning names it).
	@# Under CI=true that fails the run: CI has ../shared/peers, so nothing may be missing.
	@rc=0; tests/node/hack/provision.sh > $(NODE_ENV) || rc=$$?; \
	  if [ $$rc = 3 ]; then \
	    if [ "$$CI" = true ]; then echo "make node-test: BLOCKED under CI=true: failing the run (see above)" >&2; exit 1; fi; \
	    echo "make node-test: BLOCKED, not run (see above)"; exit 0; fi; \
	  [ $$rc = 0 ] || exit $$rc; \
	  set -e; $(MAKE) build image VERSION=$(VERSION); \
	  cd tests/node && $(GO) vet ./... && env $$(cat $(CURDIR)/$(NODE_ENV)) \
	  NODE_COFFER_IMAGE=$(CURDIR)/$(IMAGE_ARCHIVE) NODE_COFFER_VERSION=$(VERSION) \
	  NODE_FAKEAWS=$(CURDIR)/$(BIN)/fakeaws NODE_REPO=$(CURDIR) \
	  $(GO) test -count=1 -v -timeout 25m -run '$(NODE_RUN)' ./...

## demo: start the bundled AWS fake with example secrets and mount them with coffer
demo: build
	./scripts/demo.sh

clean:
	rm -rf $(BIN)
