package header

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
//
// The rules are those of Linux conntrack (tcp_valid_flags) and pf: ECE and
// CWR (RFC 3168 §6.1) never matter, and PSH is ignored when judging SYN and
// RST segments. Valid are SYN (from a client, URG allowed), SYN+ACK (from a
// server), RST with or without ACK, and any segment with ACK but without
// SYN/RST. Everything else gets the most specific reason.
//
// The rules are precomputed into a 128-entry table; CheckFlags is one load.
func CheckFlags(flags uint8, fromServer bool) Reason {
	var s uint8
	if fromServer {
		s = 1
	}
	return flagTable[s][flags&0x3f]
}

// flagTable holds checkFlags for both directions and every combination of
// FIN, SYN, RST, PSH, ACK and URG.
var flagTable = func() (t [2][64]Reason) {
	for f := range 64 {
		t[0][f] = checkFlags(uint8(f), false)
		t[1][f] = checkFlags(uint8(f), true)
	}
	return t
}()

// checkFlags is CheckFlags written out as rules.
func checkFlags(flags uint8, fromServer bool) Reason {
	f := flags & (FIN | SYN | RST | PSH | ACK | URG)
	if f&SYN != 0 {
		switch {
		case f&FIN != 0:
			return SynFin
		case f&RST != 0:
			return SynRst
		case f&ACK != 0:
			if !fromServer {
				return SynAckFromClient
			}
			return OK
		case fromServer:
			return ServerSyn
		}
		return OK
	}
	if f&RST != 0 {
		if f&FIN != 0 {
			return RstFin
		}
		return OK
	}
	if f&ACK != 0 {
		return OK
	}
	// Neither SYN, RST nor ACK.
	switch {
	case f == 0:
		return NullFlags
	case f == FIN|PSH|URG:
		return Xmas
	case f&FIN != 0:
		return FinNoAck
	}
	return NoAck
}
