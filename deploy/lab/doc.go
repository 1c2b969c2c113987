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
// Demo runs the comparison behind `synwall-lab demo`: a SYN flood against an
// unprotected server, then the same flood against the server behind synwall.
//
// Traffic never leaves the namespaces the lab creates, addresses come only
// from 198.18.0.0/15 (RFC 2544 benchmarking) and 2001:db8::/32 (RFC 3849
// documentation), and every flood is bounded in time and count.
package lab
