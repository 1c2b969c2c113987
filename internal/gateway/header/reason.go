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
	RstFin           // RST together with FIN
	NumReasons
)

var reasonNames = [NumReasons]string{
	ReasonInvalid:    "invalid",
	OK:               "ok",
	Truncated:        "truncated",
	BadVersion:       "bad_version",
	BadIHL:           "bad_ihl",
	BadTotalLength:   "bad_total_length",
	Fragment:         "fragment",
	BadExtHeader:     "bad_ext_header",
	NotTCP:           "not_tcp",
	BadDataOffset:    "bad_data_offset",
	BadOption:        "bad_option",
	SynFin:           "syn_fin",
	SynRst:           "syn_rst",
	FinNoAck:         "fin_no_ack",
	NullFlags:        "null_flags",
	Xmas:             "xmas",
	NoAck:            "no_ack",
	SynAckFromClient: "syn_ack_from_client",
	ServerSyn:        "server_syn",
	RstFin:           "rst_fin",
}

// String returns a short snake_case name used in metrics and logs. Values
// outside the enum are reported as "unknown".
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}
