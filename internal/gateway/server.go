package gateway

// The server side of a proxied connection: the server's SYN-ACK, its
// refusal, and its segments once the flow is up.

import (
	"time"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
)

// Options a server's SYN-ACK may lack (Stats.ServerLacks).
const (
	LackTimestamps = iota
	LackWScale
	LackSACK
	LackECN
	NumServerLacks
)

// fromServer handles a segment sent by a guarded server.
func (w *Worker) fromServer(pkt []byte, p *header.Packet, flags uint8, meta engine.Meta, now time.Time, r *engine.Result) {
	e := w.e
	t := p.TCP
	nowNs := now.UnixNano()
	var k flowKey
	k.set(&p.Dst, &p.Src, t.DestinationPort(), t.SourcePort(), p.V6)
	fi, tag := e.flows.bucketKey(&k)
	if flags&(header.SYN|header.FIN|header.RST) == 0 {
		var x xlate
		if e.flows.view(fi, tag, &k, sideServer, nowNs, &x) {
			w.translateS2C(pkt, p, &x, meta, r)
			return
		}
	}
	mu := e.flows.lock(fi)
	mu.Lock()
	defer mu.Unlock()
	f := e.flows.find(fi, tag, &k, nowNs)
	if f == nil {
		r.Verdict, r.Event = engine.Drop, engine.EventUnknown
		return
	}
	if f.state == stateOutbound {
		f.lastSeen = nowNs
		w.outboundSegment(f, flags, false, nowNs, r)
		return
	}
	if !f.up && f.state == stateClosing {
		r.Verdict, r.Event = engine.Drop, engine.EventUnknown // see fromClient
		return
	}
	if f.expiring {
		w.expiryReply(f, t, flags, sideServer, r)
		return
	}
	synack := flags&(header.SYN|header.ACK|header.RST) == header.SYN|header.ACK
	if f.state == stateSynSent {
		// RFC 9293 §3.10.7.3, SYN-SENT: an ACK is acceptable if it
		// acknowledges our SYN and nothing more.
		ackOK := flags&header.ACK != 0 && t.AckNumber() == f.clientISN+1
		switch {
		case synack && ackOK:
			w.serverUp(p, f, nowNs, r)
		case flags&header.RST != 0 && ackOK:
			w.refused(f, r)
		case flags&(header.SYN|header.RST) == 0 && flags&header.ACK != 0 && !ackOK:
			// The server still holds a connection on this tuple (an
			// evicted or expired flow, a port reused behind a NAT) and
			// answers our SYN with a challenge ACK (RFC 5961 §4): as the
			// client would, reset it at SEG.ACK, which is its RCV.NXT,
			// and send the SYN again.
			e.st.serverResyncs.Add(1)
			f.synSentAt = nowNs
			w.inj[0] = w.reset(0, &f.tuple, false, t.AckNumber())
			w.inj[1] = w.synToServer(f, 1)
			r.Verdict, r.Inject, r.Event = engine.Drop, w.inj[:2], engine.EventResync
		default:
			// Among them a bare RST, or one that does not acknowledge our
			// SYN: dropped (RFC 9293 §3.10.7.3).
			r.Verdict, r.Event = engine.Drop, engine.EventUnknown
		}
		return
	}
	if flags&header.SYN != 0 {
		if synack && t.SequenceNumber() == f.serverISN && t.AckNumber() == f.clientISN+1 {
			// Our ACK was lost: the server resends its SYN-ACK.
			if p.Opts.HasTS {
				f.serverTS = p.Opts.TSVal
			}
			w.inj[0] = w.ackToServer(f, 0)
			r.Verdict, r.Inject, r.Event = engine.Drop, w.inj[:1], engine.EventServerUp
			return
		}
		r.Verdict, r.Event = engine.Drop, engine.EventUnknown
		return
	}
	if !w.established(f, p, flags, sideServer, nowNs, r) {
		return
	}
	var x xlate
	f.xlateInto(&x)
	w.translateS2C(pkt, p, &x, meta, r)
	w.locked(f, flags, false, nowNs)
}

