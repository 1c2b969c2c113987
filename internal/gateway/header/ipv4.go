package header

import "encoding/binary"

// Sizes and protocol numbers.
const (
	IPv4MinimumSize = 20 // RFC 791 §3.1, IHL = 5
	IPv6FixedSize   = 40 // RFC 8200 §3
	TCPMinimumSize  = 20 // RFC 9293 §3.1, data offset = 5
	ProtocolTCP     = 6  // IANA protocol number of TCP
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
func (b IPv4) TOS() uint8                  { return b[1] }
func (b IPv4) TotalLength() uint16         { return binary.BigEndian.Uint16(b[2:]) }
func (b IPv4) Identification() uint16      { return binary.BigEndian.Uint16(b[4:]) }
func (b IPv4) Flags() uint8                { return b[6] >> 5 }
func (b IPv4) FragmentOffset() uint16      { return binary.BigEndian.Uint16(b[6:]) & 0x1fff } // in 8-byte units
func (b IPv4) TTL() uint8                  { return b[8] }
func (b IPv4) Protocol() uint8             { return b[9] }
func (b IPv4) Checksum() uint16            { return binary.BigEndian.Uint16(b[10:]) }
func (b IPv4) SourceAddress() [4]byte      { return [4]byte(b[12:16]) }
func (b IPv4) DestinationAddress() [4]byte { return [4]byte(b[16:20]) }

// SetIHL sets the header length in 32-bit words and the version to 4.
func (b IPv4) SetIHL(words uint8)              { b[0] = 4<<4 | words&0xf }
func (b IPv4) SetTOS(v uint8)                  { b[1] = v }
func (b IPv4) SetTotalLength(v uint16)         { binary.BigEndian.PutUint16(b[2:], v) }
func (b IPv4) SetIdentification(v uint16)      { binary.BigEndian.PutUint16(b[4:], v) }
func (b IPv4) SetTTL(v uint8)                  { b[8] = v }
func (b IPv4) SetProtocol(v uint8)             { b[9] = v }
func (b IPv4) SetChecksum(v uint16)            { binary.BigEndian.PutUint16(b[10:], v) }
func (b IPv4) SetSourceAddress(a [4]byte)      { copy(b[12:16], a[:]) }
func (b IPv4) SetDestinationAddress(a [4]byte) { copy(b[16:20], a[:]) }

// SetFlagsFragmentOffset sets the 3 flag bits and the 13-bit fragment offset
// (in 8-byte units).
func (b IPv4) SetFlagsFragmentOffset(flags uint8, offset uint16) {
	binary.BigEndian.PutUint16(b[6:], uint16(flags&7)<<13|offset&0x1fff)
}

// IsFragment reports whether the header describes a fragment: MF set or a
// non-zero offset (RFC 791 §3.2).
func (b IPv4) IsFragment() bool { return binary.BigEndian.Uint16(b[6:])&0x3fff != 0 }
