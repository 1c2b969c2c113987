package header

import "encoding/binary"

// ICMP and ICMPv6 protocol numbers and the error types that quote the
// packet they are about (RFC 792, RFC 4443 §3).
const (
	ProtocolICMP   = 1
	ProtocolICMPv6 = 58

	ICMPDestUnreachable = 3  // code 4: fragmentation needed (RFC 1191)
	ICMPTimeExceeded    = 11 //
	ICMPParamProblem    = 12 //

	ICMPv6DestUnreachable = 1
	ICMPv6PacketTooBig    = 2 // RFC 8201
	ICMPv6TimeExceeded    = 3
	ICMPv6ParamProblem    = 4

	// ICMPHeaderSize is the ICMP and ICMPv6 header before the quoted
	// packet: type, code, checksum and four bytes (RFC 792, RFC 4443 §2.1).
	ICMPHeaderSize = 8
	// ICMPChecksumOffset is the offset of the checksum in that header.
	ICMPChecksumOffset = 2
)

// ICMPError is what ParseICMPError finds in an ICMP error about a TCP
// segment: the outer addresses and where the quoted segment's fields are,
// as offsets into the packet so that a translator can rewrite them.
type ICMPError struct {
	V6       bool
	Src, Dst [16]byte // of the ICMP message (IPv4 in the first 4 bytes)
	// Inner addresses and ports: of the quoted segment, which went from
	// InnerSrc to InnerDst.
	InnerSrc, InnerDst         [16]byte
	InnerSrcPort, InnerDstPort uint16
	// ICMPOffset is where the ICMP message starts (its checksum is at
	// ICMPOffset+ICMPChecksumOffset), SeqOffset where the quoted
	// sequence number is; the quote holds at least the first 8 bytes of
	// the TCP header (RFC 792), so nothing past the sequence number is
	// sure to be there.
	ICMPOffset, SeqOffset int
}

// ParseICMPError validates b as an IPv4 packet carrying an ICMP error, or
// an IPv6 packet carrying an ICMPv6 error right after its fixed header,
// that quotes a TCP segment of the same family (IPv4 with any IHL, IPv6
// with TCP right after the fixed header), and fills e. It returns OK, or
// NotTCP for anything else, or a structural reason. It neither allocates
// nor panics.
func ParseICMPError(b []byte, e *ICMPError) Reason {
	var off int
	switch {
	case len(b) >= IPv4MinimumSize && b[0]>>4 == 4:
		ihl := int(b[0]&0xf) * 4
		if ihl < IPv4MinimumSize || ihl > len(b) {
			return BadIHL
		}
		tl := int(binary.BigEndian.Uint16(b[IPv4TotalLengthOffset:]))
		if tl < ihl || tl > len(b) {
			return BadTotalLength
		}
		b = b[:tl]
		if IPv4(b).IsFragment() {
			return Fragment
		}
		if b[IPv4ProtocolOffset] != ProtocolICMP {
			return NotTCP
		}
		e.V6 = false
		e.Src, e.Dst = [16]byte{}, [16]byte{}
		copy(e.Src[:4], b[IPv4SrcOffset:IPv4SrcOffset+4])
		copy(e.Dst[:4], b[IPv4DstOffset:IPv4DstOffset+4])
		off = ihl
		if len(b)-off < ICMPHeaderSize {
			return Truncated
		}
		switch b[off] {
		case ICMPDestUnreachable, ICMPTimeExceeded, ICMPParamProblem:
		default:
			return NotTCP
		}
		q := b[off+ICMPHeaderSize:]
		if len(q) < IPv4MinimumSize || q[0]>>4 != 4 {
			return NotTCP
		}
		qihl := int(q[0]&0xf) * 4
		if qihl < IPv4MinimumSize || len(q) < qihl+8 || q[IPv4ProtocolOffset] != ProtocolTCP {
			return NotTCP
		}
		e.InnerSrc, e.InnerDst = [16]byte{}, [16]byte{}
		copy(e.InnerSrc[:4], q[IPv4SrcOffset:IPv4SrcOffset+4])
		copy(e.InnerDst[:4], q[IPv4DstOffset:IPv4DstOffset+4])
		t := q[qihl:]
		e.InnerSrcPort, e.InnerDstPort = binary.BigEndian.Uint16(t[TCPSrcPortOffset:]), binary.BigEndian.Uint16(t[TCPDstPortOffset:])
		e.ICMPOffset, e.SeqOffset = off, off+ICMPHeaderSize+qihl+TCPSeqNumOffset
		return OK
	case len(b) >= IPv6FixedSize && b[0]>>4 == 6:
		n := IPv6FixedSize + int(binary.BigEndian.Uint16(b[IPv6PayloadLengthOffset:]))
		if n > len(b) {
			return BadTotalLength
		}
		b = b[:n]
		if b[IPv6NextHeaderOffset] != ProtocolICMPv6 {
			return NotTCP
		}
		e.V6 = true
		copy(e.Src[:], b[IPv6SrcOffset:IPv6SrcOffset+16])
		copy(e.Dst[:], b[IPv6DstOffset:IPv6DstOffset+16])
		off = IPv6FixedSize
		if len(b)-off < ICMPHeaderSize {
			return Truncated
		}
		switch b[off] {
		case ICMPv6DestUnreachable, ICMPv6PacketTooBig, ICMPv6TimeExceeded, ICMPv6ParamProblem:
		default:
			return NotTCP
		}
		q := b[off+ICMPHeaderSize:]
		if len(q) < IPv6FixedSize+8 || q[0]>>4 != 6 || q[IPv6NextHeaderOffset] != ProtocolTCP {
			return NotTCP
		}
		copy(e.InnerSrc[:], q[IPv6SrcOffset:IPv6SrcOffset+16])
		copy(e.InnerDst[:], q[IPv6DstOffset:IPv6DstOffset+16])
		t := q[IPv6FixedSize:]
		e.InnerSrcPort, e.InnerDstPort = binary.BigEndian.Uint16(t[TCPSrcPortOffset:]), binary.BigEndian.Uint16(t[TCPDstPortOffset:])
		e.ICMPOffset, e.SeqOffset = off, off+ICMPHeaderSize+IPv6FixedSize+TCPSeqNumOffset
		return OK
	}
	if len(b) == 0 {
		return Truncated
	}
	return BadVersion
}
