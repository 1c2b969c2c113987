package gateway

import (
	"encoding/binary"

	"github.com/synwall/synwall/gateway/header"
)

// synOpts are the TCP options a built segment carries.
type synOpts struct {
	mss   uint16 // 0: none
	ws    int8   // -1: none
	sack  bool   // SACK-permitted
	ts    bool
	tsVal uint32
	tsEcr uint32
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
		b[0], b[1] = 2, 4
		binary.BigEndian.PutUint16(b[2:], o.mss)
		n = 4
		sum = 0x0204 + uint64(o.mss)
	}
	if o.ts {
		if o.sack {
			b[n], b[n+1] = 4, 2
			sum += 0x0402
		} else {
			b[n], b[n+1] = 1, 1
			sum += 0x0101
		}
		b[n+2], b[n+3] = 8, 10
		binary.BigEndian.PutUint32(b[n+4:], o.tsVal)
		binary.BigEndian.PutUint32(b[n+8:], o.tsEcr)
		n += 12
		sum += 0x080a + uint64(o.tsVal>>16) + uint64(o.tsVal&0xffff) + uint64(o.tsEcr>>16) + uint64(o.tsEcr&0xffff)
	} else if o.sack {
		b[n], b[n+1], b[n+2], b[n+3] = 1, 1, 4, 2
		n += 4
		sum += 0x0101 + 0x0402
	}
	if o.ws >= 0 {
		b[n], b[n+1], b[n+2], b[n+3] = 1, 3, 3, byte(o.ws)
		n += 4
		sum += 0x0103 + 0x0300 + uint64(uint8(o.ws))
	}
	return n, sum
}

// buildSegment writes an IP packet carrying one TCP segment into buf and
// returns it, checksums set. IPv4 gets TTL 64, ID 0 and DF; IPv6 hop limit
// 64 and no extension headers.
func buildSegment(buf []byte, v6 bool, src, dst *[16]byte, sport, dport uint16,
	seq, ack uint32, flags uint8, win uint16, o *synOpts, payload []byte) []byte {
	ipl := ipv4Len
	if v6 {
		ipl = ipv6Len
	}
	optl, sum := writeOptions(buf[ipl+tcpLen:], o)
	thl := tcpLen + optl
	total := ipl + thl + len(payload)
	copy(buf[ipl+thl:], payload)
	if v6 {
		h := buf[:ipv6Len]
		binary.BigEndian.PutUint32(h[0:], 6<<28)
		binary.BigEndian.PutUint16(h[4:], uint16(thl+len(payload)))
		h[6] = 6 // TCP
		h[7] = 64
		copy(h[8:24], src[:])
		copy(h[24:40], dst[:])
	} else {
		h := buf[:ipv4Len]
		h[0] = 0x45
		h[1] = 0
		binary.BigEndian.PutUint16(h[2:], uint16(total))
		binary.BigEndian.PutUint32(h[4:], 0x00004000) // ID 0, DF (RFC 791 §3.1)
		h[8] = 64
		h[9] = 6
		copy(h[12:16], src[:4])
		copy(h[16:20], dst[:4])
		// RFC 791 §3.1 header checksum over the words set above.
		sum := uint32(0x4500) + uint32(total) + 0x4000 + 0x4006 +
			uint32(binary.BigEndian.Uint16(h[12:])) + uint32(binary.BigEndian.Uint16(h[14:])) +
			uint32(binary.BigEndian.Uint16(h[16:])) + uint32(binary.BigEndian.Uint16(h[18:]))
		sum = sum&0xffff + sum>>16
		sum = sum&0xffff + sum>>16
		binary.BigEndian.PutUint16(h[10:], ^uint16(sum))
	}
	t := buf[ipl : ipl+thl+len(payload)]
	binary.BigEndian.PutUint16(t[0:], sport)
	binary.BigEndian.PutUint16(t[2:], dport)
	binary.BigEndian.PutUint32(t[4:], seq)
	binary.BigEndian.PutUint32(t[8:], ack)
	t[12] = byte(thl/4) << 4
	t[13] = flags
	binary.BigEndian.PutUint16(t[14:], win)
	t[18], t[19] = 0, 0
	// The checksum (RFC 9293 §3.1) is summed from the values just written,
	// and from the payload where it came from: reading back bytes still in
	// the store buffer with wider loads would stall on every load. The
	// payload starts at an even offset, so its words are the same.
	sum += uint64(header.PseudoHeaderChecksum(v6, src, dst, len(t))) +
		uint64(sport) + uint64(dport) + uint64(seq>>16) + uint64(seq&0xffff) +
		uint64(ack>>16) + uint64(ack&0xffff) + uint64(t[12])<<8 + uint64(flags) + uint64(win)
	if len(payload) > 0 {
		sum += uint64(header.Checksum(payload, 0))
	}
	sum = sum&0xffff + sum>>16
	sum = sum&0xffff + sum>>16
	sum = sum&0xffff + sum>>16
	binary.BigEndian.PutUint16(t[16:], ^uint16(sum))
	return buf[:total]
}
