package gateway

// The client side of a proxied connection: the SYN, the ACK that completes
// the client's handshake, and client segments while the server has not
// answered.

import (
	"time"

	"github.com/synwall/synwall/internal/cookies"
	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
	"github.com/synwall/synwall/internal/policy"
)

// tsSlack covers the low TSval bits that carry options (cookies.TSBits).
const tsSlack = 1 << cookies.TSBits

// syn answers a client's SYN with a cookie SYN-ACK sent as the server
// (RFC 4987 §3.6, §3.8), remembering the client's options in the SYN cache.
func (w *Worker) syn(p *header.Packet, svc *policy.Service, act *active, tup *cookies.Tuple, flags uint8, now time.Time, r *engine.Result) {
	e := w.e
	nowNs := now.UnixNano()

	// Rate limits: per source prefix for the service, then the global
	// bound on SYN-ACKs (so that synwall is no strong reflector). A refused SYN
	// touches no state: it neither ends nor marks the tuple's flow.
	if svc.ID < len(act.perSvc) {
		if l := act.perSvc[svc.ID]; l != nil && !l.Allow(p.Src, p.V6, nowNs) && !act.pol.Allowed(addrOf(&p.Src, p.V6)) {
			r.Verdict, r.Event = engine.Drop, engine.EventSynLimited
			return
		}
	}
	if act.synAck != nil && !w.allowSynAck(act, nowNs) {
		r.Verdict, r.Event = engine.Drop, engine.EventSynLimited
		return
	}

	// A flow on the tuple, closing or established, is only marked, and
	// replaced when a valid ACK for a new ISN arrives (fromClient): a
	// spoofed SYN ends nothing, and a replayed handshake ACK finds the
	// flow its first copy made.
	var fk flowKey
	fk.set(&tup.Src, &tup.Dst, tup.SrcPort, tup.DstPort, tup.V6)
	fp := e.flows.hash(&fk)
	if fi, tag := e.flows.split(fp); e.flows.mayHave(fi, tag) {
		mu := e.flows.lock(fi)
		mu.Lock()
		if f := e.flows.find(fi, tag, &fk, nowNs); f != nil {
			switch f.state {
			case stateClosing, stateEstablished:
				e.flows.unpublish(f)
				f.newSyn, f.newSynAt = true, nowNs
			}
		}
		mu.Unlock()
	}

	o := &p.Opts
	adv := &svc.Advertise
	seq := p.TCP.SequenceNumber()
	var clientMSS uint16
	if o.HasMSS {
		clientMSS = o.MSS
	}
	// Window scaling only when both sides send the option (RFC 7323 §2.2).
	ws, advWS := int8(-1), int8(-1)
	if o.HasWScale && adv.WScale >= 0 {
		ws, advWS = int8(min(o.WScale, 14)), min(adv.WScale, 14)
	}
	sackOK := o.SACKPermitted && adv.SACK
	tsOK := o.HasTS && adv.Timestamps
	ecnOK := flags&(header.ECE|header.CWR) == header.ECE|header.CWR && adv.ECN // RFC 3168 §6.1.1

	// The cookie names the cache bucket (synCache.bucket): a retransmitted
	// SYN within the same counter period gets the same cookie, hence finds
	// its entry; after a tick it gets a new cookie and a new entry, and the
	// old one still serves an ACK of the first SYN-ACK.
	//
	// Without timestamps, window scale, SACK and ECN live only in the
	// cache (with them, also in our TSval): a SYN-ACK offers them to such
	// a client only if its entry is pinned, i.e. kept until its cookie
	// expires, so that the ACK always finds what the SYN-ACK agreed to;
	// when every entry of the bucket is pinned the SYN-ACK offers none, as
	// Linux's syncookies do (RFC 7323 §2.2 lets either side leave them).
	pin := !tsOK && (ws >= 0 || sackOK || ecnOK)
	var ourTS uint32
	cookie := e.jar.ISN(tup, seq, clientMSS, now)
	ci, ctag := e.cache.bucket(cookie)
	cl := &e.cache.locks[ci]
	cl.Lock()
	k, sw := e.cache.find(ci, ctag, fp)
	retransmit := false
	if c := &e.cache.entries[max(k, 0)]; k >= 0 && c.clientISN == seq && c.cookie == cookie && c.ts == tsOK &&
		c.mss == clientMSS && c.ws == ws && c.advWS == advWS && c.sack == sackOK && c.ecn == ecnOK {
		// Read first, then checked: the SYN stage may have rewritten the
		// entry meanwhile.
		ourTS = c.ourTS
		retransmit = e.cache.stable(k, sw)
	}
	if retransmit {
		// A retransmitted SYN gets the same SYN-ACK. One with other
		// options (a client retrying without window scaling, say)
		// replaces the entry, so the server side is opened with the
		// options the new SYN-ACK agreed to.
		e.st.cacheRetransmits.Add(1)
	} else {
		ourTS = 0
		nowMs := uint32(now.UnixMilli())
		var claimed uint64
		ok := false
		if k >= 0 {
			claimed, ok = e.cache.claim(k, sw)
		}
		if !ok {
			var evicted bool
			k, claimed, evicted, ok = e.cache.claimVictim(ci, nowMs, e.pinMs)
			if evicted && ok {
				e.st.cacheEvictions.Add(1)
			}
			if k < 0 {
				e.st.cacheFull.Add(1) // every entry pinned
			}
		}
		if tsOK {
			tso := cookies.TSOptions{WScale: cookies.NoWScale, SACK: sackOK, ECN: ecnOK}
			if ws >= 0 {
				tso.WScale = uint8(ws)
			}
			ourTS = cookies.EncodeTS(nowMs, tso)
		}
		if !ok {
			// No entry (every one pinned, or the slot is being written
			// by the SYN stage): the cookie alone answers, as after an
			// eviction, so a client without timestamps is offered none
			// of the options only an entry remembers.
			if !tsOK {
				ws, advWS, sackOK, ecnOK = -1, -1, false, false
			}
		} else {
			c := &e.cache.entries[k]
			// Field by field, every field (doc.go: store forwarding).
			c.fp = fp
			c.clientISN, c.cookie, c.ourTS, c.clientTS = seq, cookie, ourTS, o.TSVal
			c.mss, c.ws, c.advWS = clientMSS, ws, advWS
			c.sack, c.ts, c.ecn = sackOK, tsOK, ecnOK
			e.cache.pin(k, ctag, pin, nowMs)
			e.cache.publish(k, claimed, ctag)
		}
	}
	cl.Unlock()

	// Field by field (doc.go: store forwarding).
	var so synOpts
	so.mss = adv.MSS4
	if p.V6 {
		so.mss = adv.MSS6
	}
	so.ws, so.sack, so.ts, so.tsVal, so.tsEcr = advWS, sackOK, tsOK, ourTS, o.TSVal
	fl := header.SYN | header.ACK
	if ecnOK {
		fl |= header.ECE
	}
	w.inj[0] = buildSegment(w.bufs[0][:], p.V6, &p.Dst, &p.Src, tup.DstPort, tup.SrcPort,
		cookie, seq+1, fl, adv.Window, &so, nil)
	r.Verdict, r.Inject, r.Event = engine.Drop, w.inj[:1], engine.EventSynAnswered
}

