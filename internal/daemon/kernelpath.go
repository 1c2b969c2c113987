package daemon

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/synwall/synwall/internal/conntrack"
	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
)

// The packet path's side of the hand-off: a Processor around the engine's
// (and the observer's) that
//
//   - submits the engine's hand-off records (Result.Handoff) to conntrack;
//   - before a SYN-ACK goes out for a tuple synwall handed off earlier,
//     removes that tuple's entry if it is stale (TIME_WAIT or CLOSE): the
//     client's SYN is untracked, but its ACK would match the stale entry,
//     pass the rules by conntrack state and reach the server unproxied;
//   - translates a server's RST of a handed-off connection itself: the
//     rules send those to the queue, because the kernel's SYNPROXY hook
//     would rewrite its sequence number to cookie ISN + 1 (package
//     conntrack, the CLOSE case). The original is dropped and the
//     translated copy injected (marked, so untracked: the kernel does not
//     translate it again);
//   - translates an ICMP error toward a server that quotes one of its
//     handed-off segments (fragmentation needed, packet too big: RFC 1191,
//     RFC 8201), as the engine does for the flows it keeps (gateway's
//     icmp.go): the quoted sequence number moves back into the server's
//     space. The engine no longer knows such a flow, and the kernel would
//     not translate the quote; worse, conntrack relates the error to the
//     flow's entry and nf_confirm runs its sequence adjustment over the
//     ICMP header as if it were TCP. So the original is dropped and the
//     translated copy injected untracked, as for a RST.

// carrier is what the packet path needs of the hand-off;
// *conntrack.Handoff implements it.
type carrier interface {
	Submit(*conntrack.Flow) bool
	Known(client, server netip.AddrPort) (conntrack.Offsets, bool)
	RemoveStaleNow(client, server netip.AddrPort) conntrack.Result
}

var _ carrier = (*conntrack.Handoff)(nil)

// staleChecksPerSecond bounds the stale checks of one worker: each is two
// round trips to the kernel, and a flood of SYNs spoofing a handed-off
// tuple must not turn into a flood of them.
const staleChecksPerSecond = 1000

// kernelPathStats are the counters of the kernel path, shared by the
// workers.
type kernelPathStats struct {
	rstTranslated  atomic.Uint64 // server RSTs translated by synwall
	icmpTranslated atomic.Uint64 // ICMP errors toward servers translated
	staleChecked   atomic.Uint64 // SYNs on a handed-off tuple checked for a stale entry
	staleRemoved   atomic.Uint64 // stale entries removed before a SYN-ACK
	staleSkipped   atomic.Uint64 // over staleChecksPerSecond
	submitRefused  atomic.Uint64 // hand-off records refused by a full queue
	handoffRecords atomic.Uint64 // hand-off records the engine emitted
}

// kernelPath wraps one worker's Processor.
type kernelPath struct {
	inner engine.Processor
	c     carrier
	st    *kernelPathStats

	budget    int // stale checks left in this second
	budgetSec int64
	buf       [maxRST]byte
	inj       [1][]byte
	flow      conntrack.Flow
	icmp      header.ICMPError
}

// maxRST is the largest server RST translated (headers and any payload);
// a larger one goes to the engine, which drops it.
const maxRST = 1500

var _ engine.Processor = (*kernelPath)(nil)

func newKernelPath(inner engine.Processor, c carrier, st *kernelPathStats) *kernelPath {
	return &kernelPath{inner: inner, c: c, st: st}
}

// Process implements engine.Processor.
func (k *kernelPath) Process(pkt []byte, meta engine.Meta, now time.Time, r *engine.Result) {
	v, ok := peekTCP(pkt)
	if ok && v.flags&tcpRST != 0 && k.serverRST(pkt, &v, r) {
		return
	}
	if !ok && k.icmpError(pkt, r) {
		return
	}
	k.inner.Process(pkt, meta, now, r)
	if r.Handoff.Valid {
		k.st.handoffRecords.Add(1)
		flowOf(&r.Handoff, &k.flow)
		if !k.c.Submit(&k.flow) {
			k.st.submitRefused.Add(1)
		}
	}
	if r.Event == engine.EventSynAnswered && ok {
		k.staleCheck(&v, now)
	}
}

