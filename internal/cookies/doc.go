// Package cookies makes and checks SYN cookies (RFC 4987 §3.6): the initial
// sequence number of every SYN-ACK synwall sends is a keyed SipHash-2-4 MAC of
// the connection's 4-tuple, the client's ISN and a coarse time counter, with
// the client's MSS class folded in. Keys rotate on a clock; the current and the
// previous counter are accepted. With TCP timestamps, the low bits of the
// SYN-ACK's TSval carry window scale, SACK-permitted and ECN so that they
// survive when no SYN-cache entry exists.
//
// The package imports only the standard library and siphash; it holds no
// per-packet state and allocates nothing per cookie.
//
// # Cookie layout
//
// The layout follows FreeBSD's MAC|bits cookie (sys/netinet/tcp_syncache.c)
// rather than Linux's H0+ISN+counter layout: one SipHash per cookie instead of
// two. For counter c (see below) and per-counter key K(c):
//
//	mac    = SipHash-2-4(K(c), src | dst | sport | dport | clientISN | idx | family | c)
//	bits   = idx<<2 | (c mod 4)          idx = MSS class 0..3
//	cookie = (mac[63:36] << 4) | (bits XOR mac[63:60])
//
// that is, the top 28 bits of the cookie are the top 28 bits of the MAC and the
// low 4 bits carry the MSS class and the counter's two low bits, scrambled
// with the cookie's own top bits so that the whole sequence number looks
// random (RFC 6528 §3). Addresses are 4 bytes for IPv4 and 16 for IPv6; the
// family byte keeps the two apart. The exact byte message is in sip.go and is
// checked against github.com/dchest/siphash by the tests.
//
// Check unscrambles the low bits, which name one of four counters: cur-2,
// cur-1, cur and cur+1 (cur is the counter of the checking clock). It
// recomputes the MAC with that counter's key and compares all 32 bits.
//
//   - MAC differs: ErrInvalid.
//   - MAC holds, counter cur or cur-1: valid; the MSS is MSSTable[idx].
//   - MAC holds, counter cur-2 (made two periods ago) or cur+1 (made in the
//     next period: the clock moved back): ErrExpired.
//
// So "expired" is told from "invalid" exactly for cookies that are up to one
// period too old or one period too young. Older cookies (three or more periods)
// name a counter whose key is a different one and come out as ErrInvalid, as
// do forgeries. Every Check costs one SipHash whatever the outcome, so a flood
// of forged ACKs costs no more than a flood of good ones.
//
// # Forgery probability
//
// An attacker who has not seen our SYN-ACK must guess a cookie for a tuple and
// ISN of its choice. The MSS class is covered by the MAC, so a guess succeeds
// only if its 28 MAC bits match: probability 2^-28 when it also picks counter
// bits that are live (they follow from the clock, which is public), and 2^-29
// for a uniformly random ACK, half of whose counter codes are live. That is the
// strength of Linux's cookie (2^-29) to within one bit and 16 times that of
// FreeBSD's 24-bit MAC. At a million forged ACKs per second an attacker needs
// about 2^28/10^6 ≈ 270 s per accepted ACK, and what it wins is one
// connection attempt from an address it spoofed: the server sees a SYN and
// answers it with a SYN-ACK the engine completes, so the server holds one
// established connection that nobody uses until it times out (and the
// engine one flow, within the spoofed source's share of the flow table),
// while the handshake rate limits bound how fast even accepted ACKs open
// connections. The cookie tests count accepted random ACKs against this
// figure; the odds themselves are measured through the whole engine
// (gateway's TestForgedAckOdds) with the MAC cut to 12 bits
// (WeakenedForTest), where a million ACKs accept 256 ± 80 at 2^-12, and a
// MAC shorter than 12 bits, or a check that skipped the counter bits, would
// fall outside that.
//
// # Counter and period
//
// The counter is floor(now / Period), counted from the Unix epoch so that
// gateways with synchronized clocks agree on it. A cookie made during counter c
// is accepted during c and c+1: for between one and two periods. DefaultPeriod
// is 30 s, so a cookie lives 30 to 60 s.
//
// Linux ticks its counter every 60 s and accepts two ages (60 to 120 s);
// FreeBSD rotates between two keys every 15 s (15 to 30 s), which covers its
// own SYN-ACK retransmissions at 1, 2, 4 and 8 s. A cookie has to outlive the
// time between our SYN-ACK and the client's first ACK. Lost SYN-ACKs do not
// count against it: a client retransmits its SYN when its timer expires
// (initial RTO 1 s, RFC 6298 §2.1, doubled on each retry, §5.5: Linux waits 1,
// 2, 4, 8, 16 and 32 s between its tries) and each new SYN gets a cookie of the
// counter then current. What counts is the slowest handshake completion we want
// to serve: a long RTT (satellite, congested mobile links: seconds), a lost
// final ACK that is repaired by the client's first data segment or its
// retransmissions (RTO 1 s and doubling), and the engine holding an ACK while
// the backend is slow. Thirty seconds at the least covers all of that with room
// to spare; it is twice FreeBSD's so that a Secret shared behind ECMP tolerates
// clock skew between gateways (skew shortens the window by itself), and half of
// Linux's so that a sniffed SYN-ACK can be replayed for at most a minute and
// keys turn over twice as often.
//
// # Keys
//
// Each Jar has a 128-bit master key: read from Config.Rand (crypto/rand by
// default), or derived from Config.Secret with HKDF-SHA256 (RFC 5869) so that
// every gateway given the same secret (and Period) computes the same keys and
// accepts the others' cookies. The key of counter c is SipHash-2-4-128 of a
// fixed label and c under the master key. A Jar caches the keys of counters
// cur-6 .. cur+1 in an immutable keyset published through an atomic.Pointer and
// replaced (forward only) when the clock enters a new period; a caller whose
// clock lags further derives the key it needs on the stack. Nothing on the
// per-packet path allocates or locks.
//
// ReadSecretFile reads a shared secret and refuses files that group or others
// can access.
//
// # Timestamp bits
//
// EncodeTS stores the client's options in the low TSBits (6) bits of our
// TSval, as Linux's cookie_init_timestamp does: bits 3..0 window scale (0..14,
// RFC 7323 §2.3; 15 = NoWScale, none sent), bit 4 SACK-permitted (RFC 2018),
// bit 5 ECN (RFC 3168 §6.1.1). A shift count above 14 is stored as 14, which is
// how RFC 7323 §2.3 says to treat it. Every 6-bit pattern decodes to valid
// options, so DecodeTS cannot detect tampering; these bits are unauthenticated
// and only describe the client's own connection.
//
// # Bucket hash
//
// The engine's SYN cache takes its buckets from the cookie's own MAC bits
// (MAC), a SipHash under a secret key, so that nobody can aim SYNs at one
// bucket (as FreeBSD's syncache seeds its bucket hash with a secret); no
// second keyed hash is needed.
package cookies
