# synwall — the two commands a newcomer needs:
#   make demo   lab of network namespaces, gateway, flood, legitimate clients, printed result
#   make test   every test: vet, unit/fuzz-seed/scenario tests with -race, end-to-end lab tests (root)
GO      ?= go
BIN     ?= bin/synwall
LABBIN  ?= bin/synwall-lab
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all setup build demo test bench loadtest loadtest-short synack clean generate

all: build

setup:
	./deploy/setup.sh

# synwall is the production binary; synwall-lab drives it in the
# network-namespace lab (demo, lab up|down) and is never installed.
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/synwall
	$(GO) build -o $(LABBIN) ./cmd/synwall-lab

demo: setup build
	$(LABBIN) demo --synwall $(BIN)

# The end-to-end packages create network namespaces and floods; they run one
# package at a time (-p 1) so that two floods never share the two cores.
# bench/ is a module of its own (plotting stays out of the daemon's go.mod):
# its tests, the short load test among them, run from inside it.
test: setup
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 30m -p 1 ./...
	cd bench && $(GO) vet ./... && $(GO) test -race -count=1 -timeout 30m -p 1 ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./internal/gateway/ ./internal/gateway/reference/ ./internal/cookies/ ./internal/gateway/header/ | tee bench/engine.txt

clean:
	rm -rf bin

# Rebuilds the BPF SYN stage's object and Go bindings from its C source,
# and the benchmarks' bare bounce (needs clang, llvm and libbpf-dev: make
# setup). The results are committed.
generate: setup
	$(GO) generate ./internal/synstage/
	cd bench && $(GO) generate ./internal/bounce/

# Load test (root): flood-rate sweep of SYNPROXY and synwall and synwall's
# memory under 10^3..10^6 distinct sources; writes bench/sweep.csv, the
# bench/sweep-*.png plots, bench/memory.csv and bench/LOADTEST.md (~4 min).
loadtest: setup
	cd bench && $(GO) run ./loadtest

# The short plan as CI runs it (~1 min): two sweep points, two memory
# stages, with assertions; results stay in the test's temporary directory.
loadtest-short: setup
	cd bench && $(GO) test -count=1 -v -run '^TestShort$$' -timeout 5m ./loadtest/

# SYN-path benchmark (root, ~8 min): CPU per SYN-ACK above a drop baseline
# at 50k and 150k spoofed SYN/s, IPv4 and IPv6, kernel SYNPROXY against
# synwall (NFQUEUE, and the BPF stage where built), beside the bare bounce
# that is the floor of any kernel SYN stage; writes bench/SYNACK.md.
synack: setup
	cd bench && $(GO) run ./synack
