package header

import "encoding/binary"

// Packet is the result of Parse: views into the caller's buffer.
type Packet struct {
	V6       bool
	IP       []byte   // the IP header, IPv6 extension headers included
	TCP      TCP      // the TCP header, options included
	Payload  []byte   // TCP payload, trimmed to the IP length
	Src, Dst [16]byte // IPv4 addresses in the first 4 bytes
	Opts     Options
}

// Segment returns the TCP header and payload as one slice (what the TCP
// checksum covers).
func (p *Packet) Segment() TCP { return p.TCP[:len(p.TCP)+len(p.Payload)] }

// Bytes returns the whole packet trimmed to its IP length.
func (p *Packet) Bytes() []byte { return p.IP[:len(p.IP)+len(p.TCP)+len(p.Payload)] }

// SetTCPChecksum computes and stores the TCP checksum of the packet.
func (p *Packet) SetTCPChecksum() { SetTCPChecksum(p.V6, &p.Src, &p.Dst, p.Segment()) }

// VerifyTCPChecksum reports whether the packet's TCP checksum is right.
func (p *Packet) VerifyTCPChecksum() bool {
	return VerifyTCPChecksum(p.V6, &p.Src, &p.Dst, p.Segment())
}

// Parse validates b as an IPv4 or IPv6 packet carrying TCP and fills p with
// views into b. It returns OK or the reason the packet must be dropped. It
// never allocates and never panics, whatever b holds. Bytes past the IP
// length are ignored. On a reason other than OK the content of p is
// unspecified.
func Parse(b []byte, p *Packet) Reason {
	// The common case, IPv4 without options (IHL 5, RFC 791 §3.1), is
	// checked first and fills p without clearing it first.
	if len(b) >= IPv4MinimumSize+TCPMinimumSize && b[0] == 0x45 {
		return parse4(b, p)
	}
	// Likewise IPv6 with TCP right after the fixed header (RFC 8200 §3).
	if len(b) >= IPv6FixedSize+TCPMinimumSize && b[0]>>4 == 6 && b[6] == ProtocolTCP {
		return parse6(b, p)
	}
	return parseAny(b, p)
}

// parseAny is Parse for any packet, without the fast paths.
func parseAny(b []byte, p *Packet) Reason {
	*p = Packet{}
	if len(b) == 0 {
		return Truncated
	}
	var off int
	switch b[0] >> 4 {
	case 4:
		if len(b) < IPv4MinimumSize {
			return Truncated
		}
		// RFC 791 §3.1: IHL counts 32-bit words, at least 5.
		ihl := int(b[0]&0xf) * 4
		if ihl < IPv4MinimumSize || ihl > len(b) {
			return BadIHL
		}
		tl := int(binary.BigEndian.Uint16(b[2:]))
		if tl < ihl || tl > len(b) {
			return BadTotalLength
		}
		b = b[:tl]
		if IPv4(b).IsFragment() {
			return Fragment
		}
		if b[9] != ProtocolTCP {
			return NotTCP
		}
		copy(p.Src[:4], b[12:16])
		copy(p.Dst[:4], b[16:20])
		off = ihl
	case 6:
		if len(b) < IPv6FixedSize {
			return Truncated
		}
		// RFC 8200 §3: the payload length counts everything after the fixed
		// header, extension headers included.
		n := IPv6FixedSize + int(binary.BigEndian.Uint16(b[4:]))
		if n > len(b) {
			return BadTotalLength
		}
		b = b[:n]
		p.V6 = true
		copy(p.Src[:], b[8:24])
		copy(p.Dst[:], b[24:40])
		var r Reason
		if off, r = walkIPv6(b); r != OK {
			return r
		}
	default:
		return BadVersion
	}
	t := b[off:]
	if len(t) < TCPMinimumSize {
		return Truncated
	}
	do := int(t[12]>>4) * 4
	if do < TCPMinimumSize || do > len(t) {
		return BadDataOffset
	}
	p.IP = b[:off]
	p.TCP = t[:do]
	p.Payload = t[do:]
	return ParseOptions(p.TCP, &p.Opts)
}

