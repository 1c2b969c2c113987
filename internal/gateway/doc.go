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
//   - outbound.go: guarded servers' own connections; icmp.go: ICMP errors
//     that quote a server's translated segment.
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
//     TSval when the client echoes timestamps. An entry keeps the tuple's
//     seeded 64-bit hash (the flow table's), not the tuple, so that it
//     takes half a cache line; it serves only a tuple with that hash whose
//     cookie names it.
//   - A client without timestamps has nowhere but the cache to keep window
//     scale, SACK and ECN, and the two sides of a connection must never
//     disagree on them (a server that reads a scaled window unscaled sends
//     2^shift times slower). Its SYN-ACK offers them only with a pinned
//     entry, which the bucket keeps until the cookie has expired; when
//     every entry of the bucket is pinned (a flood of such SYNs) the SYN-ACK
//     offers none of them, as Linux's syncookies do, and the cookie alone
//     serves the handshake (Stats.CacheFull). With the BPF SYN stage the
//     pins are shared (CacheMemory.Pins): the stage passes over pinned
//     entries, pins the entries it writes for such clients, and offers
//     them none of these options when it writes no entry, so the
//     guarantee holds for the SYNs it answers too.
//   - A handshake ACK whose TSecr does not echo a TSval we could have sent
//     while the cookie was valid is a bad cookie.
//   - Handshakes (valid ACKs that open the server side) have rate limiters
//     of their own with the rates of the SYN limits, per source and
//     global, and a source may hold Config.FlowsPerSource flows at once: a
//     valid cookie cannot be replayed into server connections faster than
//     SYNs are answered. A flow lingers after a client's RST in the
//     handshake, and a SYN on the tuple of a flow only marks it (the flow
//     is replaced only when a valid ACK for a new ISN arrives, and the mark
//     lapses with the new cookie or at the next segment of the old
//     connection), so one cookie never opens two connections at a time.
//   - The flow table is keyed by the client-side tuple, with buckets of
//     FlowBucketSize slots. A full bucket evicts an expired flow, else a
//     closing one, else a handshake, else the least recently used
//     established flow, whose ends both get an RST (RFC 9293 §3.10.7.4);
//     evictions are counted by kind. Lookups treat expired flows as absent
//     and remove them; Expire sweeps the rest.
//   - Sizing the flow table: with buckets of 16 and a hash nobody can aim,
//     live flows start to be pushed out of full buckets from about half
//     the capacity (filling a 65536-flow table to 50 % pushed out 34 of
//     the 32768 flows, to 90 % 3.7k of 59k).
//     Size Config.Flows (policy tables.flows) at twice the connections
//     expected at once through the engine (established ones plus those
//     lingering for Linger after they close), and watch
//     synwall_flows_evicted_total{kind="established"}, which should stay
//     at zero. A flow takes 256 bytes plus its 64-byte view: the policy's
//     default of 262144 flows takes 80 MiB.
//   - An established flow idle for the idle timeout (policy default 10
//     minutes; conntrack waits five days, but a fixed table cannot) is
//     removed, and ExpireAndTell, which the daemon calls, sends an RST to
//     each end at the sequence number it expects, so that neither waits on
//     a connection that no longer passes.
//   - Client data that arrives before the server's SYN-ACK (on the
//     handshake ACK or after it) is held, up to MaxPendingPerFlow segments
//     of PendingSize bytes from a fixed pool, and replayed after the ACK
//     that completes the server's handshake; what does not fit is dropped
//     and counted, and the client resends it. Client segments more than
//     Config.SynRetransmit after our SYN resend it.
//   - A client RST while the server has not answered goes on as a bare RST
//     with the client's sequence number, which tears down a half-open
//     connection on the server (RFC 9293 §3.10.7.4) and is ignored
//     otherwise; the flow lingers.
//   - While the server has not answered, only an RST that acknowledges our
//     SYN ends the handshake (RFC 9293 §3.10.7.3); it becomes an RST to the
//     client from the server's address with the cookie's sequence number.
//     A bare RST is dropped. An ACK of anything else is the challenge ACK
//     (RFC 5961 §4) of a server that still holds a connection on the
//     tuple: like a client in SYN-SENT, the engine resets it at SEG.ACK and
//     sends its SYN again.
//   - An RST of an established flow is judged against the receiver's
//     window as far as the locked path tracked it (flow.track, at most a
//     millisecond of a side's segments behind): outside it is dropped and
//     counted (RFC 5961 §3.2: an off-path attacker needs the sequence
//     number, not only the tuple); exact (the receiver's RCV.NXT, or the
//     end of what the sender sent) it closes the flow; in window but not
//     exact it is passed on, so that the receiver answers with its
//     challenge ACK, and the flow closes but reopens when the receiver
//     sends anything.
//   - Window scale is offered to the client only if it sent one (RFC 7323
//     §2.2), and to the server only if agreed with the client. When the
//     server's real scale differs from the one our SYN-ACK offered (or
//     scaling is off on one side), window fields are converted both ways;
//     otherwise they pass untouched.
//   - Where the kernel has not verified a segment's TCP checksum
//     (Meta.CsumNotVerified), the engine does before it answers, holds or
//     translates it, and drops a corrupt one (engine.EventBadChecksum): held
//     data is re-emitted with a fresh checksum and must not turn corrupt
//     bytes into good ones.
//   - Rewritten packets always leave with a complete checksum: fixed
//     incrementally (RFC 1624) when it was complete, computed over the whole
//     segment when the kernel had not completed it (Meta.CsumNotReady: GSO
//     super-packets, packets forwarded from a veth), because the kernel takes
//     an altered packet's checksum as final (queue/doc.go).
//   - A SYN from a guarded address is a server's own outbound connection,
//     never part of a proxied handshake: it passes, and an outbound flow
//     lets its reply and the rest of the connection pass untouched
//     (outbound.go).
//   - ICMP errors toward a server that quote its translated segment get
//     the quoted sequence number moved back (icmp.go), so that path MTU
//     discovery works beyond the gateway.
//   - Unknown ACKs, RSTs and FINs, and server packets without a flow, are
//     dropped: they never reach the server or the client.
package gateway
