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
package gateway
