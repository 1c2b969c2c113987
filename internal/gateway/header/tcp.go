package header

import "encoding/binary"

// TCP is a view of a TCP header (RFC 9293 §3.1). The view must hold at least
// TCPMinimumSize bytes, and DataOffset bytes for Options; accessors do not
// check. Parse returns a view of exactly DataOffset bytes.
type TCP []byte

func (b TCP) SourcePort() uint16      { return binary.BigEndian.Uint16(b[0:]) }
func (b TCP) DestinationPort() uint16 { return binary.BigEndian.Uint16(b[2:]) }
func (b TCP) SequenceNumber() uint32  { return binary.BigEndian.Uint32(b[4:]) }
func (b TCP) AckNumber() uint32       { return binary.BigEndian.Uint32(b[8:]) }

// DataOffset is the header length in bytes (the field counts 32-bit words).
func (b TCP) DataOffset() int       { return int(b[12]>>4) * 4 }
func (b TCP) Flags() uint8          { return b[13] }
func (b TCP) WindowSize() uint16    { return binary.BigEndian.Uint16(b[14:]) }
func (b TCP) Checksum() uint16      { return binary.BigEndian.Uint16(b[16:]) }
func (b TCP) UrgentPointer() uint16 { return binary.BigEndian.Uint16(b[18:]) }

// Options returns the option bytes, between the fixed header and DataOffset.
func (b TCP) Options() []byte { return b[TCPMinimumSize:b.DataOffset()] }

func (b TCP) SetSourcePort(v uint16)      { binary.BigEndian.PutUint16(b[0:], v) }
func (b TCP) SetDestinationPort(v uint16) { binary.BigEndian.PutUint16(b[2:], v) }
func (b TCP) SetSequenceNumber(v uint32)  { binary.BigEndian.PutUint32(b[4:], v) }
func (b TCP) SetAckNumber(v uint32)       { binary.BigEndian.PutUint32(b[8:], v) }

// SetDataOffset sets the header length in bytes (a multiple of 4, 20..60);
// the reserved bits are cleared.
func (b TCP) SetDataOffset(n int)       { b[12] = uint8(n/4) << 4 }
func (b TCP) SetFlags(v uint8)          { b[13] = v }
func (b TCP) SetWindowSize(v uint16)    { binary.BigEndian.PutUint16(b[14:], v) }
func (b TCP) SetChecksum(v uint16)      { binary.BigEndian.PutUint16(b[16:], v) }
func (b TCP) SetUrgentPointer(v uint16) { binary.BigEndian.PutUint16(b[18:], v) }
