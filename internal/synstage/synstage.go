package synstage

import (
	"errors"
	"fmt"

	"github.com/synwall/synwall/internal/gateway/header"
)

// ErrUnavailable wraps every error that means the stage cannot run here:
// no BPF, no privileges, a kernel without tcx or a driver without native
// XDP, a program the verifier refuses. The daemon then runs on NFQUEUE
// alone and says so in its log, status and metrics.
var ErrUnavailable = errors.New("synstage: BPF SYN stage unavailable")

// ErrClosed is returned by a Stage after Close.
var ErrClosed = errors.New("synstage: stage closed")

// AttachMode is how the program is attached. The zero value is invalid.
type AttachMode uint8

const (
	AttachInvalid AttachMode = iota
	AttachTCX                // tc ingress through tcx (kernel 6.6 or later): any device
	AttachXDP                // native XDP: NICs whose driver supports it
)

// String returns the mode's policy and flag spelling.
func (m AttachMode) String() string {
	switch m {
	case AttachTCX:
		return "tc"
	case AttachXDP:
		return "xdp"
	}
	return "invalid"
}

// ParseAttachMode reads "tc" (or "tcx") and "xdp".
func ParseAttachMode(s string) (AttachMode, error) {
	switch s {
	case "tc", "tcx":
		return AttachTCX, nil
	case "xdp":
		return AttachXDP, nil
	}
	return AttachInvalid, fmt.Errorf("synstage: attach mode %q is not tc or xdp", s)
}

// Options set up Load.
type Options struct {
	// SourceLimitSlots sizes the fixed table of per-source SYN limiters
	// (all services together, rounded up to a power of two); zero keeps
	// the program's 65536.
	SourceLimitSlots int
	// CacheBuckets and CacheEntries size the SYN cache the program shares
	// with the engine (buckets rounded up to a power of two); zero takes
	// the engine's defaults. They must be the engine's sizes.
	CacheBuckets, CacheEntries int
	// Flows is the engine's flow table capacity (gateway Config.Flows),
	// which sizes the map of its slot tags; zero takes the engine's
	// default.
	Flows int
	// Inherited are the stage's objects an earlier process handed over
	// (InheritFromEnv, on a graceful restart): Load adopts them, see Load.
	Inherited *Inherited
}

// Attachment is one interface the program is attached to.
type Attachment struct {
	Interface string
	Mode      AttachMode
	// Peer: a tcx attachment on a veth whose peer is in another network
	// namespace, where SYN-ACKs go straight to the peer's ingress
	// (bpf_redirect_peer) instead of out through the veth.
	Peer bool
}

// Stats are the stage's counters since it was loaded (across graceful
// restarts when the next process adopted it), summed over CPUs.
type Stats struct {
	// Drops counts malformed and invalid-flag segments dropped, by the
	// engine's reason (the same names in metrics).
	Drops [header.NumReasons]uint64

	Answered       uint64 // SYNs answered with a cookie SYN-ACK
	Unguarded      uint64 // passed: not TCP to a guarded address and port
	Unparsed       uint64 // passed to the NFQUEUE path: VLAN, IPv4 options, IPv6 extension headers, fragments
	PassMode       uint64 // passed: service in pass mode
	NotSYN         uint64 // passed to the NFQUEUE path: handshake ACKs and flows of proxied services
	InvalidCounted uint64 // passed: invalid flags under invalid_flags: count
	NoKey          uint64 // passed to the NFQUEUE path: no key for the current counter
	BadIPChecksum  uint64 // passed to the stack, which drops them
	Martian        uint64 // passed to the stack: sources never answered
	OtherHost      uint64 // passed: frames not addressed to this host
	TooManyRanges  uint64 // passed to the NFQUEUE path: prefix with more port ranges than the map holds
	Errors         uint64 // passed: the SYN-ACK could not be built in the packet
	Denied         uint64 // dropped: deny list
	PolicyDrops    uint64 // dropped: service in drop mode
	SynLimited     uint64 // dropped: per-source SYN limit
	SynAckLimited  uint64 // dropped: global SYN-ACK limit
	LiveFlow       uint64 // passed to the NFQUEUE path: SYN on the tuple of a flow the engine holds
}

// DroppedMalformed returns the sum of Drops.
func (s *Stats) DroppedMalformed() uint64 {
	var n uint64
	for _, v := range s.Drops {
		n += v
	}
	return n
}

// Sample is a frame the program dropped and sampled (Stage.SetSampling,
// Stage.ReadSamples).
type Sample struct {
	// Reason is the engine's reason of a malformed or invalid-flag drop;
	// header.OK for the stage's other drops, which PolicyDrop and Limited
	// name.
	Reason     header.Reason
	PolicyDrop bool // deny list, or a service in drop mode
	Limited    bool // per-source SYN limit or global SYN-ACK limit
	Len        int  // the frame's length, Ethernet header included
	// Packet is the frame's first bytes (up to 242) from the IP header
	// on.
	Packet []byte
}
