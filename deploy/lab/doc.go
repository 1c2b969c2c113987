// Package lab builds the network-namespace lab in which synwall is
// demonstrated and tested end to end: four namespaces (client, attacker,
// gateway, server) joined by veth pairs, with real kernel TCP stacks on
// every side.
//
//	client   198.18.1.2  2001:db8:1::2 ─┐
//	                                    ├─ gateway (.1 / ::1 on each link, forwards) ── server 198.18.3.2  2001:db8:3::2
//	attacker 198.18.2.2  2001:db8:2::2 ─┘
//
// The spoofing range 198.19.0.0/16 is routed from the gateway to the
// attacker, and the attacker's kernel-generated TCP resets are dropped by an
// iptables rule inside its namespace, as they would be for a real spoofed
// flood whose sources never answer the server's SYN-ACKs (RFC 4987 §2.2).
// Packets that a program such as hping3 writes itself are not affected, so
// RST floods still leave the attacker.
//
// The package drives iproute2 (`ip`), iptables and hping3, and opens sockets
// inside a namespace from this process (ListenIn, DialIn): the socket is
// created on a goroutine locked to an OS thread that has joined the
// namespace and never returns to the scheduler's pool, so the rest of the
// process stays in its own namespace. Servers (HTTP on port 80, a bulk
// sink/source on port 9000), legitimate load (Connect), bounded floods
// (Flood) and the synwall daemon itself (StartSynwall) are started through a
// *Lab and stopped by Down.
//
// MeasureSyn measures the SYN path of one defense (Defense: a drop rule as
// the baseline, none, kernel SYNPROXY as InstallSynproxy sets it up, or
// synwall with extra arguments): a fixed spoofed rate from the generator
// (package synflood, run in the attacker namespace as `synwall-lab
// synflood` or bench/synflood) for a bounded time, the SYN-ACKs to the
// spoofed sources counted where they arrive (a raw-table rule in the
// attacker), the whole machine's busy CPU from /proc/stat, and, with
// ExtraCPUPerSynAck, the CPU per SYN-ACK above the drop baseline. Demo runs
// it behind `synwall-lab demo` for every defense, with hping3 and
// legitimate clients besides; bench/synack makes the benchmark's table.
//
// Traffic never leaves the namespaces the lab creates, addresses come only
// from 198.18.0.0/15 (RFC 2544 benchmarking) and 2001:db8::/32 (RFC 3849
// documentation), and every flood is bounded in time and count.
package lab
