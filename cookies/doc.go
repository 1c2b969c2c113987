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
package cookies
