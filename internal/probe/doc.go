// Package probe learns what a guarded backend's SYN-ACK advertises, for
// services with advertise.discover: synwall answers SYNs in the server's
// place, so its SYN-ACKs must offer what the server would (MSS, window
// scale, SACK, timestamps, ECN, window), or the two ends of a proxied
// connection disagree about options the client already relied on.
//
// # How a backend is probed
//
// Probe opens one ordinary TCP connection from this host to the backend
// with a socket marked firewall.DefaultMark (0x5359, "SY"); synwall's
// rules let marked packets pass before any queue rule and exempt them from
// conntrack, so the probe reaches the real server even while synwall
// guards it. After the handshake the kernel's TCP_INFO says what was
// agreed: tcpi_options (timestamps, SACK, window scale, ECN),
// tcpi_snd_wscale, tcpi_snd_mss (the server's MSS less the timestamp
// option, which Probe adds back: 12 bytes, RFC 7323 §3.2) and, from Linux
// 6.2, tcpi_snd_wnd right after the handshake, which is the SYN-ACK's
// unscaled window (RFC 7323 §2.2). The connection is then reset (SO_LINGER
// 0), so the server keeps no TIME_WAIT or half-open state.
//
// The MSS is a lower bound of the advertised one when the path MTU towards
// the server is smaller, or when the server's window is below twice its
// MSS (Linux keeps tcpi_snd_mss at or below half the largest window,
// tcp_bound_to_half_wnd): safe to offer to clients, at the cost of segment
// size. ECN is known only when the probe asked for it, i.e. when this
// host's net.ipv4.tcp_ecn is 1 (Result.ECNAsked).
//
// # From probes to the policy
//
// Discoverer.Discover probes one target per address family and service
// (policy.ProbeTargets: the first prefix of each family at the lowest
// guarded port, the first host of a wider prefix), at most
// DiscoverParallel at once and each bounded by DiscoverTimeout (2 s), and
// merges the results into a new policy with policy.Advertise.Learn: an
// IPv4 probe sets MSS4, an IPv6 one MSS6, and what a probe does not know
// keeps the policy's explicit value. A failed probe keeps the service's
// explicit values, logs why and is counted. The daemon runs it at start
// and on every reload, on the reload's own goroutine: a slow backend
// delays the reload, never flow expiry or the counters.
package probe