// serverRST translates a RST from a guarded server whose connection was
// handed off; false when it is not one.
func (k *kernelPath) serverRST(pkt []byte, v *tcpView, r *engine.Result) bool {
	client := netip.AddrPortFrom(v.dst, v.dport)
	server := netip.AddrPortFrom(v.src, v.sport)
	off, known := k.c.Known(client, server)
	if !known || len(pkt) > maxRST {
		return false
	}
	b := k.buf[:v.total]
	copy(b, pkt[:v.total])
	tcp := b[v.tcp:]
	binary.BigEndian.PutUint32(tcp[4:], binary.BigEndian.Uint32(tcp[4:])+off.Seq)
	if off.Timestamps && off.TS != 0 {
		if i := tsOption(tcp[:v.tcpLen]); i > 0 {
			binary.BigEndian.PutUint32(tcp[i+2:], binary.BigEndian.Uint32(tcp[i+2:])-off.TS)
		}
	}
	setTCPChecksum(b, v)
	k.inj[0] = b
	r.Verdict, r.Inject, r.Event, r.Dir = engine.Drop, k.inj[:1], engine.EventTranslated, engine.DirToClient
	k.st.rstTranslated.Add(1)
	return true
}

// icmpError translates an ICMP error that quotes a server's segment of a
// handed-off connection; false when pkt is not one.
func (k *kernelPath) icmpError(pkt []byte, r *engine.Result) bool {
	ie := &k.icmp
	if len(pkt) > maxRST || header.ParseICMPError(pkt, ie) != header.OK {
		return false
	}
	server := netip.AddrPortFrom(addr16(&ie.InnerSrc, ie.V6), ie.InnerSrcPort)
	client := netip.AddrPortFrom(addr16(&ie.InnerDst, ie.V6), ie.InnerDstPort)
	off, known := k.c.Known(client, server)
	if !known {
		return false
	}
	b := k.buf[:len(pkt)]
	copy(b, pkt)
	binary.BigEndian.PutUint32(b[ie.SeqOffset:], binary.BigEndian.Uint32(b[ie.SeqOffset:])-off.Seq)
	setICMPChecksum(b, ie)
	k.inj[0] = b
	r.Verdict, r.Inject, r.Event, r.Dir = engine.Drop, k.inj[:1], engine.EventTranslated, engine.DirToServer
	k.st.icmpTranslated.Add(1)
	return true
}

func addr16(a *[16]byte, v6 bool) netip.Addr {
	if v6 {
		return netip.AddrFrom16(*a)
	}
	return netip.AddrFrom4([4]byte(a[:4]))
}

// setICMPChecksum computes the whole checksum of the ICMP (RFC 792) or
// ICMPv6 (RFC 4443 §2.3: with the pseudo-header) message in b.
func setICMPChecksum(b []byte, ie *header.ICMPError) {
	var end int
	if ie.V6 {
		end = 40 + int(binary.BigEndian.Uint16(b[4:]))
	} else {
		end = int(binary.BigEndian.Uint16(b[2:]))
	}
	msg := b[ie.ICMPOffset:end]
	msg[header.ICMPChecksumOffset], msg[header.ICMPChecksumOffset+1] = 0, 0
	var sum uint32
	add := func(p []byte) {
		for ; len(p) >= 2; p = p[2:] {
			sum += uint32(p[0])<<8 | uint32(p[1])
		}
		if len(p) == 1 {
			sum += uint32(p[0]) << 8
		}
	}
	if ie.V6 {
		add(b[8:40])
		sum += uint32(len(msg)>>16) + uint32(len(msg)&0xffff) + 58
	}
	add(msg)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(msg[header.ICMPChecksumOffset:], ^uint16(sum))
}

// staleCheck removes a stale entry of a handed-off tuple before the
// SYN-ACK the engine built goes out.
func (k *kernelPath) staleCheck(v *tcpView, now time.Time) {
	client := netip.AddrPortFrom(v.src, v.sport)
	server := netip.AddrPortFrom(v.dst, v.dport)
	if _, known := k.c.Known(client, server); !known {
		return
	}
	if sec := now.Unix(); sec != k.budgetSec {
		k.budgetSec, k.budget = sec, staleChecksPerSecond
	}
	if k.budget == 0 {
		k.st.staleSkipped.Add(1)
		return
	}
	k.budget--
	k.st.staleChecked.Add(1)
	if res := k.c.RemoveStaleNow(client, server); res.Removed {
		k.st.staleRemoved.Add(1)
	}
}

