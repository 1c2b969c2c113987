package header

import "encoding/binary"

// Fixed is what Peek reads from the fixed headers of a packet: no more
// than it takes to tell whose packet it is and what its TCP flags are,
// without validating the rest (Parse does that).
type Fixed struct {
	// Src and Dst view the addresses in the packet: 4 bytes for IPv4, 16
	// for IPv6.
	Src, Dst []byte
	V6       bool
	// Ports says SrcPort and DstPort are valid: TCP follows the IPv4
	// header (options included) or the IPv6 fixed header directly, the
	// packet is not a later fragment (RFC 791 §3.2), and b holds the
	// ports.
	Ports            bool
	SrcPort, DstPort uint16
	// Whole says, on top of Ports, that b holds the whole fixed TCP header
	// and the packet is no fragment at all: Flags are valid.
	Whole bool
	Flags uint8
}

// Peek fills f from the fixed IPv4 or IPv6 header of b and, when TCP
// follows it directly, the TCP ports and flags. It reports false when b is
// too short for even the addresses, or not IPv4 or IPv6; f is then
// unspecified. It neither allocates nor panics, and it does not check
// lengths or checksums beyond what it reads: an IPv6 extension header
// chain, for instance, leaves Ports false.
func Peek(b []byte, f *Fixed) bool {
	var toff int
	if len(b) >= IPv4MinimumSize && b[0]>>4 == 4 {
		f.V6 = false
		f.Src, f.Dst = b[IPv4SrcOffset:IPv4SrcOffset+4], b[IPv4DstOffset:IPv4DstOffset+4]
		toff = int(b[0]&0xf) * 4
		frag := binary.BigEndian.Uint16(b[IPv4FragmentOffset:])
		if toff < IPv4MinimumSize || b[IPv4ProtocolOffset] != ProtocolTCP || frag&0x1fff != 0 {
			f.Ports, f.Whole = false, false
			return true
		}
		f.Whole = frag&0x3fff == 0 // and not the first fragment either
	} else if len(b) >= IPv6FixedSize && b[0]>>4 == 6 {
		f.V6 = true
		f.Src, f.Dst = b[IPv6SrcOffset:IPv6SrcOffset+16], b[IPv6DstOffset:IPv6DstOffset+16]
		if b[IPv6NextHeaderOffset] != ProtocolTCP {
			f.Ports, f.Whole = false, false
			return true
		}
		toff, f.Whole = IPv6FixedSize, true
	} else {
		return false
	}
	if len(b) < toff+4 {
		f.Ports, f.Whole = false, false
		return true
	}
	t := b[toff:]
	f.Ports = true
	f.SrcPort, f.DstPort = binary.BigEndian.Uint16(t[TCPSrcPortOffset:]), binary.BigEndian.Uint16(t[TCPDstPortOffset:])
	if len(t) < TCPMinimumSize {
		f.Whole = false
		return true
	}
	f.Flags = t[TCPFlagsOffset]
	return true
}
