# synwall — the two commands a newcomer needs:
#   make demo   lab of network namespaces, gateway, flood, legitimate clients, printed result
#   make test   every test: vet, unit/fuzz-seed/scenario tests with -race, end-to-end lab tests (root)
GO      ?= go
BIN     ?= bin/synwall
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all setup build demo test bench clean

all: build

setup:
	./deploy/setup.sh

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/synwall

demo: setup build
	$(BIN) demo

# The end-to-end packages create network namespaces and floods; they run one
# package at a time (-p 1) so that two floods never share the two cores.
test: setup
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 30m -p 1 ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./gateway/ ./gateway/reference/ ./cookies/ ./gateway/header/ | tee bench/engine.txt

clean:
	rm -rf bin