// flowOf turns the engine's record into conntrack's.
func flowOf(h *engine.Handoff, f *conntrack.Flow) {
	var c, s netip.Addr
	if h.V6 {
		c, s = netip.AddrFrom16(h.Client), netip.AddrFrom16(h.Server)
	} else {
		c, s = netip.AddrFrom4([4]byte(h.Client[:4])), netip.AddrFrom4([4]byte(h.Server[:4]))
	}
	*f = conntrack.Flow{
		Client: netip.AddrPortFrom(c, h.ClientPort), Server: netip.AddrPortFrom(s, h.ServerPort),
		ClientWScale: h.ClientWScale, ServerWScale: h.ServerWScale,
		CookieISN: h.CookieISN, ServerISN: h.ServerISN, ITS: h.ITS, ServerTSval: h.ServerTSval,
	}
	if h.WScale {
		f.Opts |= conntrack.OptWindowScale
	}
	if h.SACK {
		f.Opts |= conntrack.OptSACK
	}
	if h.Timestamps {
		f.Opts |= conntrack.OptTimestamps
	}
}

// TCP flags the kernel path looks at (RFC 9293 §3.1).
const (
	tcpRST = 0x04
)

// tcpView is where a TCP segment's fields are in a packet, found by
// peekTCP. The engine validates every packet it gets; this view only
// picks what the kernel path needs, and whatever it cannot read goes on to
// the engine unchanged.
type tcpView struct {
	v6           bool
	src, dst     netip.Addr
	sport, dport uint16
	flags        uint8
	tcp          int // offset of the TCP header
	tcpLen       int // header length with options
	total        int // packet length per the IP header
}

// peekTCP reads an IPv4 or IPv6 (no extension headers) TCP segment's
// addresses, ports and flags; false for anything else, a fragment, or a
// truncated one.
func peekTCP(pkt []byte) (tcpView, bool) {
	var v tcpView
	if len(pkt) < 20 {
		return v, false
	}
	switch pkt[0] >> 4 {
	case 4:
		ihl := int(pkt[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(pkt[2:]))
		if ihl < 20 || pkt[9] != 6 || binary.BigEndian.Uint16(pkt[6:])&0x3fff != 0 || total > len(pkt) || total < ihl+20 {
			return v, false
		}
		v.src, v.dst = netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20]))
		v.tcp, v.total = ihl, total
	case 6:
		if len(pkt) < 60 || pkt[6] != 6 {
			return v, false
		}
		total := 40 + int(binary.BigEndian.Uint16(pkt[4:]))
		if total > len(pkt) || total < 60 {
			return v, false
		}
		v.v6 = true
		v.src, v.dst = netip.AddrFrom16([16]byte(pkt[8:24])), netip.AddrFrom16([16]byte(pkt[24:40]))
		v.tcp, v.total = 40, total
	default:
		return v, false
	}
	t := pkt[v.tcp:v.total]
	v.tcpLen = int(t[12]>>4) * 4
	if v.tcpLen < 20 || v.tcpLen > len(t) {
		return v, false
	}
	v.sport, v.dport = binary.BigEndian.Uint16(t), binary.BigEndian.Uint16(t[2:])
	v.flags = t[13]
	return v, true
}

// tsOption returns the offset of the timestamps option (RFC 7323 §3.2:
// kind 8, length 10) in a TCP header, or 0.
func tsOption(h []byte) int {
	for i := 20; i < len(h); {
		switch h[i] {
		case 0: // end of options
			return 0
		case 1: // no-op
			i++
			continue
		}
		if i+1 >= len(h) || h[i+1] < 2 || i+int(h[i+1]) > len(h) {
			return 0
		}
		if h[i] == 8 && h[i+1] == 10 {
			return i
		}
		i += int(h[i+1])
	}
	return 0
}

// setTCPChecksum computes the whole TCP checksum of the segment in b
// (RFC 9293 §3.1: one's complement of the one's-complement sum of the
// pseudo-header and the segment).
func setTCPChecksum(b []byte, v *tcpView) {
	seg := b[v.tcp:v.total]
	seg[16], seg[17] = 0, 0
	var sum uint32
	add := func(p []byte) {
		for ; len(p) >= 2; p = p[2:] {
			sum += uint32(p[0])<<8 | uint32(p[1])
		}
		if len(p) == 1 {
			sum += uint32(p[0]) << 8
		}
	}
	if v.v6 {
		add(b[8:40])
		sum += uint32(len(seg)>>16) + uint32(len(seg)&0xffff) + 6
	} else {
		add(b[12:20])
		sum += uint32(len(seg)) + 6
	}
	add(seg)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(seg[16:], ^uint16(sum))
}
