// Command loadtest measures netfilter SYNPROXY and synwall under spoofed
// SYN floods of growing rate, and synwall's memory under floods from a
// growing number of distinct sources, in one namespace lab (deploy/lab).
//
//	cd bench && go run ./loadtest [-short] [-out .] [-rates 10000,20000,...] [-stages 1000,...]
//
// It runs from bench/, the bench module's directory (as make loadtest does),
// and builds synwall from the repository root (../cmd/synwall).
//
// Sweep: for each defense (SYNPROXY configured by the book in the gateway,
// then `synwall run` on its embedded default policy; both in front of the
// same weak server as bench/compare) and each flood rate, the project's
// generator (bench/synflood) sends spoofed SYNs from random sources of
// 198.19.0.0/16 (10k to 300k pps, as far as the generator gets here),
// which the lab routes to the attacker namespace, for a
// bounded time (8 s; 3 s with -short) while the client makes short HTTP
// connections spread over the flood. Measured per point: legitimate
// success rate and connect time p50/p99, SYN-ACKs per second by the
// defense's own counter (synwall events.syn_answered, SYNPROXY
// syn_received) and as the attacker namespace receives them, the machine's
// CPU (the gateway namespace has no CPU of its own), synwall's CPU time and
// resident memory, and kernel queue drops (synwall only).
//
// Memory: a fresh synwall, then floods of exactly N distinct sources per
// stage (10^3 … 10^6; 10^3 and 10^5 with -short). 198.19.0.0/16 holds
// 65536 addresses, so beyond that the distinct sources are distinct
// (address, port) pairs — what synwall's SYN cache keys on. After each
// stage: VmRSS, VmHWM and the Go heap (from synwall's Prometheus metrics).
//
// Output in -out: sweep.csv, sweep-success.png, sweep-p99.png,
// sweep-synacks.png, memory.csv and LOADTEST.md (tables, machine, command).
// Every flood is bounded in count and time, sources and destinations lie
// in 198.18.0.0/15, and the lab is removed on exit, error or Ctrl-C. It
// needs root, iproute2, iptables and curl.
package main