// fromClient handles a client segment without SYN.
func (w *Worker) fromClient(pkt []byte, p *header.Packet, svc *policy.Service, sport, dport uint16, flags uint8, meta engine.Meta, now time.Time, r *engine.Result) {
	e := w.e
	nowNs := now.UnixNano()
	var k flowKey
	k.set(&p.Src, &p.Dst, sport, dport, p.V6)
	h := e.flows.hash(&k)
	fi, tag := e.flows.split(h)
	if flags&(header.FIN|header.RST) == 0 {
		var x xlate
		if e.flows.view(fi, tag, &k, sideClient, nowNs, &x) {
			w.translateC2S(pkt, p, &x, flags, meta, r)
			return
		}
	}
	// The tuple only from here: the lock-free path needs the key alone.
	tup := &w.tup
	setTuple(tup, &p.Src, &p.Dst, sport, dport, p.V6)
	mu := e.flows.lock(fi)
	mu.Lock()
	defer mu.Unlock()
	f := e.flows.find(fi, tag, &k, nowNs)
	t := p.TCP
	if f != nil && (f.newSyn || f.state == stateClosing) && flags&(header.RST|header.FIN) == 0 {
		// The client opened a new connection on this tuple (its SYN came
		// while the old flow was up or closing, or the BPF SYN stage
		// answered it, so that the engine never saw it, while the old flow
		// lingers): a valid cookie for a new ISN replaces the flow. A
		// segment of the old connection shows the SYN was not the
		// client's, or has been given up.
		isn := t.SequenceNumber() - 1
		if isn != f.clientISN {
			if _, err := e.jar.Check(tup, isn, t.AckNumber()-1, now); err == nil {
				e.flows.remove(f)
				f = nil
			}
		}
		if f != nil && f.up && f.inWindow(sideClient, t.SequenceNumber()) {
			f.newSyn = false
		}
	}
	if f == nil {
		if flags&(header.RST|header.FIN) != 0 || flags&header.ACK == 0 {
			// Unknown ACKs, RSTs and FINs never reach the server.
			r.Verdict, r.Event = engine.Drop, engine.EventUnknown
			return
		}
		w.handshake(p, svc, tup, &k, h, fi, tag, now, r)
		return
	}
	if f.state == stateOutbound {
		f.lastSeen = nowNs
		w.outboundSegment(f, flags, true, nowNs, r)
		return
	}
	if !f.up && f.state == stateClosing {
		// The client reset its handshake: nothing reaches the server
		// until the flow has lingered, so a replayed handshake ACK opens
		// no second connection with the same cookie.
		r.Verdict, r.Event = engine.Drop, engine.EventUnknown
		return
	}
	if f.expiring {
		w.expiryReply(f, t, flags, sideClient, r)
		return
	}
	if f.state == stateSynSent {
		f.lastSeen = nowNs
		w.heldClient(pkt, p, f, flags, meta, nowNs, r)
		return
	}
	if !w.established(f, p, flags, sideClient, nowNs, r) {
		return
	}
	var x xlate
	f.xlateInto(&x)
	w.translateC2S(pkt, p, &x, flags, meta, r)
	w.locked(f, flags, true, nowNs)
}

