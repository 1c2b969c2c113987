// Package engine is the contract between synwall's engine (package gateway)
// and everything that feeds it or reads its outcome: the kernel queue
// binding, the BPF SYN stage, the observer and the daemon's exporters. It
// names what a packet comes with (Meta), what the engine decides (Result:
// Verdict, packets to inject, Event, Direction, drop Reason) and the
// Processor interface a queue worker calls.
//
// It imports nothing of synwall's but gateway/header, which owns the drop
// reasons (header.Reason) because it is the code that finds them; header
// itself imports nothing of ours. The kernel side and the observer import
// this package, not the engine, so that they can be built and tested
// without the SYN cache, flow table or cookies.
package engine

import (
	"time"

	"github.com/synwall/synwall/internal/gateway/header"
)

// Processor decides what happens to one queued packet. *gateway.Worker
// satisfies it. A Processor is used by one queue worker goroutine only.
type Processor interface {
	Process(pkt []byte, meta Meta, now time.Time, r *Result)
}

// Verdict is what the kernel is told about a queued packet. Zero is invalid.
type Verdict uint8

const (
	VerdictInvalid Verdict = iota
	Accept                 // let the packet go on; Result.Packet replaces it when non-nil
	Drop
)

// String returns "accept", "drop" or "invalid".
func (v Verdict) String() string {
	switch v {
	case Accept:
		return "accept"
	case Drop:
		return "drop"
	}
	return "invalid"
}

// Meta is what the queue knows about a packet besides its bytes.
type Meta struct {
	// CsumNotReady: the kernel would have completed the TCP checksum later
	// (GSO super-packets, NFQA_SKB_CSUMNOTREADY); the checksum field holds
	// only the pseudo-header sum. A rewritten packet then gets a full
	// checksum, never an incremental update.
	CsumNotReady bool
	// CsumNotVerified: the kernel has not verified the TCP checksum
	// (NFQA_SKB_CSUM_NOTVERIFIED); the engine verifies it before it acts
	// on the packet. False means the kernel has verified it, or the
	// checksum is not ready (CsumNotReady), i.e. the packet was made on
	// this host.
	CsumNotVerified bool
}

// Result is the outcome of Worker.Process. Its slices point into the packet
// given to Process or into the worker's own buffers, and are valid until the
// worker's next Process call.
type Result struct {
	Verdict Verdict
	// Packet, when non-nil with Accept, is the packet to pass on instead of
	// the original (an altered-payload verdict). It may be the input slice
	// rewritten in place or a worker buffer.
	Packet []byte
	// Inject are complete IP packets, checksums set, to send through a raw
	// socket, in order.
	Inject [][]byte
	// Reason is set for packets dropped by the header checks.
	Reason header.Reason
	// Event says what the engine did, for counters and logs.
	Event Event
	// Dir is the way the packet goes relative to the guarded service, once
	// the engine could tell (DirNone before that and for unguarded packets).
	Dir Direction
}

// Direction is the way a packet goes between a client and a guarded
// service. Zero means not known: the packet was dropped before the engine
// could tell, or it belongs to no guarded service.
type Direction uint8

const (
	DirNone     Direction = iota
	DirToServer           // client → guarded service
	DirToClient           // guarded service → client
	NumDirections
)

// String returns "none", "to_server" or "to_client".
func (d Direction) String() string {
	switch d {
	case DirToServer:
		return "to_server"
	case DirToClient:
		return "to_client"
	}
	return "none"
}

// NumVerdicts sizes arrays indexed by Verdict (VerdictInvalid included).
const NumVerdicts = int(Drop) + 1

// Event classifies what Process did with a packet. Zero is invalid.
type Event uint8

const (
	EventInvalid       Event = iota
	EventMalformed           // dropped by header checks (see Result.Reason)
	EventUnguarded           // no service matches; accepted untouched
	EventPassed              // service in pass mode
	EventPolicyDrop          // service in drop mode, or a denied source
	EventSynAnswered         // SYN answered with a cookie SYN-ACK
	EventSynLimited          // SYN, or handshake ACK, dropped by a rate limit or a source's flow quota
	EventHandshake           // valid ACK: flow created, SYN sent to the server
	EventBadCookie           // ACK with an invalid cookie, dropped
	EventExpiredCookie       // ACK with an expired cookie, dropped
	EventServerUp            // server SYN-ACK: flow established
	EventServerRefused       // server RST during the handshake: client told
	EventTranslated          // established-flow packet translated
	EventHeld                // client data held until the server side is up
	EventUnknown             // no flow and not a handshake packet: dropped
	EventBadReset            // RST outside the receiver's window (RFC 5961 §3.2): dropped
	EventResync              // the server answered our SYN with an ACK for an older connection: it gets an RST and a new SYN
	EventOutbound            // a guarded server's own outbound connection: passed untouched
	EventBadChecksum         // TCP checksum wrong where the kernel had not checked it (Meta.CsumNotVerified): dropped
	NumEvents
)

var eventNames = [NumEvents]string{
	EventInvalid:       "invalid",
	EventMalformed:     "malformed",
	EventUnguarded:     "unguarded",
	EventPassed:        "passed",
	EventPolicyDrop:    "policy_drop",
	EventSynAnswered:   "syn_answered",
	EventSynLimited:    "syn_limited",
	EventHandshake:     "handshake",
	EventBadCookie:     "bad_cookie",
	EventExpiredCookie: "expired_cookie",
	EventServerUp:      "server_up",
	EventServerRefused: "server_refused",
	EventTranslated:    "translated",
	EventHeld:          "held",
	EventUnknown:       "unknown",
	EventBadReset:      "bad_reset",
	EventResync:        "resync",
	EventOutbound:      "outbound",
	EventBadChecksum:   "bad_checksum",
}

// String returns a short snake_case name used in metrics and logs.
func (e Event) String() string {
	if e < NumEvents {
		return eventNames[e]
	}
	return "invalid"
}
