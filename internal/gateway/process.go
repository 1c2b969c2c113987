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

// tsSlack covers the low TSval bits that carry options (cookies.TSBits).
const tsSlack = 1 << cookies.TSBits

// Worker processes packets for one queue. It owns reusable buffers and must
// not be used by two goroutines at once.
type Worker struct {
	e    *Engine
	ctr  *packetCounters
	pkt  header.Packet
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

func addrOf(a *[16]byte, v6 bool) netip.Addr {
	if v6 {
		return netip.AddrFrom16(*a)
	}
	return netip.AddrFrom4([4]byte(a[:4]))
}

// Process decides what happens to pkt, a whole IP packet taken at time now.
// It may rewrite pkt in place. It never allocates and never panics.
func (w *Worker) Process(pkt []byte, meta engine.Meta, now time.Time, r *engine.Result) {
	*r = engine.Result{}
	w.process(pkt, meta, now, r)
	if r.Event < engine.NumEvents && r.Dir < engine.NumDirections && int(r.Verdict) < engine.NumVerdicts {
		w.ctr.events[r.Dir][r.Verdict][r.Event].Add(1)
	}
}

func (w *Worker) process(pkt []byte, meta engine.Meta, now time.Time, r *engine.Result) {
	if w.dropInvalidFlagsEarly(pkt, r) {
		return
	}
	e := w.e
	p := &w.pkt
	if reason := header.Parse(pkt, p); reason != header.OK {
		w.malformed(reason, r)
		return
	}
	act := e.cur.Load()
	pol := act.pol
	t := p.TCP
	sport, dport := t.SourcePort(), t.DestinationPort()
	fromServer := false
	svc := w.lookup(pol, p.V6, &p.Dst, dport)
	if svc == nil {
		if svc = w.lookup(pol, p.V6, &p.Src, sport); svc == nil {
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
		if pol.InvalidFlags == policy.InvalidFlagsCount {
			// Counted and let through, as the policy asks.
			w.ctr.drops[reason].Add(1)
			r.Verdict, r.Reason, r.Event = engine.Accept, reason, engine.EventPassed
			return
		}
		w.malformed(reason, r)
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

// lastService is the last service a worker found for one family. The
// policy is immutable, so the entry stays exact as long as pol is the one in
// use (holding it also keeps its address from being reused).
type lastService struct {
	pol    *policy.Policy
	a0, a1 uint64 // the address, as words
	port   uint16
	svc    *policy.Service
}

// lookup is pol.LookupIP for an address as header.Packet holds it, served
// from the worker's last hit when the address and port are the same, so that
// a run of packets to or from one service skips the policy's hash tables.
// Misses are not remembered.
func (w *Worker) lookup(pol *policy.Policy, v6 bool, a *[16]byte, port uint16) *policy.Service {
	a0, a1 := binary.LittleEndian.Uint64(a[0:]), binary.LittleEndian.Uint64(a[8:])
	n, c := 4, &w.last[0]
	if v6 {
		n, c = 16, &w.last[1]
	}
	if c.pol == pol && c.a0 == a0 && c.a1 == a1 && c.port == port {
		return c.svc
	}
	s := pol.LookupIP(a[:n], port)
	if s != nil {
		*c = lastService{pol: pol, a0: a0, a1: a1, port: port, svc: s}
	}
	return s
}

// lookupAddr is lookup for an address as the packet holds it (4 bytes
// unless v6, then 16), for the early drop, which has not parsed the packet.
func (w *Worker) lookupAddr(pol *policy.Policy, v6 bool, a []byte, port uint16) *policy.Service {
	var a0, a1 uint64
	c := &w.last[0]
	if v6 {
		a0, a1, c = binary.LittleEndian.Uint64(a[0:8]), binary.LittleEndian.Uint64(a[8:16]), &w.last[1]
	} else {
		a0 = uint64(binary.LittleEndian.Uint32(a[0:4]))
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

// setTuple fills t. It copies the addresses a word at a time, as Parse
// stores them, so that the loads are served from the stores in flight.
func setTuple(t *cookies.Tuple, src, dst *[16]byte, sport, dport uint16, v6 bool) {
	binary.LittleEndian.PutUint64(t.Src[0:], binary.LittleEndian.Uint64(src[0:]))
	binary.LittleEndian.PutUint64(t.Src[8:], binary.LittleEndian.Uint64(src[8:]))
	binary.LittleEndian.PutUint64(t.Dst[0:], binary.LittleEndian.Uint64(dst[0:]))
	binary.LittleEndian.PutUint64(t.Dst[8:], binary.LittleEndian.Uint64(dst[8:]))
	t.SrcPort, t.DstPort, t.V6 = sport, dport, v6
}

// dropInvalidFlagsEarly drops a guarded packet whose TCP flags are invalid
// whatever its direction (SYN+FIN, null, xmas, ...) before the full parse,
// so that scans and malformed floods cost as little as possible. It reads
// only the fixed headers, and leaves everything it is not sure of (IPv6
// extension headers, fragments, short packets, unguarded traffic, a policy
// that counts instead of dropping) to the full path.
func (w *Worker) dropInvalidFlagsEarly(pkt []byte, r *engine.Result) bool {
	var toff int
	var v6 bool
	var src, dst []byte
	switch {
	case len(pkt) >= 40 && pkt[0]>>4 == 4:
		toff = int(pkt[0]&0xf) * 4
		// Not TCP, a fragment (RFC 791 §3.1), or headers past the end.
		if toff < 20 || pkt[9] != 6 || pkt[6]&0x3f != 0 || pkt[7] != 0 || len(pkt) < toff+20 {
			return false
		}
		src, dst = pkt[12:16], pkt[16:20]
	case len(pkt) >= 60 && pkt[0]>>4 == 6:
		if pkt[6] != 6 { // TCP right after the fixed header only
			return false
		}
		toff, v6 = 40, true
		src, dst = pkt[8:24], pkt[24:40]
	default:
		return false
	}
	flags := pkt[toff+13]
	reason := header.CheckFlags(flags, false)
	if reason == header.OK || header.CheckFlags(flags, true) == header.OK {
		return false
	}
	pol := w.e.cur.Load().pol
	if pol.InvalidFlags == policy.InvalidFlagsCount {
		return false
	}
	sport, dport := binary.BigEndian.Uint16(pkt[toff:]), binary.BigEndian.Uint16(pkt[toff+2:])
	if w.lookupAddr(pol, v6, dst, dport) == nil {
		if w.lookupAddr(pol, v6, src, sport) == nil {
			return false
		}
		reason = header.CheckFlags(flags, true)
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
	if act.synAck != nil && !act.synAck.Allow(nowNs) {
		r.Verdict, r.Event = engine.Drop, engine.EventSynLimited
		return
	}

	// A tuple reused after its flow began to close starts afresh; an
	// established flow is only marked, and replaced when a valid ACK for
	// a new ISN arrives.
	var fk flowKey
	fk.set(tup)
	fp := e.flows.hash(&fk)
	if fi, tag := e.flows.split(fp); e.flows.mayHave(fi, tag) {
		mu := e.flows.lock(fi)
		mu.Lock()
		if f := e.findFlow(fi, tag, &fk, nowNs); f != nil {
			switch f.state {
			case stateClosing:
				e.removeFlow(f)
			case stateEstablished:
				e.flows.unpublish(f)
				f.newSyn = true
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
	var ourTS uint32
	cookie := e.jar.ISN(tup, seq, clientMSS, now)
	ci, ctag := e.cache.bucket(cookie)
	cl := &e.cache.locks[ci]
	cl.Lock()
	k, sw := e.cache.find(ci, ctag, fp)
	retransmit := false
	if c := &e.cache.entries[max(k, 0)]; k >= 0 && c.clientISN == seq && c.cookie == cookie && c.ts == tsOK &&
		c.mss == clientMSS && c.ws == ws && c.advWS == advWS && c.sack == sackOK && c.ecn == ecnOK {
		// Read first, then checked: the SYN stage may have rewritten
		// the entry meanwhile.
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
		var claimed uint64
		ok := false
		if k >= 0 {
			claimed, ok = e.cache.claim(k, sw)
		}
		if !ok {
			var evicted bool
			if k, claimed, evicted, ok = e.cache.claimVictim(ci); evicted && ok {
				e.st.cacheEvictions.Add(1)
			}
		}
		if tsOK {
			tso := cookies.TSOptions{WScale: cookies.NoWScale, SACK: sackOK, ECN: ecnOK}
			if ws >= 0 {
				tso.WScale = uint8(ws)
			}
			ourTS = cookies.EncodeTS(uint32(now.UnixMilli()), tso)
		}
		if ok {
			// Field by field, every field: a literal is built aside and copied.
			c := &e.cache.entries[k]
			c.fp = fp
			c.clientISN, c.cookie, c.ourTS, c.clientTS = seq, cookie, ourTS, o.TSVal
			c.mss, c.ws, c.advWS = clientMSS, ws, advWS
			c.sack, c.ts, c.ecn = sackOK, tsOK, ecnOK
			e.cache.publish(k, claimed, ctag)
		}
		// Else the slot is being written by the SYN stage: the SYN is
		// answered without an entry, as after an eviction.
	}
	cl.Unlock()

	// Field by field: a literal is built aside in narrow stores and copied
	// with wide loads, which stall store forwarding.
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
	k.setAddrs(&p.Src, &p.Dst, sport, dport, p.V6)
	h := e.flows.hash(&k)
	fi, tag := e.flows.split(h)
	if flags&(header.FIN|header.RST) == 0 {
		var x xlate
		if e.flows.view(fi, tag, &k, nowNs, &x) {
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
	f := e.findFlow(fi, tag, &k, nowNs)
	if f != nil && (f.newSyn || f.state == stateClosing) && flags&(header.RST|header.FIN) == 0 {
		// The client opened a new connection on this tuple (its SYN came
		// while the old flow was up, or the BPF SYN stage answered it, so
		// that the engine never saw it, while the old flow lingers): a
		// valid cookie for a new ISN replaces the flow.
		t := p.TCP
		isn := t.SequenceNumber() - 1
		if isn != f.clientISN {
			if _, err := e.jar.Check(tup, isn, t.AckNumber()-1, now); err == nil {
				e.removeFlow(f)
				f = nil
			}
		}
	}
	if f == nil {
		if flags&(header.RST|header.FIN) != 0 || flags&header.ACK == 0 {
			// Unknown ACKs, RSTs and FINs never reach the server.
			r.Verdict, r.Event = engine.Drop, engine.EventUnknown
			return
		}
		w.handshake(p, svc, tup, h, fi, tag, now, r)
		return
	}
	f.lastSeen = nowNs
	if f.state == stateSynSent {
		w.heldClient(pkt, p, f, flags, meta, nowNs, r)
		return
	}
	var x xlate
	f.xlateInto(&x)
	w.translateC2S(pkt, p, &x, flags, meta, r)
	w.locked(f, flags, true, nowNs)
}

// locked ends the locked path of a translated segment: a FIN or RST is
// noted, and an established flow's view is published for the lock-free
// path (flowTable.view).
func (w *Worker) locked(f *flow, flags uint8, client bool, nowNs int64) {
	if flags&(header.FIN|header.RST) != 0 {
		w.closeSide(f, flags, client, nowNs)
	}
	if f.state == stateEstablished && !f.newSyn {
		w.e.flows.publish(f, nowNs)
	}
}

// handshake checks the ACK that completes the client's handshake and opens
// the server side with a SYN carrying the client's ISN and options. The
// caller holds the lock of flow bucket fi.
func (w *Worker) handshake(p *header.Packet, svc *policy.Service, tup *cookies.Tuple, fp uint64, fi int, tag uint32, now time.Time, r *engine.Result) {
	e := w.e
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
			hit = e.cache.take(k, sw)
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
		// Without timestamps, window scale, SACK and ECN are lost, as with
		// Linux syncookies.
	}

	nowNs := now.UnixNano()
	f := e.newFlow(fi, tag, tup, nowNs)
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
		e.holdData(f, seq, p.Payload)
	}
	r.Verdict, r.Packet, r.Event = engine.Accept, w.synToServer(f, 0), engine.EventHandshake
}

// synToServer builds, in buffer k, the SYN that opens the server side with
// the client's ISN and options.
func (w *Worker) synToServer(f *flow, k int) []byte {
	win := uint32(f.lastWin) << f.clientShift // a SYN's window is never scaled (RFC 7323 §2.2)
	// Field by field, as in syn.
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
		// The client gives up. The server may hold a half-open connection
		// from our SYN: pass the RST on as a bare RST with the client's
		// sequence number (acceptable in SYN-RECEIVED, RFC 9293 §3.10.7.4),
		// since its ACK field names our cookie, not the server's ISN.
		e.removeFlow(f)
		old := binary.BigEndian.Uint16(t[12:])
		nw := old&0xff00 | uint16(header.RST)
		var c csumAcc
		c.add16(old, nw)
		c.add32(t.AckNumber(), 0)
		t[13] = header.RST
		t.SetAckNumber(0)
		fixChecksum(p, c, meta)
		r.Verdict, r.Packet, r.Event = engine.Accept, pkt, engine.EventTranslated
		return
	}
	f.lastWin = t.WindowSize()
	if p.Opts.HasTS {
		f.lastTS = p.Opts.TSVal
	}
	if len(p.Payload) > 0 {
		e.holdData(f, t.SequenceNumber(), p.Payload)
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

// fromServer handles a segment sent by a guarded server.
func (w *Worker) fromServer(pkt []byte, p *header.Packet, flags uint8, meta engine.Meta, now time.Time, r *engine.Result) {
	e := w.e
	t := p.TCP
	nowNs := now.UnixNano()
	var k flowKey
	k.setAddrs(&p.Dst, &p.Src, t.DestinationPort(), t.SourcePort(), p.V6)
	fi, tag := e.flows.bucketKey(&k)
	if flags&(header.SYN|header.FIN|header.RST) == 0 {
		var x xlate
		if e.flows.view(fi, tag, &k, nowNs, &x) {
			w.translateS2C(pkt, p, &x, meta, r)
			return
		}
	}
	mu := e.flows.lock(fi)
	mu.Lock()
	defer mu.Unlock()
	f := e.findFlow(fi, tag, &k, nowNs)
	if f == nil {
		r.Verdict, r.Event = engine.Drop, engine.EventUnknown
		return
	}
	synack := flags&(header.SYN|header.ACK|header.RST) == header.SYN|header.ACK
	if f.state == stateSynSent {
		switch {
		case synack && t.AckNumber() == f.clientISN+1:
			w.serverUp(p, f, nowNs, r)
		case flags&header.RST != 0 && (flags&header.ACK == 0 || t.AckNumber() == f.clientISN+1):
			w.refused(f, r)
		default:
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
	f.lastSeen = nowNs
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
	f.state = stateEstablished
	f.lastSeen = nowNs
	e.flows.publish(f, nowNs)

	n := 0
	w.inj[n] = w.ackToServer(f, n)
	n++
	win := f.c2sWindow(f.lastWin)
	// Field by field, as in syn.
	var so synOpts
	so.ws, so.ts, so.tsVal, so.tsEcr = -1, f.useTS, f.lastTS, f.serverTS
	t := &f.tuple
	for k := 0; k < int(f.npend); k++ {
		seq, data := e.pending.get(f.pend[k])
		w.inj[n] = buildSegment(w.bufs[n][:], t.V6, &t.Src, &t.Dst, t.SrcPort, t.DstPort,
			seq, f.serverISN+1, header.ACK|header.PSH, win, &so, data)
		n++
	}
	e.releasePending(f)
	r.Verdict, r.Inject, r.Event = engine.Drop, w.inj[:n], engine.EventServerUp
}

// ackToServer builds, in buffer k, the ACK that completes the server's
// handshake.
func (w *Worker) ackToServer(f *flow, k int) []byte {
	// Field by field, as in syn.
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
	w.e.removeFlow(f)
	r.Verdict, r.Inject, r.Event = engine.Drop, w.inj[:1], engine.EventServerRefused
}

var _ engine.Processor = (*Worker)(nil)
