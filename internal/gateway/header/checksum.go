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

// UpdateChecksum32 returns csum (as stored in a header) after a 32-bit field
// covered by it changed from old to new (RFC 1624 eqn. 3:
// HC' = ~(~HC + ~m + m')).
func UpdateChecksum32(csum uint16, old, new uint32) uint16 {
	o := ^old
	s := uint32(^csum) + o>>16 + o&0xffff + new>>16 + new&0xffff
	s = s>>16 + s&0xffff
	s = s>>16 + s&0xffff
	return ^uint16(s)
}

// UpdateChecksum16 is UpdateChecksum32 for a 16-bit field.
func UpdateChecksum16(csum uint16, old, new uint16) uint16 {
	s := uint32(^csum) + uint32(^old) + uint32(new)
	s = s>>16 + s&0xffff
	s = s>>16 + s&0xffff
	return ^uint16(s)
}
