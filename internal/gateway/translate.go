package gateway

import (
	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
)

// rescale converts a window field sent with shift from into one read with
// shift to (RFC 7323 §2.3), capped at the largest field.
func rescale(field uint16, from, to uint8) uint16 {
	v := uint32(field) << from >> to
	return uint16(min(v, 0xffff))
}

// c2sWindow converts a client window field for the server.
func (f *flow) c2sWindow(field uint16) uint16 {
	if !f.rescaleC2S {
		return field
	}
	return rescale(field, f.clientShift, f.serverBelievesClient)
}

// closeSide notes a FIN or RST in one direction; a flow with FINs both ways,
// or any RST, lingers and is then removed.
func (w *Worker) closeSide(f *flow, flags uint8, client bool, nowNs int64) {
	if flags&header.RST != 0 {
		w.e.flows.close(f, nowNs)
		return
	}
	if client {
		f.finClient = true
	} else {
		f.finServer = true
	}
	if f.finClient && f.finServer {
		w.e.flows.close(f, nowNs)
	}
}

// translateC2S rewrites a client segment for the server: the ACK number and
// SACK blocks name the server's sequence space, TSecr the server's clock
// (RFC 7323 §3), and the window the scale the server believes in.
func (w *Worker) translateC2S(pkt []byte, p *header.Packet, x *xlate, flags uint8, meta engine.Meta, r *engine.Result) {
	t := p.TCP
	o := &p.Opts
	var c header.ChecksumDelta
	if flags&header.ACK != 0 {
		c.Shift32(t[header.TCPAckNumOffset:], -x.delta)
	}
	if n := o.SACKBlocks; n > 0 && x.delta != 0 && o.SACKOffset > 0 {
		for i := 0; i < 2*n; i++ {
			c.Shift32(t[o.SACKOffset+4*i:], -x.delta)
		}
	}
	if x.useTS && o.HasTS {
		c.Shift32(t[o.TSOffset+4:], -x.tsOff) // TSecr
	}
	if x.rescaleC2S {
		c.Put16(t[header.TCPWindowOffset:], rescale(t.WindowSize(), x.clientShift, x.serverBelievesClient))
	}
	fixChecksum(p, c, meta)
	r.Verdict, r.Packet, r.Event = engine.Accept, pkt, engine.EventTranslated
}

// translateS2C rewrites a server segment for the client: the sequence
// number moves into the cookie's space, TSval onto our clock, and the
// window onto the scale our SYN-ACK offered. SACK blocks name the client's
// own sequence space and stay.
func (w *Worker) translateS2C(pkt []byte, p *header.Packet, x *xlate, meta engine.Meta, r *engine.Result) {
	t := p.TCP
	o := &p.Opts
	var c header.ChecksumDelta
	c.Shift32(t[header.TCPSeqNumOffset:], x.delta)
	if x.useTS && o.HasTS {
		c.Shift32(t[o.TSOffset:], x.tsOff) // TSval
	}
	if x.rescaleS2C {
		c.Put16(t[header.TCPWindowOffset:], rescale(t.WindowSize(), x.serverShift, x.clientBelievesServer))
	}
	fixChecksum(p, c, meta)
	r.Verdict, r.Packet, r.Event = engine.Accept, pkt, engine.EventTranslated
}

// fixChecksum sets the checksum of a translated segment. An altered packet
// handed back to the kernel is taken with its checksum as final (the kernel
// marks it CHECKSUM_NONE), so a packet whose checksum field held only the
// pseudo-header sum (meta.CsumNotReady: GSO super-packets and anything
// forwarded from a veth) gets a full checksum over the segment; any other
// is fixed incrementally (RFC 1624).
func fixChecksum(p *header.Packet, c header.ChecksumDelta, meta engine.Meta) {
	if meta.CsumNotReady {
		p.SetTCPChecksum()
		return
	}
	p.TCP.SetChecksum(c.Apply(p.TCP.Checksum()))
}
