package gateway

import (
	"encoding/binary"

	"github.com/synwall/synwall/internal/cookies"
	"github.com/synwall/synwall/internal/gateway/header"
)

// synOpts are the TCP options a built segment carries.
type synOpts struct {
	mss   uint16 // 0: none
	ws    int8   // -1: none
	sack  bool   // SACK-permitted
	ts    bool
	tsVal uint32
	tsEcr uint32
	urg   uint16 // urgent pointer, with URG among the flags (held segments)
}

// Sizes of the headers the builders write.
const (
	ipv4Len   = 20
	ipv6Len   = 40
	tcpLen    = 20
	maxOptLen = 20
	// bufSize holds the largest packet a worker builds: IPv6, TCP with
	// options, and a held payload.
	bufSize = ipv6Len + tcpLen + maxOptLen + PendingSize
)

// writeOptions lays out options the way Linux does on a SYN (MSS,
// SACK-permitted, timestamps, NOP, window scale; RFC 9293 §3.2, RFC 7323,
// RFC 2018), padded to a multiple of four, and returns their length and the
// unfolded sum of the 16-bit words written (RFC 1071), so that the checksum
// needs no second pass over them.
func writeOptions(b []byte, o *synOpts) (n int, sum uint64) {
	if o.mss != 0 {
		b[0], b[1] = header.OptMSS, 4
		binary.BigEndian.PutUint16(b[2:], o.mss)
		n = 4
		sum = 0x0204 + uint64(o.mss)
	}
	if o.ts {
		if o.sack {
			b[n], b[n+1] = header.OptSACKPermitted, 2
			sum += 0x0402
		} else {
			b[n], b[n+1] = header.OptNOP, header.OptNOP
			sum += 0x0101
		}
		b[n+2], b[n+3] = header.OptTimestamps, 10
		binary.BigEndian.PutUint32(b[n+4:], o.tsVal)
		binary.BigEndian.PutUint32(b[n+8:], o.tsEcr)
		n += 12
		sum += 0x080a + uint64(o.tsVal>>16) + uint64(o.tsVal&0xffff) + uint64(o.tsEcr>>16) + uint64(o.tsEcr&0xffff)
	} else if o.sack {
		b[n], b[n+1], b[n+2], b[n+3] = header.OptNOP, header.OptNOP, header.OptSACKPermitted, 2
		n += 4
		sum += 0x0101 + 0x0402
	}
	if o.ws >= 0 {
		b[n], b[n+1], b[n+2], b[n+3] = header.OptNOP, header.OptWindowScale, 3, byte(o.ws)
		n += 4
		sum += 0x0103 + 0x0300 + uint64(uint8(o.ws))
	}
	return n, sum
}

// buildReset writes into buf a bare RST of the flow with tuple t, with
// sequence number seq: to the client from the server's address, or to the
// server from the client's.
func buildReset(buf []byte, t *cookies.Tuple, toClient bool, seq uint32) []byte {
	var so synOpts
	so.ws = -1
	if toClient {
		return buildSegment(buf, t.V6, &t.Dst, &t.Src, t.DstPort, t.SrcPort, seq, 0, header.RST, 0, &so, nil)
	}
	return buildSegment(buf, t.V6, &t.Src, &t.Dst, t.SrcPort, t.DstPort, seq, 0, header.RST, 0, &so, nil)
}

// buildProbe writes into buf a bare ACK of the flow with tuple t, with
// sequence number seq and acknowledgment number ack: to the client from the
// server's address, or to the server from the client's.
func buildProbe(buf []byte, t *cookies.Tuple, toClient bool, seq, ack uint32) []byte {
	var so synOpts
	so.ws = -1
	if toClient {
		return buildSegment(buf, t.V6, &t.Dst, &t.Src, t.DstPort, t.SrcPort, seq, ack, header.ACK, 0, &so, nil)
	}
	return buildSegment(buf, t.V6, &t.Src, &t.Dst, t.SrcPort, t.DstPort, seq, ack, header.ACK, 0, &so, nil)
}

