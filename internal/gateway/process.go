package gateway

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/synwall/synwall/internal/cookies"
	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
	"github.com/synwall/synwall/internal/policy"
)

// maxInject is the most packets one Process call sends: the ACK that
// completes the server's handshake and the held client segments.
const maxInject = 1 + MaxPendingPerFlow

// Worker processes packets for one queue. It owns reusable buffers and must
// not be used by two goroutines at once.
type Worker struct {
	e    *Engine
	ctr  *packetCounters
	pkt  header.Packet
	fix  header.Fixed
	icmp header.ICMPError
	tup  cookies.Tuple
	last [2]lastService // by family: 0 IPv4, 1 IPv6
	inj  [maxInject][]byte
	bufs [maxInject][bufSize]byte
}

// NewWorker returns a worker with its own buffers.
func (e *Engine) NewWorker() *Worker {
	w := &Worker{e: e, ctr: new(packetCounters)}
	e.mu.Lock()
	e.workers = append(e.workers, w.ctr)
	e.mu.Unlock()
	return w
}

var _ engine.Processor = (*Worker)(nil)

// Process decides what happens to pkt, a whole IP packet taken at time now.
// It may rewrite pkt in place. It never allocates and never panics.
func (w *Worker) Process(pkt []byte, meta engine.Meta, now time.Time, r *engine.Result) {
	*r = engine.Result{}
	w.process(pkt, meta, now, r)
	if r.Event < engine.NumEvents && r.Dir < engine.NumDirections && int(r.Verdict) < engine.NumVerdicts {
		w.ctr.events[r.Dir][r.Verdict][r.Event].Add(1)
	}
}

// process checks the headers, finds the packet's service and direction,
// applies the service's mode, and hands a proxied packet to the client
// side (client.go) or the server side (server.go).
func (w *Worker) process(pkt []byte, meta engine.Meta, now time.Time, r *engine.Result) {
	if w.dropInvalidFlagsEarly(pkt, r) {
		return
	}
	e := w.e
	p := &w.pkt
	if reason := header.Parse(pkt, p); reason != header.OK {
		if reason == header.NotTCP && w.icmpError(pkt, meta, now, r) {
			return
		}
		w.malformed(reason, r)
		return
	}
	act := e.cur.Load()
	pol := act.pol
	t := p.TCP
	sport, dport := t.SourcePort(), t.DestinationPort()
	fromServer := false
	svc := w.lookup(pol, p.V6, p.Dst[:], dport)
	if svc == nil {
		if svc = w.lookup(pol, p.V6, p.Src[:], sport); svc == nil {
			r.Verdict, r.Event = engine.Accept, engine.EventUnguarded
			return
		}
		fromServer = true
		r.Dir = engine.DirToClient
	} else {
		r.Dir = engine.DirToServer
	}
	flags := t.Flags()
	if reason := header.CheckFlags(flags, fromServer); reason != header.OK {
		if (reason == header.ServerSyn || reason == header.SynAckFromClient) && svc.Mode != policy.ModeDrop &&
			w.outbound(p, reason, now, r) {
			return
		}
		if pol.InvalidFlags == policy.InvalidFlagsCount {
			// Counted and let through, as the policy asks.
			w.ctr.drops[reason].Add(1)
			r.Verdict, r.Reason, r.Event = engine.Accept, reason, engine.EventPassed
			return
		}
		w.malformed(reason, r)
		return
	}
	if meta.CsumNotVerified && !meta.CsumNotReady && svc.Mode == policy.ModeProxy && !p.VerifyTCPChecksum() {
		// The kernel has not checked it, and what the engine answers,
		// holds or re-emits with a fresh checksum must not be corrupt.
		r.Verdict, r.Event = engine.Drop, engine.EventBadChecksum
		return
	}
	if !fromServer && len(pol.Deny) > 0 && pol.Denied(addrOf(&p.Src, p.V6)) {
		r.Verdict, r.Event = engine.Drop, engine.EventPolicyDrop
		return
	}
	switch svc.Mode {
	case policy.ModeProxy:
	case policy.ModePass:
		r.Verdict, r.Event = engine.Accept, engine.EventPassed
		return
	default:
		r.Verdict, r.Event = engine.Drop, engine.EventPolicyDrop
		return
	}
	if fromServer {
		w.fromServer(pkt, p, flags, meta, now, r)
		return
	}
	if flags&header.SYN != 0 {
		tup := &w.tup
		setTuple(tup, &p.Src, &p.Dst, sport, dport, p.V6)
		w.syn(p, svc, act, tup, flags, now, r)
		return
	}
	w.fromClient(pkt, p, svc, sport, dport, flags, meta, now, r)
}

