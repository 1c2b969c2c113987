package header

import "encoding/binary"

// Sizes and protocol numbers.
const (
	IPv4MinimumSize = 20 // RFC 791 §3.1, IHL = 5
	IPv6FixedSize   = 40 // RFC 8200 §3
	TCPMinimumSize  = 20 // RFC 9293 §3.1, data offset = 5
	ProtocolTCP     = 6  // IANA protocol number of TCP
)

// Offsets of the fields of the IPv4 header (RFC 791 §3.1).
const (
	IPv4TotalLengthOffset = 2
	IPv4IDOffset          = 4
	IPv4FragmentOffset    = 6 // flags (3 bits) and fragment offset (13 bits)
	IPv4TTLOffset         = 8
	IPv4ProtocolOffset    = 9
	IPv4ChecksumOffset    = 10
	IPv4SrcOffset         = 12
	IPv4DstOffset         = 16
)

// IPv4 fragmentation bits of the flags field (RFC 791 §3.1).
const (
	IPv4DontFragment  = 0x2 // DF
	IPv4MoreFragments = 0x1 // MF
)

// IPv4 is a view of an IPv4 header (RFC 791 §3.1). The view must hold at
// least IPv4MinimumSize bytes; accessors do not check.
type IPv4 []byte

func (b IPv4) Version() uint8 { return b[0] >> 4 }

// IHL is the header length in 32-bit words.
func (b IPv4) IHL() uint8 { return b[0] & 0xf }

// HeaderLength is the header length in bytes (IHL * 4).
func (b IPv4) HeaderLength() int { return int(b[0]&0xf) * 4 }

// TOS is the former type-of-service octet: DSCP (RFC 2474) and ECN (RFC 3168).
func (b IPv4) TOS() uint8             { return b[1] }
func (b IPv4) TotalLength() uint16    { return binary.BigEndian.Uint16(b[IPv4TotalLengthOffset:]) }
func (b IPv4) Identification() uint16 { return binary.BigEndian.Uint16(b[IPv4IDOffset:]) }
func (b IPv4) Flags() uint8           { return b[IPv4FragmentOffset] >> 5 }

// FragmentOffset is in 8-byte units.
func (b IPv4) FragmentOffset() uint16 {
	return binary.BigEndian.Uint16(b[IPv4FragmentOffset:]) & 0x1fff
}
func (b IPv4) TTL() uint8                  { return b[IPv4TTLOffset] }
func (b IPv4) Protocol() uint8             { return b[IPv4ProtocolOffset] }
func (b IPv4) Checksum() uint16            { return binary.BigEndian.Uint16(b[IPv4ChecksumOffset:]) }
func (b IPv4) SourceAddress() [4]byte      { return [4]byte(b[IPv4SrcOffset : IPv4SrcOffset+4]) }
func (b IPv4) DestinationAddress() [4]byte { return [4]byte(b[IPv4DstOffset : IPv4DstOffset+4]) }

// SetChecksum stores the header checksum field (see SetIPv4Checksum).
func (b IPv4) SetChecksum(v uint16) { binary.BigEndian.PutUint16(b[IPv4ChecksumOffset:], v) }

// IsFragment reports whether the header describes a fragment: MF set or a
// non-zero offset (RFC 791 §3.2).
func (b IPv4) IsFragment() bool { return binary.BigEndian.Uint16(b[IPv4FragmentOffset:])&0x3fff != 0 }