// buildSegment writes an IP packet carrying one TCP segment into buf and
// returns it, checksums set. IPv4 gets TTL 64, ID 0 and DF; IPv6 hop limit
// 64 and no extension headers.
//
// The headers are written through fixed-size array views (no bounds
// checks), and the sum of the addresses serves both the IPv4 header
// checksum and the TCP pseudo-header.
func buildSegment(buf []byte, v6 bool, src, dst *[16]byte, sport, dport uint16,
	seq, ack uint32, flags uint8, win uint16, o *synOpts, payload []byte) []byte {
	ipl := ipv4Len
	if v6 {
		ipl = ipv6Len
	}
	optl, sum := writeOptions(buf[ipl+tcpLen:], o)
	thl := tcpLen + optl
	tcpTotal := thl + len(payload)
	total := ipl + tcpTotal
	copy(buf[ipl+thl:], payload)
	// The addresses' sum, in 32-bit words (a one's-complement sum of 32-bit
	// words folds to the sum of the 16-bit ones, RFC 1071 §2(B)).
	var as uint64
	if v6 {
		h := (*[ipv6Len]byte)(buf[:ipv6Len])
		binary.BigEndian.PutUint32(h[0:], 6<<28) // version, class 0, flow label 0
		binary.BigEndian.PutUint16(h[header.IPv6PayloadLengthOffset:], uint16(tcpTotal))
		h[header.IPv6NextHeaderOffset] = header.ProtocolTCP
		h[header.IPv6HopLimitOffset] = 64
		copy(h[header.IPv6SrcOffset:header.IPv6SrcOffset+16], src[:])
		copy(h[header.IPv6DstOffset:header.IPv6DstOffset+16], dst[:])
		for i := 0; i < 16; i += 4 {
			as += uint64(binary.BigEndian.Uint32(src[i:])) + uint64(binary.BigEndian.Uint32(dst[i:]))
		}
	} else {
		h := (*[ipv4Len]byte)(buf[:ipv4Len])
		s4, d4 := binary.BigEndian.Uint32(src[:]), binary.BigEndian.Uint32(dst[:])
		as = uint64(s4) + uint64(d4)
		binary.BigEndian.PutUint32(h[0:], 0x45000000|uint32(total))     // version 4, IHL 5, TOS 0, total length
		binary.BigEndian.PutUint32(h[header.IPv4IDOffset:], 0x00004000) // ID 0, DF (RFC 791 §3.1)
		h[header.IPv4TTLOffset] = 64
		h[header.IPv4ProtocolOffset] = header.ProtocolTCP
		binary.BigEndian.PutUint32(h[header.IPv4SrcOffset:], s4)
		binary.BigEndian.PutUint32(h[header.IPv4DstOffset:], d4)
		// RFC 791 §3.1 header checksum over the words set above.
		ips := 0x4500 + uint64(total) + 0x4000 + 0x4006 + as
		ips = ips&0xffff + ips>>16
		ips = ips&0xffff + ips>>16
		ips = ips&0xffff + ips>>16
		binary.BigEndian.PutUint16(h[header.IPv4ChecksumOffset:], ^uint16(ips))
	}
	t := (*[tcpLen]byte)(buf[ipl : ipl+tcpLen])
	binary.BigEndian.PutUint16(t[header.TCPSrcPortOffset:], sport)
	binary.BigEndian.PutUint16(t[header.TCPDstPortOffset:], dport)
	binary.BigEndian.PutUint32(t[header.TCPSeqNumOffset:], seq)
	binary.BigEndian.PutUint32(t[header.TCPAckNumOffset:], ack)
	doff := uint16(thl/4) << 12
	binary.BigEndian.PutUint16(t[header.TCPDataOffsetOffset:], doff|uint16(flags))
	binary.BigEndian.PutUint16(t[header.TCPWindowOffset:], win)
	binary.BigEndian.PutUint16(t[header.TCPChecksumOffset:], 0)
	binary.BigEndian.PutUint16(t[header.TCPUrgentOffset:], o.urg)
	// The checksum (RFC 9293 §3.1) is summed from the values just written,
	// and from the payload where it came from, not read back (doc.go: store
	// forwarding). The payload starts at an even offset, so its words are
	// the same. The
	// addresses' sum is at most 2^37 and every other term below 2^32, so
	// nothing overflows.
	sum += as + header.ProtocolTCP + uint64(tcpTotal) +
		uint64(sport) + uint64(dport) + uint64(seq>>16) + uint64(seq&0xffff) +
		uint64(ack>>16) + uint64(ack&0xffff) + uint64(doff) + uint64(flags) + uint64(win) + uint64(o.urg)
	if len(payload) > 0 {
		sum += uint64(header.Checksum(payload, 0))
	}
	sum = sum&0xffffffff + sum>>32
	sum = sum&0xffff + sum>>16
	sum = sum&0xffff + sum>>16
	sum = sum&0xffff + sum>>16
	binary.BigEndian.PutUint16(t[header.TCPChecksumOffset:], ^uint16(sum))
	return buf[:total]
}
