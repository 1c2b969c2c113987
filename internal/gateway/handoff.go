package gateway

// The hand-off of established flows to the kernel (package conntrack):
// with the server's SYN-ACK that completes a proxied handshake the engine
// fills Result.Handoff when the kernel can carry the flow whole, and keeps
// translating whatever still reaches it; once the daemon reports the
// kernel's entry made (HandedOff), the flow lingers closing for
// HandoffGrace, for the packets queued before the entry existed, and goes
// without a word to either end.

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
)

// HandoffGrace is how long a flow stays in the table once the kernel
// carries it: packets queued before its conntrack entry existed reach the
// engine after that, and are translated here, once.
const HandoffGrace = 2 * time.Second

// Default MSS of a SYN without the option (RFC 9293 §3.7.1; RFC 8200 §5
// for IPv6's minimum MTU).
const (
	defaultMSS4 = 536
	defaultMSS6 = 1220
)

// handoffCounters count the hand-off decisions.
type handoffCounters struct {
	on        atomic.Bool
	emitted   atomic.Uint64
	skipped   [engine.NumHandoffSkips]atomic.Uint64
	confirmed atomic.Uint64
}

// HandoffStats are the engine's hand-off counters.
type HandoffStats struct {
	// Emitted counts hand-off records (Result.Handoff), Skipped the flows
	// kept in user space by reason, Confirmed the flows the daemon
	// reported carried by the kernel (HandedOff).
	Emitted   uint64
	Skipped   [engine.NumHandoffSkips]uint64
	Confirmed uint64
}

// SetHandoff turns the hand-off records on or off. Off (the default) the
// engine keeps every flow.
func (e *Engine) SetHandoff(on bool) { e.ho.on.Store(on) }

// HandoffStats returns the hand-off counters.
func (e *Engine) HandoffStats() HandoffStats {
	s := HandoffStats{Emitted: e.ho.emitted.Load(), Confirmed: e.ho.confirmed.Load()}
	for i := range s.Skipped {
		s.Skipped[i] = e.ho.skipped[i].Load()
	}
	return s
}

// handoff fills r.Handoff for flow f, whose server just answered with the
// SYN-ACK p, if the kernel can carry f whole: the kernel translates
// sequence numbers, SACK blocks and timestamps but never rescales windows
// nor adds or strips options, so the server must scale as the SYN-ACK told
// the client, agree on SACK and timestamps as the client did, and take
// segments as large as the SYN-ACK announced. The caller holds f's lock.
func (w *Worker) handoff(p *header.Packet, f *flow, r *engine.Result) {
	e := w.e
	if !e.ho.on.Load() {
		return
	}
	o := &p.Opts
	mss := uint16(defaultMSS4)
	if p.V6 {
		mss = defaultMSS6
	}
	if o.HasMSS {
		mss = o.MSS
	}
	skip := engine.SkipInvalid
	switch {
	case f.rescaleC2S || f.rescaleS2C:
		skip = engine.SkipWScale
	case f.sack != o.SACKPermitted:
		skip = engine.SkipSACK
	case f.clientTS != o.HasTS:
		skip = engine.SkipTimestamps
	case mss < f.advMSS:
		skip = engine.SkipMSS
	}
	if skip != engine.SkipInvalid {
		e.ho.skipped[skip].Add(1)
		return
	}
	t := &f.tuple
	h := &r.Handoff
	h.Valid, h.V6 = true, t.V6
	h.Client, h.Server = t.Src, t.Dst
	h.ClientPort, h.ServerPort = t.SrcPort, t.DstPort
	h.WScale = f.advWS >= 0 && f.sentWS >= 0 && o.HasWScale
	h.ClientWScale, h.ServerWScale = f.clientShift, f.serverShift
	h.SACK, h.Timestamps = f.sack, f.useTS
	h.CookieISN, h.ServerISN = f.cookieISN, f.serverISN
	h.ITS, h.ServerTSval = f.ourTS, f.serverTS
	e.ho.emitted.Add(1)
}

// HandedOff tells the engine that the kernel now carries the flow client →
// server: it lingers HandoffGrace for packets queued before, then expires,
// and a graceful restart's state no longer carries it. It reports whether
// the flow was there.
func (e *Engine) HandedOff(client, server netip.AddrPort, now time.Time) bool {
	c, s := client.Addr().Unmap(), server.Addr().Unmap()
	v6 := c.Is6()
	var ca, sa [16]byte
	if v6 {
		ca, sa = c.As16(), s.As16()
	} else {
		a, b := c.As4(), s.As4()
		copy(ca[:], a[:])
		copy(sa[:], b[:])
	}
	var k flowKey
	k.set(&ca, &sa, client.Port(), server.Port(), v6)
	nowNs := now.UnixNano()
	fi, tag := e.flows.bucketKey(&k)
	mu := e.flows.lock(fi)
	mu.Lock()
	defer mu.Unlock()
	f := e.flows.find(fi, tag, &k, nowNs)
	if f == nil || f.state != stateEstablished && !f.handedOff {
		return false
	}
	if !f.handedOff {
		// Closing, not established: it expires silently, where an idle
		// established flow would have both its ends probed.
		f.handedOff = true
		e.flows.close(f, nowNs)
		f.closeAt = nowNs + int64(HandoffGrace)
		e.ho.confirmed.Add(1)
	}
	return true
}
