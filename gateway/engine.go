package gateway

import (
	"time"

	"github.com/synwall/synwall/gateway/header"
	"github.com/synwall/synwall/policy"
)

// Verdict is what the kernel is told about a queued packet. Zero is invalid.
type Verdict uint8

const (
	VerdictInvalid Verdict = iota
	Accept                 // let the packet go on; Result.Packet replaces it when non-nil
	Drop
)

// Meta is what the queue knows about a packet besides its bytes.
type Meta struct {
	// CsumNotReady: the kernel will complete the TCP checksum later (GSO
	// super-packets, NFQA_SKB_CSUMNOTREADY); the checksum field holds only the
	// pseudo-header sum and must not be updated incrementally.
	CsumNotReady bool
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
}

// Event classifies what Process did with a packet. Zero is invalid.
type Event uint8

const (
	EventInvalid       Event = iota
	EventMalformed           // dropped by header checks (see Result.Reason)
	EventUnguarded           // no service matches; accepted untouched
	EventPassed              // service in pass mode
	EventPolicyDrop          // service in drop mode
	EventSynAnswered         // SYN answered with a cookie SYN-ACK
	EventSynLimited          // SYN dropped by a rate limit
	EventHandshake           // valid ACK: flow created, SYN sent to the server
	EventBadCookie           // ACK with an invalid cookie, dropped
	EventExpiredCookie       // ACK with an expired cookie, dropped
	EventServerUp            // server SYN-ACK: flow established
	EventServerRefused       // server RST during the handshake: client told
	EventTranslated          // established-flow packet translated
	EventHeld                // client data held until the server side is up
	EventUnknown             // no flow and not a handshake packet: dropped
	NumEvents
)

// Engine holds the state shared by all workers: cookie keys, SYN cache, flow
// table, policy and counters.
type Engine struct{ _ struct{} }

// Worker processes packets for one queue. It owns reusable buffers and must
// not be used by two goroutines at once.
type Worker struct{ _ struct{} }

// Process decides what happens to pkt, a whole IP packet taken at time now.
// It may rewrite pkt in place. It never allocates and never panics.
func (w *Worker) Process(pkt []byte, meta Meta, now time.Time, r *Result) { panic("todo") }

// SetPolicy swaps the policy atomically. Flows and the SYN cache survive.
func (e *Engine) SetPolicy(p *policy.Policy) { panic("todo") }
