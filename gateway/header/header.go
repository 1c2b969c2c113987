package header

// Reason says why a packet is dropped before any state is touched. The zero
// value is invalid; OK means "nothing wrong".
type Reason uint8

const (
	ReasonInvalid Reason = iota
	OK
	// Malformed headers.
	Truncated      // shorter than the headers it claims
	BadVersion     // IP version neither 4 nor 6
	BadIHL         // IPv4 IHL < 5 or past the packet
	BadTotalLength // IPv4 total length / IPv6 payload length disagrees with the packet
	Fragment       // any IP fragment of TCP (IPv4 MF/offset, IPv6 fragment header)
	BadExtHeader   // IPv6 extension header chain that cannot be walked
	NotTCP         // the transport is not TCP
	BadDataOffset  // TCP data offset < 5 or past the packet
	BadOption      // a TCP option runs past the header or has an impossible length
	// Invalid flag combinations (conntrack / pf rules; see FACTS.md).
	SynFin           // SYN+FIN (and relatives with PSH/URG)
	SynRst           // SYN+RST (and RST+ACK+SYN)
	FinNoAck         // FIN without ACK
	NullFlags        // none of SYN, ACK, RST, FIN
	Xmas             // FIN+PSH+URG without ACK
	NoAck            // PSH or URG without ACK (and without SYN/RST)
	SynAckFromClient // SYN+ACK sent toward a guarded service
	ServerSyn        // SYN without ACK sent by a guarded service
	NumReasons
)

// String returns a short snake_case name used in metrics and logs.
func (r Reason) String() string { panic("todo") }

// TCP flag bits (RFC 9293 §3.1, RFC 3168).
const (
	FIN uint8 = 1 << iota
	SYN
	RST
	PSH
	ACK
	URG
	ECE
	CWR
)

// CheckFlags applies the flag sanity rules to the flags byte of a TCP header.
// fromServer says the packet was sent by the guarded service.
func CheckFlags(flags uint8, fromServer bool) Reason { panic("todo") }

// Packet is the result of Parse: views into the caller's buffer.
type Packet struct {
	V6       bool
	IP       []byte   // the IP header, IPv6 extension headers included
	TCP      TCP      // the TCP header, options included
	Payload  []byte   // TCP payload, trimmed to the IP length
	Src, Dst [16]byte // IPv4 addresses in the first 4 bytes
	Opts     Options
}

// Parse validates b as an IPv4 or IPv6 packet carrying TCP and fills p with
// views into b. It returns OK or the reason the packet must be dropped. It
// never allocates and never panics, whatever b holds.
func Parse(b []byte, p *Packet) Reason { panic("todo") }

// Options are the parsed TCP options of a segment (RFC 9293 §3.2, RFC 7323,
// RFC 2018). Offsets are from the start of the TCP header, 0 when absent, so
// that a translator can rewrite fields in place.
type Options struct {
	MSS           uint16
	HasMSS        bool
	WScale        uint8
	HasWScale     bool
	SACKPermitted bool
	HasTS         bool
	TSVal, TSEcr  uint32
	TSOffset      int // offset of the TSval field (TSecr follows at +4)
	SACKOffset    int // offset of the first SACK block's left edge
	SACKBlocks    int // number of SACK blocks (each 8 bytes)
}

// ParseOptions parses the options of a TCP header whose data offset was
// already validated.
func ParseOptions(t TCP, o *Options) Reason { panic("todo") }

// IPv4 is a view of an IPv4 header (RFC 791).
type IPv4 []byte

// IPv6 is a view of an IPv6 fixed header (RFC 8200).
type IPv6 []byte

// TCP is a view of a TCP header (RFC 9293 §3.1).
type TCP []byte

func (b TCP) SourcePort() uint16         { panic("todo") }
func (b TCP) DestinationPort() uint16    { panic("todo") }
func (b TCP) SequenceNumber() uint32     { panic("todo") }
func (b TCP) AckNumber() uint32          { panic("todo") }
func (b TCP) DataOffset() int            { panic("todo") } // in bytes
func (b TCP) Flags() uint8               { panic("todo") }
func (b TCP) WindowSize() uint16         { panic("todo") }
func (b TCP) Checksum() uint16           { panic("todo") }
func (b TCP) SetSequenceNumber(v uint32) { panic("todo") }
func (b TCP) SetAckNumber(v uint32)      { panic("todo") }
func (b TCP) SetWindowSize(v uint16)     { panic("todo") }
func (b TCP) SetChecksum(v uint16)       { panic("todo") }

// Checksum returns the one's-complement sum of b folded onto initial
// (RFC 1071), not complemented.
func Checksum(b []byte, initial uint16) uint16 { panic("todo") }

// PseudoHeaderChecksum returns the sum of the TCP pseudo-header (RFC 9293
// §3.1, RFC 8200 §8.1) for the given addresses and TCP length.
func PseudoHeaderChecksum(v6 bool, src, dst *[16]byte, tcpLen int) uint16 { panic("todo") }

// TCPChecksum computes the checksum of a whole TCP segment (header with a
// zero or any checksum field, which is skipped) and stores it.
func SetTCPChecksum(v6 bool, src, dst *[16]byte, seg TCP) { panic("todo") }

// VerifyTCPChecksum reports whether seg's checksum is right.
func VerifyTCPChecksum(v6 bool, src, dst *[16]byte, seg TCP) bool { panic("todo") }

// SetIPv4Checksum computes and stores the IPv4 header checksum.
func SetIPv4Checksum(h IPv4) { panic("todo") }

// UpdateChecksum32 returns csum (as stored in a header) after a 32-bit field
// covered by it changed from old to new (RFC 1624 eqn. 3).
func UpdateChecksum32(csum uint16, old, new uint32) uint16 { panic("todo") }

// UpdateChecksum16 is UpdateChecksum32 for a 16-bit field.
func UpdateChecksum16(csum uint16, old, new uint16) uint16 { panic("todo") }
