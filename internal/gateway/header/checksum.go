package header

import (
	"encoding/binary"
	"math/bits"
)

// Checksum returns the one's-complement sum of b folded onto initial
// (RFC 1071), not complemented.
//
// The sum is byte-order independent (RFC 1071 §2(B)): it adds 64-bit
// little-endian words with end-around carry, folds to 16 bits and swaps the
// two bytes at the end. 2^16-1 divides 2^64-1, so folding a 64-bit
// one's-complement sum gives the 16-bit one (RFC 1071 §2(C)).
func Checksum(b []byte, initial uint16) uint16 {
	acc := uint64(bits.ReverseBytes16(initial))
	var c uint64
	for len(b) >= 64 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[0:]), 0)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[8:]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[16:]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[24:]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[32:]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[40:]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[48:]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[56:]), c)
		// A chain with carry-in can leave acc = 2^64-1 and a carry, so the
		// end-around carry takes two steps.
		acc, c = bits.Add64(acc, c, 0)
		acc += c
		b = b[64:]
	}
	if len(b) >= 32 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[0:]), 0)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[8:]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[16:]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[24:]), c)
		acc, c = bits.Add64(acc, c, 0)
		acc += c
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b), 0)
		acc += c // no overflow: acc <= 2^64-2 after a carry without carry-in
		b = b[8:]
	}
	// At most 7 bytes left: their sum cannot overflow a 64-bit word holding
	// up to 2^64-1, so add them into a small accumulator first.
	var tail uint64
	if len(b) >= 4 {
		tail = uint64(binary.LittleEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		tail += uint64(binary.LittleEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		// An odd byte is the high-order byte of a zero-padded 16-bit word
		// (RFC 1071 §4.1); in little-endian terms the low byte.
		tail += uint64(b[0])
	}
	acc, c = bits.Add64(acc, tail, 0)
	acc += c
	return bits.ReverseBytes16(fold64(acc))
}

// fold64 folds a 64-bit one's-complement sum to 16 bits.
func fold64(acc uint64) uint16 {
	s := (acc >> 32) + (acc & 0xffffffff) // <= 2^33-2
	s = (s >> 32) + (s & 0xffffffff)      // <= 2^32-1
	s = (s >> 16) + (s & 0xffff)          // <= 2^17-2
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	return uint16(s)
}

// PseudoHeaderChecksum returns the sum of the TCP pseudo-header (RFC 9293
// §3.1, RFC 8200 §8.1) for the given addresses and TCP length.
func PseudoHeaderChecksum(v6 bool, src, dst *[16]byte, tcpLen int) uint16 {
	var acc uint64
	if v6 {
		var c uint64
		acc, c = bits.Add64(binary.BigEndian.Uint64(src[0:]), binary.BigEndian.Uint64(src[8:]), 0)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(dst[0:]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(dst[8:]), c)
		// 32-bit upper-layer length, then 24 zero bits and the next header.
		acc, c = bits.Add64(acc, uint64(uint32(tcpLen))+ProtocolTCP, c)
		acc, c = bits.Add64(acc, c, 0)
		acc += c
	} else {
		acc = uint64(binary.BigEndian.Uint32(src[0:])) + uint64(binary.BigEndian.Uint32(dst[0:])) +
			ProtocolTCP + uint64(uint16(tcpLen))
	}
	return fold64(acc)
}

// SetTCPChecksum computes the checksum of a whole TCP segment (header and
// payload; the checksum field is overwritten, its old value does not
// matter) and stores it (RFC 9293 §3.1).
//
// The old field is summed with the rest and then taken out again by adding
// its complement: clearing it first would make the summing loads wait on
// the store.
func SetTCPChecksum(v6 bool, src, dst *[16]byte, seg TCP) {
	s := uint32(Checksum(seg, PseudoHeaderChecksum(v6, src, dst, len(seg)))) + uint32(^seg.Checksum())
	s = s>>16 + s&0xffff
	s = s>>16 + s&0xffff
	seg.SetChecksum(^uint16(s))
}

// VerifyTCPChecksum reports whether seg's checksum is right.
func VerifyTCPChecksum(v6 bool, src, dst *[16]byte, seg TCP) bool {
	return Checksum(seg, PseudoHeaderChecksum(v6, src, dst, len(seg))) == 0xffff
}

// SetIPv4Checksum computes and stores the IPv4 header checksum (RFC 791
// §3.1) over HeaderLength bytes.
func SetIPv4Checksum(h IPv4) {
	h.SetChecksum(0)
	h.SetChecksum(^Checksum(h[:h.HeaderLength()], 0))
}

// VerifyIPv4Checksum reports whether the IPv4 header checksum is right.
func VerifyIPv4Checksum(h IPv4) bool {
	return Checksum(h[:h.HeaderLength()], 0) == 0xffff
}

// ChecksumDelta accumulates the changes of fields a checksum covers, so
// that the checksum is fixed once, at the end (RFC 1624 eqn. 3:
// HC' = ~(~HC + ~m + m'), summed over every changed 16-bit word m). The
// zero value is no change. It is the one incremental-checksum API: the
// engine's translation, its rewrites of held segments, and tests.
//
// The sum is kept unfolded in 64 bits: every Add adds less than 2^18, so
// no run of rewrites of one header can overflow it.
type ChecksumDelta uint64

// Add32 accounts for a 32-bit field changed from old to new.
func (d *ChecksumDelta) Add32(old, new uint32) {
	*d += ChecksumDelta((^old)>>16 + (^old)&0xffff + new>>16 + new&0xffff)
}

// Add16 accounts for a 16-bit field changed from old to new.
func (d *ChecksumDelta) Add16(old, new uint16) {
	*d += ChecksumDelta(uint32(^old) + uint32(new))
}

// Put32 stores v in the big-endian 32-bit field at the start of b and
// accounts for the change.
func (d *ChecksumDelta) Put32(b []byte, v uint32) {
	old := binary.BigEndian.Uint32(b)
	binary.BigEndian.PutUint32(b, v)
	d.Add32(old, v)
}

// Put16 stores v in the big-endian 16-bit field at the start of b and
// accounts for the change.
func (d *ChecksumDelta) Put16(b []byte, v uint16) {
	old := binary.BigEndian.Uint16(b)
	binary.BigEndian.PutUint16(b, v)
	d.Add16(old, v)
}

// Shift32 adds by (mod 2^32) to the big-endian 32-bit field at the start
// of b and accounts for the change: a sequence number, acknowledgment
// number, SACK edge or timestamp moved into another space.
func (d *ChecksumDelta) Shift32(b []byte, by uint32) {
	old := binary.BigEndian.Uint32(b)
	nw := old + by
	binary.BigEndian.PutUint32(b, nw)
	d.Add32(old, nw)
}

// Apply returns the checksum csum (as stored in a header) after the
// accumulated changes.
func (d ChecksumDelta) Apply(csum uint16) uint16 {
	s := uint64(^csum) + uint64(d)
	s = s&0xffff + s>>16
	s = s&0xffff + s>>16
	s = s&0xffff + s>>16
	return ^uint16(s)
}