// expiryReply answers a segment from side s of a flow expired for idleness
// (Engine.ExpireAndTell): with an ACK, it names the end's RCV.NXT, and the
// end gets an RST with that sequence number (RFC 9293 §3.10.7.4); the
// segment goes no further. The caller holds the flow's lock.
func (w *Worker) expiryReply(f *flow, t header.TCP, flags uint8, s int, r *engine.Result) {
	r.Verdict, r.Event = engine.Drop, engine.EventUnknown
	if flags&header.RST != 0 || flags&header.ACK == 0 {
		return
	}
	w.e.st.idleResets.Add(1)
	w.inj[0] = w.reset(0, &f.tuple, s == sideClient, t.AckNumber())
	r.Inject = w.inj[:1]
}

// established does what the locked path does with a segment from side s
// of a flow that is up, before it is translated: a reset is judged
// against the receiver's window (RFC 5961 §3.2; false: dropped), a flow
// closed by an in-window reset reopens when its receiver answers, a new
// SYN's mark lapses with the cookie it could be answered by, and the
// segment is tracked. The caller holds the flow's lock.
func (w *Worker) established(f *flow, p *header.Packet, flags uint8, s int, nowNs int64, r *engine.Result) bool {
	e := w.e
	t := p.TCP
	if f.newSyn && nowNs-f.newSynAt > 2*e.period {
		f.newSyn = false
	}
	if flags&header.RST != 0 {
		switch f.checkReset(s, t.SequenceNumber()) {
		case resetOutside:
			e.st.resetsOutOfWindow.Add(1)
			r.Verdict, r.Event = engine.Drop, engine.EventBadReset
			return false
		case resetInWindow:
			e.st.resetsInWindow.Add(1)
			if f.state != stateClosing {
				f.rstUnsure, f.rstByClient = true, s == sideClient
			}
		default:
			e.st.resetsExact.Add(1)
			f.rstUnsure = false
		}
		f.lastSeen = nowNs
		return true
	}
	if f.state == stateClosing && f.rstUnsure && f.rstByClient == (s == sideServer) {
		// The receiver of the reset is still there: it was ignored.
		f.state, f.rstUnsure, f.closeAt = stateEstablished, false, 0
	}
	f.lastSeen = nowNs
	f.track(s, t, len(p.Payload), flags)
	return true
}

// locked ends the locked path of a translated segment: a FIN or RST is
// noted, and an established flow's view is published for the lock-free
// path (flowTable.view).
func (w *Worker) locked(f *flow, flags uint8, client bool, nowNs int64) {
	if flags&(header.FIN|header.RST) != 0 {
		w.closeSide(f, flags, client, nowNs)
	}
	if f.state == stateEstablished && !f.newSyn {
		w.e.flows.publish(f, client, nowNs)
	}
}