// walkIPv6 follows the extension header chain of b (RFC 8200 §4) and
// returns the offset of the TCP header.
func walkIPv6(b []byte) (int, Reason) {
	nh := b[6]
	off := IPv6FixedSize
	for i := 0; ; i++ {
		switch nh {
		case ProtocolTCP:
			return off, OK
		case IPv6HopByHop, IPv6Routing, IPv6DestOptions:
			// RFC 8200 §4.1: Hop-by-Hop only right after the fixed header.
			if i >= MaxExtHeaders || (nh == IPv6HopByHop && i != 0) {
				return 0, BadExtHeader
			}
			// RFC 8200 §4.3-4.6: next header, length in 8-octet units not
			// counting the first 8.
			if len(b)-off < 8 {
				return 0, BadExtHeader
			}
			// RFC 8200 §4.4: with segments left, the destination in the
			// fixed header is a waypoint, not the final one that the
			// service lookup and the checksum (§8.1) need: refused.
			if nh == IPv6Routing && b[off+3] != 0 {
				return 0, BadExtHeader
			}
			l := (int(b[off+1]) + 1) * 8
			if l > len(b)-off {
				return 0, BadExtHeader
			}
			nh = b[off]
			off += l
		case IPv6Fragment:
			return 0, Fragment
		default: // No Next Header, ESP, AH, other transports
			return 0, NotTCP
		}
	}
}

// parse4 is Parse for an IPv4 header of 20 bytes, with b holding at least
// 40 bytes. It makes the same checks in the same order as Parse.
func parse4(b []byte, p *Packet) Reason {
	tl := int(binary.BigEndian.Uint16(b[2:]))
	if tl < IPv4MinimumSize || tl > len(b) {
		return BadTotalLength
	}
	b = b[:tl]
	_ = b[IPv4MinimumSize-1]
	if binary.BigEndian.Uint16(b[6:])&0x3fff != 0 { // RFC 791 §3.2: MF or an offset
		return Fragment
	}
	if b[9] != ProtocolTCP {
		return NotTCP
	}
	t := b[IPv4MinimumSize:]
	if len(t) < TCPMinimumSize {
		return Truncated
	}
	do := int(t[12]>>4) * 4
	if do < TCPMinimumSize || do > len(t) {
		return BadDataOffset
	}
	p.V6 = false
	// Whole-word stores: the rest of each address is zero.
	binary.LittleEndian.PutUint64(p.Src[0:], uint64(binary.LittleEndian.Uint32(b[12:])))
	binary.LittleEndian.PutUint64(p.Src[8:], 0)
	binary.LittleEndian.PutUint64(p.Dst[0:], uint64(binary.LittleEndian.Uint32(b[16:])))
	binary.LittleEndian.PutUint64(p.Dst[8:], 0)
	p.IP = b[:IPv4MinimumSize]
	p.TCP = t[:do]
	p.Payload = t[do:]
	return ParseOptions(p.TCP, &p.Opts)
}

// parse6 is Parse for an IPv6 packet whose next header is TCP, with b
// holding at least 60 bytes. It makes the same checks in the same order as
// Parse.
func parse6(b []byte, p *Packet) Reason {
	n := IPv6FixedSize + int(binary.BigEndian.Uint16(b[4:]))
	if n > len(b) {
		return BadTotalLength
	}
	b = b[:n]
	t := b[IPv6FixedSize:]
	if len(t) < TCPMinimumSize {
		return Truncated
	}
	do := int(t[12]>>4) * 4
	if do < TCPMinimumSize || do > len(t) {
		return BadDataOffset
	}
	p.V6 = true
	binary.LittleEndian.PutUint64(p.Src[0:], binary.LittleEndian.Uint64(b[8:]))
	binary.LittleEndian.PutUint64(p.Src[8:], binary.LittleEndian.Uint64(b[16:]))
	binary.LittleEndian.PutUint64(p.Dst[0:], binary.LittleEndian.Uint64(b[24:]))
	binary.LittleEndian.PutUint64(p.Dst[8:], binary.LittleEndian.Uint64(b[32:]))
	p.IP = b[:IPv6FixedSize]
	p.TCP = t[:do]
	p.Payload = t[do:]
	return ParseOptions(p.TCP, &p.Opts)
}