// serverUp records the server's ISN and options, completes its handshake
// with an ACK on the client's behalf, and sends the data held meanwhile.
func (w *Worker) serverUp(p *header.Packet, f *flow, nowNs int64, r *engine.Result) {
	e := w.e
	o := &p.Opts
	f.serverISN = p.TCP.SequenceNumber()
	f.delta = f.cookieISN - f.serverISN
	f.useTS = f.clientTS && o.HasTS
	if f.useTS {
		f.serverTS = o.TSVal
		f.tsOff = f.ourTS - o.TSVal
	}
	// Scaling is on toward the server only if both SYNs carried the option
	// (RFC 7323 §2.2).
	if f.sentWS >= 0 && o.HasWScale {
		f.serverShift = min(o.WScale, 14)
		f.serverBelievesClient = uint8(f.sentWS)
	}
	f.rescaleC2S = f.clientShift != f.serverBelievesClient
	f.rescaleS2C = f.serverShift != f.clientBelievesServer
	// What our SYN-ACK agreed to with the client and the server did not
	// (Stats.ServerLacks).
	if f.clientTS && !o.HasTS {
		e.st.serverLacks[LackTimestamps].Add(1)
	}
	if f.advWS >= 0 && !o.HasWScale {
		e.st.serverLacks[LackWScale].Add(1)
	}
	if f.sack && !o.SACKPermitted {
		e.st.serverLacks[LackSACK].Add(1)
	}
	if f.ecn && p.TCP.Flags()&header.ECE == 0 {
		e.st.serverLacks[LackECN].Add(1)
	}
	f.state, f.up = stateEstablished, true
	f.lastSeen = nowNs
	// What each side has sent and acknowledged so far (flow.track).
	end := f.clientISN + 1
	for k := 0; k < int(f.npend); k++ {
		if seq, data := e.flows.pending.get(f.pend[k]); seqAfter(seq+uint32(len(data)), end) {
			end = seq + uint32(len(data))
		}
	}
	f.sndEnd[sideClient], f.lastAck[sideClient], f.rcvWin[sideClient] = end, f.cookieISN+1, uint32(f.lastWin)<<f.clientShift
	f.sndEnd[sideServer], f.lastAck[sideServer], f.rcvWin[sideServer] = f.serverISN+1, f.clientISN+1, uint32(p.TCP.WindowSize())
	f.tracked = 1<<sideClient | 1<<sideServer
	e.flows.publish(f, false, nowNs)

	n := 0
	w.inj[n] = w.ackToServer(f, n)
	n++
	win := f.c2sWindow(f.lastWin)
	// Field by field (doc.go: store forwarding).
	var so synOpts
	so.ws, so.ts, so.tsVal, so.tsEcr = -1, f.useTS, f.lastTS, f.serverTS
	t := &f.tuple
	for k := 0; k < int(f.npend); k++ {
		seq, data := e.flows.pending.get(f.pend[k])
		fl, urg := e.flows.pending.extra(f.pend[k])
		so.urg = urg
		w.inj[n] = buildSegment(w.bufs[n][:], t.V6, &t.Src, &t.Dst, t.SrcPort, t.DstPort,
			seq, f.serverISN+1, header.ACK|fl, win, &so, data)
		n++
	}
	e.flows.releasePending(f)
	r.Verdict, r.Inject, r.Event = engine.Drop, w.inj[:n], engine.EventServerUp
}

// ackToServer builds, in buffer k, the ACK that completes the server's
// handshake.
func (w *Worker) ackToServer(f *flow, k int) []byte {
	// Field by field (doc.go: store forwarding).
	var so synOpts
	so.ws, so.ts, so.tsVal, so.tsEcr = -1, f.useTS, f.lastTS, f.serverTS
	t := &f.tuple
	return buildSegment(w.bufs[k][:], t.V6, &t.Src, &t.Dst, t.SrcPort, t.DstPort,
		f.clientISN+1, f.serverISN+1, header.ACK, f.c2sWindow(f.lastWin), &so, nil)
}

// refused tells the client, as the server, that the connection is refused.
func (w *Worker) refused(f *flow, r *engine.Result) {
	t := &f.tuple
	var so synOpts
	so.ws = -1
	w.inj[0] = buildSegment(w.bufs[0][:], t.V6, &t.Dst, &t.Src, t.DstPort, t.SrcPort,
		f.cookieISN+1, 0, header.RST, 0, &so, nil)
	w.e.flows.remove(f)
	r.Verdict, r.Inject, r.Event = engine.Drop, w.inj[:1], engine.EventServerRefused
}