// handshake checks the ACK that completes the client's handshake and opens
// the server side with a SYN carrying the client's ISN and options. The
// caller holds the lock of flow bucket fi.
func (w *Worker) handshake(p *header.Packet, svc *policy.Service, tup *cookies.Tuple, fk *flowKey, fp uint64, fi int, tag uint32, now time.Time, r *engine.Result) {
	e := w.e
	nowNs := now.UnixNano()
	t := p.TCP
	o := &p.Opts
	seq := t.SequenceNumber()
	clientISN, cookie := seq-1, t.AckNumber()-1

	var ent cacheEntry
	hit := false
	ci, ctag := e.cache.bucket(cookie)
	cl := &e.cache.locks[ci]
	cl.Lock()
	if k, sw := e.cache.find(ci, ctag, fp); k >= 0 {
		if c := &e.cache.entries[k]; c.clientISN == clientISN && c.cookie == cookie {
			// Taken only if nobody rewrote the entry while it was copied.
			ent = *c
			if hit = e.cache.take(k, sw); hit {
				e.cache.full[ci] = 0 // a slot is free
			}
		}
	}
	cl.Unlock()

	mss, err := e.jar.Check(tup, clientISN, cookie, now)
	switch err {
	case nil:
	case cookies.ErrExpired:
		r.Verdict, r.Event = engine.Drop, engine.EventExpiredCookie
		return
	default:
		r.Verdict, r.Event = engine.Drop, engine.EventBadCookie
		return
	}

	ws, advWS := int8(-1), int8(-1)
	var sack, ecn, ts bool
	if hit {
		e.st.cacheHits.Add(1)
		mss, ws, advWS, sack, ecn, ts = ent.mss, ent.ws, ent.advWS, ent.sack, ent.ecn, ent.ts && o.HasTS
	} else {
		e.st.cacheMisses.Add(1)
		if o.HasTS {
			// Our TSval carries the options the cache forgot (cookies.EncodeTS).
			// TSecr must echo a TSval we could have sent while the cookie
			// was valid (our TSval is the millisecond clock, its low bits
			// replaced).
			age := uint32(now.UnixMilli()) + tsSlack - o.TSEcr
			d, ok := cookies.DecodeTS(o.TSEcr)
			if !ok || int64(age) > 2*e.period/int64(time.Millisecond)+tsSlack {
				r.Verdict, r.Event = engine.Drop, engine.EventBadCookie
				return
			}
			ts, sack, ecn = true, d.SACK, d.ECN
			if d.WScale != cookies.NoWScale {
				ws, advWS = int8(min(d.WScale, 14)), svc.Advertise.WScale
			}
		}
		// Without timestamps, a SYN-ACK offered window scale, SACK and
		// ECN only with a pinned entry (syn), so the client asked for
		// none of them.
	}

	// Each valid cookie opens the server side once: bound how fast a
	// source (and everyone) may do so, and how many flows a source holds.
	act := e.cur.Load()
	if svc.ID < len(act.perSvcHs) {
		if l := act.perSvcHs[svc.ID]; l != nil && !l.Allow(p.Src, p.V6, nowNs) && !act.pol.Allowed(addrOf(&p.Src, p.V6)) {
			e.st.handshakesLimited.Add(1)
			r.Verdict, r.Event = engine.Drop, engine.EventSynLimited
			return
		}
	}
	if act.hs != nil && !act.hs.Allow(nowNs) {
		e.st.handshakesLimited.Add(1)
		r.Verdict, r.Event = engine.Drop, engine.EventSynLimited
		return
	}
	if e.flows.overQuota(fk) {
		r.Verdict, r.Event = engine.Drop, engine.EventSynLimited
		return
	}

	var ev evicted
	f := e.flows.add(fi, tag, tup, nowNs, &ev)
	f.state = stateSynSent
	f.clientISN, f.cookieISN = clientISN, cookie
	f.clientTS = ts
	if ts {
		f.ourTS, f.lastTS = o.TSEcr, o.TSVal
	}
	f.lastWin = t.WindowSize()
	f.mss, f.sack, f.ecn = mss, sack, ecn
	f.sentWS, f.advWS = ws, advWS
	if ws >= 0 {
		f.clientShift = uint8(ws)
		f.clientBelievesServer = uint8(max(advWS, 0))
	}
	if len(p.Payload) > 0 {
		e.flows.hold(f, seq, p.Payload, t.Flags(), t.UrgentPointer())
	}
	r.Verdict, r.Packet, r.Event = engine.Accept, w.synToServer(f, 0), engine.EventHandshake
	if ev.valid {
		// An established flow made room: tell both its ends (RFC 9293
		// §3.10.7.4), rather than leave them to find out.
		w.inj[0] = w.reset(1, &ev.tuple, true, ev.toClientSeq)
		w.inj[1] = w.reset(2, &ev.tuple, false, ev.toServerSeq)
		r.Inject = w.inj[:2]
	}
}

