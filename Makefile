# coffer: make build | test | demo | lint
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/coffer-csi/coffer/internal/version.Version=$(VERSION)
BIN      := bin
export GOFLAGS ?= -mod=readonly

.PHONY: all build test unit lint demo clean

all: build

## build: the coffer binary and the AWS fake, into ./bin
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/coffer ./cmd/coffer
	$(GO) build -o $(BIN)/fakeaws ./tests/fakeaws/cmd/fakeaws

## test: lint, then every unit and integration test with the race detector
test: lint unit

unit:
	$(GO) test -race -count=1 ./...

## lint: gofmt and go vet must be clean
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## demo: start the bundled AWS fake with example secrets and mount them with coffer
demo: build
	./scripts/demo.sh

clean:
	rm -rf $(BIN)
