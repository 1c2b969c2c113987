// Package gateway is synwall's engine: a pure function from a packet taken
// from the kernel to a verdict and the packets to send. It sanitizes flags,
// answers SYNs with SYN cookies as a transparent SYN proxy (RFC 4987 §3.8),
// keeps a SYN cache in keyed, randomized buckets (RFC 4987 §3.5), admits
// clients that complete the handshake, opens the server side with the
// client's own ISN and options, and translates sequence numbers, SACK blocks,
// timestamps and windows for the life of the flow, fixing checksums
// incrementally (RFC 1624).
//
// The engine never touches a socket. Memory is fixed when it is built; the
// per-packet path does not allocate.
//
// # Shape
//
// An Engine holds what workers share: the cookie Jar, the SYN cache, the
// flow table (which owns the flows' timeouts, their counters and the pool
// of held client data), the policy and its rate limiters (swapped together
// through an atomic pointer) and the handshake counters. Each queue
// goroutine owns a Worker, whose buffers hold the packets a Process call
// builds. Locks are per SYN-cache bucket and per flow-table bucket; a flow
// bucket's lock may be held while taking a cache bucket's lock or the
// pending pool's, never the other way round. Data segments of established
// flows (no SYN, FIN or RST) take no lock: each flow-table slot has a view
// of what translation needs, in atomics, which the lock holder publishes
// when the flow is established and withdraws before anything in it
// changes, under a per-slot sequence count; a reader that sees the count
// move, or a view the lock holder has not seen for a millisecond, takes the
// lock instead. The lock-free path writes nothing shared, so idle expiry
// counts from the last locked packet, at most a millisecond (or half the
// idle timeout) early.
//
// Byte offsets of headers are known to package header alone: the engine
// reads through its views (header.Parse, and header.Peek for the early
// drop), rewrites fields through header.ChecksumDelta, which keeps the
// checksum right (RFC 1624), and builds packets through its named offsets.
//
// # Files
//
//   - engine.go: Config, New, SetPolicy, Stats, Expire.
//   - process.go: Worker.Process: the early drop of invalid flags, the
//     header checks, the service lookup and its per-worker cache, modes,
//     and the hand-off to one side or the other.
//   - client.go: the client side: the SYN and its cookie SYN-ACK, the ACK
//     that completes the client's handshake and opens the server side,
//     client segments while the server has not answered (held data).
//   - server.go: the server side: the server's SYN-ACK (the flow is up),
//     its refusal, its segments afterwards.
//   - translate.go: rewriting segments of established flows both ways, and
//     their FINs and RSTs.
//   - flows.go: the flow table, its lock-free views, keys and hash,
//     expiry; pending.go: the pool of held client data.
//   - syncache.go: the SYN cache; limits.go: the policy's rate limiters;
//     build.go: packets the engine sends; state.go: the state file of a
//     graceful restart; capacity.go: how full the tables are.
//
// Tests are named after the file they cover; engine_test.go runs whole
// connections, helpers_test.go crafts and decodes packets with gopacket.
//
// # Store forwarding
//
// On the per-packet path, structs that are read soon after being written
// (a flow's key and fields, a SYN's options, a translation's view, a
// tuple) are filled a field at a time, in place, never built as a
// composite literal and copied: the compiler builds a literal aside with
// narrow stores and copies it with wide loads, and a load that spans
// several stores still in the store buffer cannot be forwarded from them
// and waits until they retire (a store-forwarding stall, some ten cycles
// each on current x86 cores). For the same reason build.go sums a checksum
// from the values it writes, not from the bytes it just wrote. Comments
// that say "doc.go: store forwarding" point here.
//
// # Decisions
//
//   - The SYN cache bucket is taken from the MAC bits of the entry's cookie
//     (cookies.MAC), a SipHash under a secret key of tuple, client ISN and
//     counter, so nobody can aim SYNs at one bucket, one keyed hash serves
//     both cookie and bucket, and the handshake ACK (cookie = ack-1) names
//     its bucket; 512 buckets × 30 entries by default (FreeBSD). A
//     retransmitted SYN within a cookie period gets the same cookie and
//     finds its entry; after a period tick it gets a new cookie and entry,
//     and the old entry still serves an ACK of the first SYN-ACK. A
//     full bucket drops its oldest entry. Every SYN-ACK sequence number is a
//     cookie, so an evicted entry only costs precision: the MSS comes back
//     as its class, window scale, SACK and ECN from the low bits of our
//     TSval when the client echoes timestamps, and are lost otherwise (as
//     with Linux syncookies). An entry keeps the tuple's seeded 64-bit hash
//     (the flow table's), not the tuple, so that it takes half a cache line;
//     it serves only a tuple with that hash whose cookie names it.
//   - A handshake ACK whose TSecr does not echo a TSval we could have sent
//     while the cookie was valid is a bad cookie.
//   - The flow table is keyed by the client-side tuple, with buckets of
//     FlowBucketSize slots; a full bucket evicts an expired flow, else its
//     least recently used one (counted). Lookups treat expired flows as
//     absent and remove them; Expire sweeps the rest.
//   - Client data that arrives before the server's SYN-ACK (on the
//     handshake ACK or after it) is held, up to MaxPendingPerFlow segments
//     of PendingSize bytes from a fixed pool, and replayed after the ACK
//     that completes the server's handshake; what does not fit is dropped
//     and counted, and the client resends it. Client segments more than
//     Config.SynRetransmit after our SYN resend it.
//   - A client RST while the server has not answered removes the flow and
//     goes on as a bare RST with the client's sequence number, which tears
//     down a half-open connection on the server (RFC 9293 §3.10.7.4) and is
//     ignored otherwise.
//   - A server RST during the handshake becomes an RST to the client from
//     the server's address with the cookie's sequence number.
//   - Window scale is offered to the client only if it sent one (RFC 7323
//     §2.2), and to the server only if agreed with the client. When the
//     server's real scale differs from the one our SYN-ACK offered (or
//     scaling is off on one side), window fields are converted both ways;
//     otherwise they pass untouched.
//   - Rewritten packets always leave with a complete checksum: fixed
//     incrementally (RFC 1624) when it was complete, computed over the whole
//     segment when the kernel had not completed it (Meta.CsumNotReady: GSO
//     super-packets, packets forwarded from a veth), because the kernel takes
//     an altered packet's checksum as final (queue/doc.go).
//   - A SYN on the tuple of a closing flow removes it; on an established
//     flow it is answered, and the flow is replaced only when a valid ACK
//     for the new ISN arrives.
//   - Unknown ACKs, RSTs and FINs, and server packets without a flow, are
//     dropped: they never reach the server or the client.
package gateway
