package synstage

// The BPF object and its Go bindings (synstage_bpfel.go, synstage_bpfel.o)
// are generated from bpf/synstage.c and committed, so that building and
// testing need no clang. `make generate` (or `go generate ./internal/synstage/`)
// rebuilds them; TestObjectFresh notices a stale object where clang exists.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go@v0.22.0 -tags linux -target bpfel -type synstage_counter -type synstage_flags -type synstage_state -type synstage_key -type synstage_policy -type synstage_lpm_key -type synstage_mode -type synstage_adv -type synstage_range -type synstage_ports -type synstage_limit_key synstage bpf/synstage.c -- -I/usr/include/x86_64-linux-gnu -mcpu=v3 -Wall -Werror
