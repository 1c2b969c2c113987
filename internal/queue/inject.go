package queue

import (
	"errors"
	"sync/atomic"
)

// InjectorConfig configures a RawInjector. The zero value means the
// defaults.
type InjectorConfig struct {
	// Mark is set on every injected packet with SO_MARK so that the rules
	// exempt them; DefaultMark when zero.
	Mark uint32
	// NetNS, when non-zero, is an open file descriptor of the network
	// namespace to send into.
	NetNS int
}

// ErrBadInjectPacket is counted for a packet to inject that is not a
// complete IPv4 or IPv6 header.
var ErrBadInjectPacket = errors.New("queue: injected packet is not an IPv4 or IPv6 packet")

// InjectorStats are a RawInjector's counters.
type InjectorStats struct {
	Sent   uint64 // packets handed to the kernel
	Errors uint64 // packets the kernel refused or that were malformed
	Calls  uint64 // sendmmsg calls
}

type injCounters struct {
	sent, errors, calls atomic.Uint64
}

// maxInjectBatch is the number of packets one sendmmsg call carries.
const maxInjectBatch = 64

// ipVersion returns 4 or 6 for a packet long enough to hold that version's
// header, and 0 otherwise.
func ipVersion(pkt []byte) int {
	if len(pkt) == 0 {
		return 0
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) >= 20 {
			return 4
		}
	case 6:
		if len(pkt) >= 40 {
			return 6
		}
	}
	return 0
}
