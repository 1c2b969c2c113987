// Package observe watches what the engine decides, packet by packet, and
// keeps what an operator needs to see during an attack, in fixed memory and
// without allocating per packet:
//
//   - the most attacked services (destination address and port) and the
//     busiest source prefixes, separately for SYNs answered and for drops,
//     with a Space-Saving heavy-hitter table of fixed size per worker, fed
//     1 packet in 8 by default (Config.TopEvery; counts scaled back up)
//     (Metwally, Agrawal, El Abbadi, "Efficient Computation of Frequent and
//     Top-k Elements in Data Streams", 2005). Source prefixes are IPv4 /24
//     and IPv6 /48: a /48 is what one site is normally given (RFC 6177
//     §3), so an attacker rotating through the /64s of its site still shows
//     as one prefix. The tables are halved at the end of every window, so
//     they follow the current attack and forget old ones;
//   - for every drop class (each header.Reason, policy drops, rate limits,
//     bad and expired cookies, packets of no flow) a count and an estimate
//     of the distinct source addresses of the current window, by linear
//     counting on a fixed bitmap under a keyed SipHash (Whang, Vander-Zanden,
//     Taylor, "A Linear-Time Probabilistic Counting Algorithm for Database
//     Applications", 1990), reset every window;
//   - a bounded sample of dropped packets for a pcapng file (Sampler): a
//     token bucket, a fixed ring of packet copies and a writer goroutine that
//     rotates files at a size limit and keeps a fixed number of them;
//   - a sampled histogram of the time the engine spends per packet.
//
// A Worker wraps the processor of one queue worker and is used by that
// worker's goroutine only; Observer.Snapshot and Observer.Rotate merge the
// workers' state. WindowReport.Log writes at most one line per class and
// window, so a flood cannot flood the log.
package observe
