// Package header holds zero-allocation views of IPv4, IPv6 and TCP headers and
// TCP options, Internet checksums (RFC 1071, and incremental updates per RFC
// 1624 through ChecksumDelta), and the sanity rules for TCP flags that
// synwall applies before it touches any state.
//
// It is the only code in synwall that knows byte offsets: the views' accessors
// read fields, the named offsets (TCPSeqNumOffset, IPv4SrcOffset, ...) let a
// builder or a ChecksumDelta write them, and everything else goes through
// these.
//
// Bounds contract: Parse validates every length once, at the edge; after a
// nil-reason Parse the accessors of the views it returned do not check bounds
// again. A view built by hand must be long enough for what is read.
//
// Parse checks structure only: IP version, IPv4 IHL and total length, IPv6
// payload length and extension header chain (RFC 8200 §4; a routing header
// with segments left is refused, since the fixed header then names a
// waypoint, not the destination the lookup and checksum need), fragments, the
// TCP data offset and option lengths. It verifies no checksum and judges no
// flags; CheckFlags does that, knowing the direction. Every rejection is a
// Reason, a small enum with a snake_case String for metrics.
//
// Peek is the cheap read before Parse: the addresses from the fixed IP
// header and, when TCP follows it directly and the packet is no fragment,
// the ports and flags, checking no more than it reads. The engine's early
// drop of invalid flags and the observer's per-source counters use it.
//
// IPv6 jumbograms (RFC 2675, payload length 0) are not supported: Parse
// finds no room for the TCP header in them (Truncated or BadExtHeader).
//
// The package depends on nothing of synwall's.
package header
