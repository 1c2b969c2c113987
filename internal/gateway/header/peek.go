package header

import "encoding/binary"

// Fixed is what Peek reads from the fixed headers of a packet: no more
// than it takes to tell whose packet it is and what its TCP flags are,
// without validating the rest (Parse does that). Src and Dst return the
// addresses.
type Fixed struct {
	// SrcPort and DstPort are valid when Ports is set: TCP follows the
	// IPv4 header (options included) or the IPv6 fixed header directly, the
	// packet is not a later fragment (RFC 791 §3.2), and b holds the ports.
	SrcPort, DstPort uint16
	// Flags are valid when Whole is set: on top of Ports, b holds the whole
	// fixed TCP header and the packet is no fragment at all.
	Flags        uint8
	V6           bool
	Ports, Whole bool
}

// Src returns the source address in b, the packet f was filled from: 4
// bytes for IPv4, 16 for IPv6.
func (f *Fixed) Src(b []byte) []byte {
	if f.V6 {
		return b[IPv6SrcOffset : IPv6SrcOffset+16]
	}
	return b[IPv4SrcOffset : IPv4SrcOffset+4]
}

// Dst returns the destination address in b, as Src.
func (f *Fixed) Dst(b []byte) []byte {
	if f.V6 {
		return b[IPv6DstOffset : IPv6DstOffset+16]
	}
	return b[IPv4DstOffset : IPv4DstOffset+4]
}

// Peek fills f from the fixed IPv4 or IPv6 header of b and, when TCP
// follows it directly, the TCP ports and flags. It reports false when b is
// too short for even the addresses, or not IPv4 or IPv6; f is then
// unspecified. It neither allocates nor panics, and it checks nothing
// beyond what it reads: an IPv6 extension header chain, for instance,
// leaves Ports false.
func Peek(b []byte, f *Fixed) bool {
	// IPv4 without options, TCP, no fragment (flags and offset, TTL aside,
	// protocol in one word), with the whole TCP header: few enough steps to
	// be inlined.
	if len(b) >= IPv4MinimumSize+TCPMinimumSize && b[0] == 0x45 &&
		binary.BigEndian.Uint32(b[IPv4FragmentOffset:])&0x3fff00ff == ProtocolTCP {
		t := (*[TCPMinimumSize]byte)(b[IPv4MinimumSize:])
		f.SrcPort, f.DstPort = binary.BigEndian.Uint16(t[TCPSrcPortOffset:]), binary.BigEndian.Uint16(t[TCPDstPortOffset:])
		f.Flags, f.V6, f.Ports, f.Whole = t[TCPFlagsOffset], false, true, true
		return true
	}
	return peek(b, f)
}

// peek is Peek for any packet.
func peek(b []byte, f *Fixed) bool {
	var toff int
	whole := true
	switch {
	case len(b) >= IPv4MinimumSize && b[0]>>4 == 4:
		f.V6 = false
		toff = int(b[0]&0xf) * 4
		frag := binary.BigEndian.Uint16(b[IPv4FragmentOffset:])
		if toff < IPv4MinimumSize || b[IPv4ProtocolOffset] != ProtocolTCP || frag&0x1fff != 0 {
			toff = 0
		}
		whole = frag&0x2000 == 0 // and not the first fragment either
	case len(b) >= IPv6FixedSize && b[0]>>4 == 6:
		f.V6 = true
		if b[IPv6NextHeaderOffset] == ProtocolTCP {
			toff = IPv6FixedSize
		}
	default:
		return false
	}
	if toff == 0 || len(b) < toff+4 {
		f.Ports, f.Whole = false, false
		return true
	}
	t := b[toff:]
	f.SrcPort, f.DstPort = binary.BigEndian.Uint16(t[TCPSrcPortOffset:]), binary.BigEndian.Uint16(t[TCPDstPortOffset:])
	f.Ports = true
	if len(t) < TCPMinimumSize || !whole {
		f.Whole = false
		return true
	}
	f.Flags, f.Whole = t[TCPFlagsOffset], true
	return true
}
