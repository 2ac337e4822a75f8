# Gyre: `make dev` runs everything on embedded defaults; `make test` runs the tests.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
TEST_TIMEOUT ?= 20m

.PHONY: all generate build test lint dev demo bench

all: generate build

## generate: regenerate Go code and the OpenAPI document from proto/ (local plugins, no network)
generate:
	find pkg/pb -name '*.pb.go' -o -name '*.pb.gw.go' -o -name '*.swagger.json' | xargs rm -f
	$(GO) tool buf generate
	$(GO) tool buf lint

## build: the gyre binary into bin/
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/gyre ./cmd/gyre

## test: every test; starts a private Postgres when GYRE_TEST_DATABASE_URL is unset
test:
	$(GO) test -timeout $(TEST_TIMEOUT) ./...

## lint: vet, gofmt, buf lint
lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) tool buf lint

## dev: every target on embedded defaults (state in .state/)
dev: build
	./bin/gyre dev --state-dir .state

## demo: play the loop against a running `make dev` (or a temporary one)
demo: build
	./bin/gyre demo

## bench: benchmarks, each reporting against a baseline measured in the same run
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
