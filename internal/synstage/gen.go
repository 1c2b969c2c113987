package synstage

// The BPF object and its Go bindings (synstage_bpfel.go, synstage_bpfel.o)
// are generated from bpf/synstage.c and committed, so that building and
// testing need no clang. `make generate` (or `go generate ./internal/synstage/`)
// rebuilds them and records the hash of the C sources in bpf/synstage.sha256;
// TestObjectSources notices sources changed since, and TestObjectFresh
// rebuilds the object where clang exists and compares it byte for byte.
//
// The enums and structs named with -type are the layouts shared with Go
// (bpf/synstage.h). The object is built for little-endian targets only: the
// program reads the cookie message as little-endian words, as the Go
// cookies package does.
//
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go@v0.22.0 -tags linux -target bpfel -type synstage_counter -type synstage_flags -type synstage_state -type synstage_key -type synstage_policy -type synstage_lpm_key -type synstage_mode -type synstage_adv -type synstage_range -type synstage_ports -type synstage_limit_key -type synstage_limit_config -type synstage_cache_entry -type synstage_cache_config -type synstage_sample -type synstage_sample_config synstage bpf/synstage.c -- -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu -mcpu=v3 -Wall -Werror
//go:generate sh -c "sha256sum bpf/synstage.c bpf/synstage.h > bpf/synstage.sha256"