// dropInvalidFlagsEarly drops a guarded packet whose TCP flags are invalid
// whatever its direction (SYN+FIN, null, xmas, ...) before the full parse,
// so that scans and malformed floods cost as little as possible. It reads
// only the fixed headers (header.Peek), and leaves everything it is not
// sure of (IPv6 extension headers, fragments, short packets, unguarded
// traffic, a policy that counts instead of dropping) to the full path.
func (w *Worker) dropInvalidFlagsEarly(pkt []byte, r *engine.Result) bool {
	f := &w.fix
	if !header.Peek(pkt, f) || !f.Whole {
		return false
	}
	reason := header.CheckFlags(f.Flags, false)
	if reason == header.OK || header.CheckFlags(f.Flags, true) == header.OK {
		return false
	}
	pol := w.e.cur.Load().pol
	if pol.InvalidFlags == policy.InvalidFlagsCount {
		return false
	}
	if w.lookup(pol, f.V6, f.Dst(pkt), f.DstPort) == nil {
		if w.lookup(pol, f.V6, f.Src(pkt), f.SrcPort) == nil {
			return false
		}
		reason = header.CheckFlags(f.Flags, true)
	}
	w.malformed(reason, r)
	return true
}

func (w *Worker) malformed(reason header.Reason, r *engine.Result) {
	if reason >= header.NumReasons {
		reason = header.ReasonInvalid
	}
	w.ctr.drops[reason].Add(1)
	r.Verdict, r.Reason, r.Event = engine.Drop, reason, engine.EventMalformed
}

// lastService is the last service a worker found for one family. The
// policy is immutable, so the entry stays exact as long as pol is the one in
// use (holding it also keeps its address from being reused).
type lastService struct {
	pol    *policy.Policy
	a0, a1 uint64 // the address, as words
	port   uint16
	svc    *policy.Service
}

// lookup is pol.LookupIP for an address of 4 bytes (IPv4, or the first 4
// of header.Packet's 16) or 16 (IPv6), served from the worker's last hit
// when the address and port are the same, so that a run of packets to or
// from one service skips the policy's hash tables. Misses are not
// remembered.
func (w *Worker) lookup(pol *policy.Policy, v6 bool, a []byte, port uint16) *policy.Service {
	var a0, a1 uint64
	c := &w.last[0]
	if v6 {
		a0, a1, c = binary.LittleEndian.Uint64(a[0:8]), binary.LittleEndian.Uint64(a[8:16]), &w.last[1]
	} else {
		a = a[:4]
		a0 = uint64(binary.LittleEndian.Uint32(a))
	}
	if c.pol == pol && c.a0 == a0 && c.a1 == a1 && c.port == port {
		return c.svc
	}
	s := pol.LookupIP(a, port)
	if s != nil {
		*c = lastService{pol: pol, a0: a0, a1: a1, port: port, svc: s}
	}
	return s
}

func addrOf(a *[16]byte, v6 bool) netip.Addr {
	if v6 {
		return netip.AddrFrom16(*a)
	}
	return netip.AddrFrom4([4]byte(a[:4]))
}

// setTuple fills t from addresses as header.Packet holds them, a word at a
// time (doc.go: store forwarding).
func setTuple(t *cookies.Tuple, src, dst *[16]byte, sport, dport uint16, v6 bool) {
	binary.LittleEndian.PutUint64(t.Src[0:], binary.LittleEndian.Uint64(src[0:]))
	binary.LittleEndian.PutUint64(t.Src[8:], binary.LittleEndian.Uint64(src[8:]))
	binary.LittleEndian.PutUint64(t.Dst[0:], binary.LittleEndian.Uint64(dst[0:]))
	binary.LittleEndian.PutUint64(t.Dst[8:], binary.LittleEndian.Uint64(dst[8:]))
	t.SrcPort, t.DstPort, t.V6 = sport, dport, v6
}