// reset builds, in buffer k, a bare RST of the flow with tuple t (see
// buildReset).
func (w *Worker) reset(k int, t *cookies.Tuple, toClient bool, seq uint32) []byte {
	return buildReset(w.bufs[k][:], t, toClient, seq)
}

// synToServer builds, in buffer k, the SYN that opens the server side with
// the client's ISN and options.
func (w *Worker) synToServer(f *flow, k int) []byte {
	win := uint32(f.lastWin) << f.clientShift // a SYN's window is never scaled (RFC 7323 §2.2)
	// Field by field (doc.go: store forwarding).
	var so synOpts
	so.mss, so.ws, so.sack, so.ts, so.tsVal = f.mss, f.sentWS, f.sack, f.clientTS, f.lastTS
	fl := header.SYN
	if f.ecn {
		fl |= header.ECE | header.CWR
	}
	t := &f.tuple
	return buildSegment(w.bufs[k][:], t.V6, &t.Src, &t.Dst, t.SrcPort, t.DstPort,
		f.clientISN, 0, fl, uint16(min(win, 0xffff)), &so, nil)
}

// heldClient handles a client segment while the server has not answered.
// The caller holds the flow's lock.
func (w *Worker) heldClient(pkt []byte, p *header.Packet, f *flow, flags uint8, meta engine.Meta, nowNs int64, r *engine.Result) {
	e := w.e
	t := p.TCP
	if flags&header.RST != 0 {
		// The client gives up, if the reset is its own: its sequence
		// number follows its ISN, within what it may have sent.
		if seq := t.SequenceNumber() - (f.clientISN + 1); seq > uint32(0xffff)<<f.clientShift {
			e.st.resetsOutOfWindow.Add(1)
			r.Verdict, r.Event = engine.Drop, engine.EventBadReset
			return
		}
		// The server may hold a half-open connection from our SYN: pass
		// the RST on as a bare RST with the client's sequence number
		// (acceptable in SYN-RECEIVED, RFC 9293 §3.10.7.4), since its ACK
		// field names our cookie, not the server's ISN. The flow lingers,
		// so that a replay of the handshake ACK opens nothing.
		e.flows.close(f, nowNs)
		var c header.ChecksumDelta
		c.Put16(t[header.TCPDataOffsetOffset:], uint16(t[header.TCPDataOffsetOffset])<<8|uint16(header.RST))
		c.Put32(t[header.TCPAckNumOffset:], 0)
		fixChecksum(p, c, meta)
		r.Verdict, r.Packet, r.Event = engine.Accept, pkt, engine.EventTranslated
		return
	}
	f.lastWin = t.WindowSize()
	if p.Opts.HasTS {
		f.lastTS = p.Opts.TSVal
	}
	if len(p.Payload) > 0 || flags&header.FIN != 0 {
		e.flows.hold(f, t.SequenceNumber(), p.Payload, flags, t.UrgentPointer())
	}
	r.Verdict, r.Event = engine.Drop, engine.EventHeld
	if nowNs-f.synSentAt > e.synRetrans {
		// The client is still sending: our SYN may have been lost.
		f.synSentAt = nowNs
		e.st.synRetransmits.Add(1)
		w.inj[0] = w.synToServer(f, 0)
		r.Inject = w.inj[:1]
	}
}

// allowSynAck takes a SYN-ACK from the shared budget when one is in force
// (Config.SynAckLimiter: the BPF SYN stage's), else from the engine's own
// bucket.
func (w *Worker) allowSynAck(act *active, nowNs int64) bool {
	if l := w.e.synAckShared; l != nil {
		if ok, inForce := l.AllowSynAck(); inForce {
			return ok
		}
	}
	return act.synAck.Allow(nowNs)
}
