package header

import "encoding/binary"

// Offsets of the fields of the fixed TCP header (RFC 9293 §3.1). Code
// outside this package that writes a header field in place names it by
// these.
const (
	TCPSrcPortOffset    = 0
	TCPDstPortOffset    = 2
	TCPSeqNumOffset     = 4
	TCPAckNumOffset     = 8
	TCPDataOffsetOffset = 12 // data offset (high 4 bits) and reserved bits; the flags follow
	TCPFlagsOffset      = 13
	TCPWindowOffset     = 14
	TCPChecksumOffset   = 16
	TCPUrgentOffset     = 18
)

// TCP is a view of a TCP header (RFC 9293 §3.1). The view must hold at least
// TCPMinimumSize bytes, and DataOffset bytes for Options; accessors do not
// check. Parse returns a view of exactly DataOffset bytes.
type TCP []byte

func (b TCP) SourcePort() uint16      { return binary.BigEndian.Uint16(b[TCPSrcPortOffset:]) }
func (b TCP) DestinationPort() uint16 { return binary.BigEndian.Uint16(b[TCPDstPortOffset:]) }
func (b TCP) SequenceNumber() uint32  { return binary.BigEndian.Uint32(b[TCPSeqNumOffset:]) }
func (b TCP) AckNumber() uint32       { return binary.BigEndian.Uint32(b[TCPAckNumOffset:]) }

// DataOffset is the header length in bytes (the field counts 32-bit words).
func (b TCP) DataOffset() int       { return int(b[TCPDataOffsetOffset]>>4) * 4 }
func (b TCP) Flags() uint8          { return b[TCPFlagsOffset] }
func (b TCP) WindowSize() uint16    { return binary.BigEndian.Uint16(b[TCPWindowOffset:]) }
func (b TCP) Checksum() uint16      { return binary.BigEndian.Uint16(b[TCPChecksumOffset:]) }
func (b TCP) UrgentPointer() uint16 { return binary.BigEndian.Uint16(b[TCPUrgentOffset:]) }

// Options returns the option bytes, between the fixed header and DataOffset.
func (b TCP) Options() []byte { return b[TCPMinimumSize:b.DataOffset()] }

// SetChecksum stores the checksum field; the other fields are written
// through a ChecksumDelta, which keeps the checksum right, or by builders
// through the offsets above.
func (b TCP) SetChecksum(v uint16) { binary.BigEndian.PutUint16(b[TCPChecksumOffset:], v) }

// SetAckNumber stores the acknowledgment number; the checksum is left as
// it was (the BPF SYN stage's tests craft handshake ACKs with it, then
// SetTCPChecksum).
func (b TCP) SetAckNumber(v uint32) { binary.BigEndian.PutUint32(b[TCPAckNumOffset:], v) }
