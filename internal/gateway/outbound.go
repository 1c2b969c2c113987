package gateway

// A guarded server's own connections. A SYN from a guarded address is
// never part of a proxied handshake (the engine's SYN to a server comes
// from the client's address, and a server answers with SYN-ACKs), so it is
// the server opening a connection of its own, to a package mirror, an API,
// a database elsewhere: it passes, and an outbound flow, keyed like every
// flow by the tuple seen from outside (the remote host in the client's
// place), lets the remote's SYN-ACK and the rest of the connection pass
// untouched. Without it the flag checks would drop the server's SYN
// (header.ServerSyn) and the remote's SYN-ACK (header.SynAckFromClient)
// whenever the server's ports are guarded.
//
// The engine cannot tell on which interface a packet came in: a SYN that
// claims a guarded source from outside would open such a flow too. It
// gains the sender nothing the proxy guards (its SYNs to a service are
// still answered with cookies; its ACKs reach a server that has no
// connection for them), and reverse-path filtering at the edge drops it
// anyway.

import (
	"time"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
)

// outbound takes what the flag checks refuse for reason (ServerSyn or
// SynAckFromClient) when it belongs to a server's own connection, and
// reports whether it did.
func (w *Worker) outbound(p *header.Packet, reason header.Reason, now time.Time, r *engine.Result) bool {
	e := w.e
	nowNs := now.UnixNano()
	t := p.TCP
	var k flowKey
	if reason == header.ServerSyn {
		k.set(&p.Dst, &p.Src, t.DestinationPort(), t.SourcePort(), p.V6)
	} else {
		k.set(&p.Src, &p.Dst, t.SourcePort(), t.DestinationPort(), p.V6)
	}
	fi, tag := e.flows.bucketKey(&k)
	mu := e.flows.lock(fi)
	mu.Lock()
	defer mu.Unlock()
	f := e.flows.find(fi, tag, &k, nowNs)
	switch {
	case f != nil && f.state != stateOutbound:
		return false // a proxied flow's tuple: the flag checks decide
	case f == nil && reason == header.SynAckFromClient:
		return false
	case f == nil:
		setTuple(&w.tup, &p.Dst, &p.Src, t.DestinationPort(), t.SourcePort(), p.V6)
		var ev evicted
		f = e.flows.add(fi, tag, &w.tup, nowNs, &ev)
		f.state = stateOutbound
		e.st.outboundFlows.Add(1)
		if ev.valid {
			w.inj[0] = w.reset(0, &ev.tuple, true, ev.toClientSeq)
			w.inj[1] = w.reset(1, &ev.tuple, false, ev.toServerSeq)
			r.Inject = w.inj[:2]
		}
	}
	f.lastSeen = nowNs
	r.Verdict, r.Event = engine.Accept, engine.EventOutbound
	return true
}

// outboundSegment passes a segment of an outbound flow untouched; after an
// RST, or FINs both ways, the flow lingers and expires. The caller holds
// the flow's lock.
func (w *Worker) outboundSegment(f *flow, flags uint8, client bool, nowNs int64, r *engine.Result) {
	if flags&header.FIN != 0 {
		if client {
			f.finClient = true
		} else {
			f.finServer = true
		}
	}
	if f.closeAt == 0 && (flags&header.RST != 0 || f.finClient && f.finServer) {
		f.closeAt = nowNs + w.e.flows.linger
	}
	r.Verdict, r.Event = engine.Accept, engine.EventOutbound
}
