// Package synflood is the lab's fast, bounded generator of spoofed TCP
// SYNs: it writes whole IPv4 or IPv6 packets to a raw socket (AF_INET or
// AF_INET6, SOCK_RAW, IPPROTO_RAW) in sendmmsg batches of 64 from reused
// buffers, each SYN from a random address of a source prefix and a random
// port, with the options a Linux client sends (MSS, SACK-permitted,
// timestamps, window scale) and valid checksums.
//
// It lives in the root module beside the lab (deploy/lab) so that both the
// lab's own binary (`synwall-lab synflood`, which `make demo` runs in the
// attacker namespace) and the benchmark module (bench/synflood, a thin main
// over Command) use the same builder, sender and bounds. It is never linked
// into the production synwall.
//
// Sources and destination must lie inside 198.18.0.0/15 (RFC 2544
// benchmarking addresses) or 2001:db8::/32 (RFC 3849), both of the same
// family; anything else is refused. The lab routes 198.19.0.0/16 and
// 2001:db8:ff::/48 (DefaultSources) to its attacker namespace, so the
// answers go back there and are dropped. IPv6 SYNs carry a random flow
// label and MSS 1440. With a distinct count N the sources are exactly N
// distinct (address, port) pairs of the prefix, each used once before any
// repeats: the prefix has only so many addresses (65536 in a /16), and a
// SYN cache keys on the whole tuple. Every run is bounded both in time (at
// most MaxDuration) and in packets (at most MaxCount; by default rate ×
// duration), and is paced by a token bucket refilled per batch. Command
// prints the packets sent and the achieved rate at the end:
//
//	synflood: sent 1000000 packets in 10.000s: 100000 pps (rate 100000, send errors 0)
package synflood
