// Package bounce is the floor of a kernel SYN stage for the benchmarks: a
// tc program (bpf/bounce.c) that turns each SYN into a SYN-ACK in place and
// hands it back through the lab veth's peer, the way synwall's stage
// answers there, with none of its work (cookie, policy, limits, SYN cache).
// bench/synack measures it beside the defenses, so that the cost of the
// path itself shows in every run.
//
// The object is generated and committed (`go generate ./internal/bounce/`
// in bench, with clang); TestObjectSources notices a source changed since.
package bounce

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go@v0.22.0 -tags linux -target bpfel bounce bpf/bounce.c -- -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu -mcpu=v3 -Wall -Werror
//go:generate sh -c "sha256sum bpf/bounce.c > bpf/bounce.sha256"
