// Package limit holds the token-bucket rate limiters of the packet path:
// Bucket, one limiter shared by all packets (the global SYN-ACK rate), and
// PerSource, a fixed-size table of limiters keyed by the source address
// masked to a prefix (a /24 or a /64 shares one bucket).
//
// Both run the generic cell rate algorithm (GCRA, the virtual-scheduling
// form of a token bucket): a limiter stores one "theoretical arrival time"
// and admits a packet when doing so does not push that time more than
// burst emission intervals ahead of now. This needs one int64 per bucket and
// no floating point per packet. The clock is passed in by the caller as
// nanoseconds, so tests drive it by hand.
//
// Memory is fixed at construction and never grows, whatever the traffic:
// PerSource replaces the bucket of a slot when a new prefix hashes to it.
// The slot of a prefix is chosen by a hash keyed with a random seed, so a
// sender cannot aim its spoofed sources at the slot of a victim. A replaced
// bucket starts full, so an eviction can only make the limiter more
// permissive for the evicted prefix, never lock it out.
//
// The package imports only the standard library.
package limit
