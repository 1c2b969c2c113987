package probe

import (
	"errors"
	"time"
)

// Result is what a backend's SYN-ACK negotiated with a probe
// connection (see Probe).
type Result struct {
	// MSS is the maximum segment size the server advertised (RFC 9293
	// §3.7.1). A path MTU below it makes this a lower bound.
	MSS uint16
	// WScale is the server's window scale shift (RFC 7323 §2.3), or -1 when
	// its SYN-ACK carried no window-scale option.
	WScale     int8
	SACK       bool // SACK permitted (RFC 2018 §2)
	Timestamps bool // timestamps agreed (RFC 7323 §3.2)
	// ECN reports that the server agreed to ECN (RFC 3168 §6.1.1). It means
	// something only when ECNAsked: the probe's SYN asks for ECN only when
	// this host's net.ipv4.tcp_ecn is 1 (or its route has "features ecn").
	ECN, ECNAsked bool
	// Window is the window field of the SYN-ACK (never scaled, RFC 7323
	// §2.2), or 0 when the kernel does not report it (before Linux 6.2).
	Window uint16
}

// DefaultTimeout bounds one probe when Probe is given no timeout.
const DefaultTimeout = 2 * time.Second

// ErrTarget is returned by Probe for a target that is not a valid
// address and non-zero port.
var ErrTarget = errors.New("probe: invalid target address or port")
