package header

import "encoding/binary"

// IPv6 extension header and next-header values (RFC 8200 §4, IANA).
const (
	IPv6HopByHop     = 0
	IPv6Routing      = 43
	IPv6Fragment     = 44
	IPv6ESP          = 50
	IPv6AH           = 51
	IPv6NoNextHeader = 59
	IPv6DestOptions  = 60
)

// Offsets of the fields of the IPv6 fixed header (RFC 8200 §3).
const (
	IPv6PayloadLengthOffset = 4
	IPv6NextHeaderOffset    = 6
	IPv6HopLimitOffset      = 7
	IPv6SrcOffset           = 8
	IPv6DstOffset           = 24
)

// MaxExtHeaders is the number of IPv6 extension headers Parse walks before it
// gives up with BadExtHeader.
const MaxExtHeaders = 8

// IPv6 is a view of an IPv6 fixed header (RFC 8200 §3). The view must hold at
// least IPv6FixedSize bytes; accessors do not check.
type IPv6 []byte

func (b IPv6) Version() uint8 { return b[0] >> 4 }

// TrafficClass holds DSCP (RFC 2474) and ECN (RFC 3168).
func (b IPv6) TrafficClass() uint8 { return uint8(binary.BigEndian.Uint16(b[0:]) >> 4) }

// FlowLabel is the 20-bit flow label (RFC 6437).
func (b IPv6) FlowLabel() uint32     { return binary.BigEndian.Uint32(b[0:]) & 0xfffff }
func (b IPv6) PayloadLength() uint16 { return binary.BigEndian.Uint16(b[IPv6PayloadLengthOffset:]) }
func (b IPv6) NextHeader() uint8     { return b[IPv6NextHeaderOffset] }
func (b IPv6) HopLimit() uint8       { return b[IPv6HopLimitOffset] }
func (b IPv6) SourceAddress() [16]byte {
	return [16]byte(b[IPv6SrcOffset : IPv6SrcOffset+16])
}
func (b IPv6) DestinationAddress() [16]byte {
	return [16]byte(b[IPv6DstOffset : IPv6DstOffset+16])
}
