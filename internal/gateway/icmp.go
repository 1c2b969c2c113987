package gateway

// ICMP errors about proxied flows. A router beyond the gateway that cannot
// forward a server's segment (fragmentation needed, RFC 1191; packet too
// big, RFC 8201) quotes it as it saw it: translated, its sequence number
// in our cookie's space. The server matches the quote to a connection and
// checks that the sequence number is one it has sent and not had
// acknowledged, so an untranslated quote is discarded and path MTU
// discovery beyond the gateway breaks. The engine translates the quoted
// sequence number back, as NAT does with quoted addresses (RFC 5508 §7),
// and fixes the ICMP checksum (RFC 1624). A quote of a client's segment
// needs nothing: the client's sequence numbers are never translated.
//
// The firewall rules must queue these errors to the engine: ICMP
// destination unreachable (type 3), time exceeded (11) and parameter
// problem (12) toward a guarded prefix, and ICMPv6 types 1 to 4.

import (
	"encoding/binary"
	"time"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
)

// icmpError handles pkt if it is an ICMP error quoting a TCP segment, and
// reports whether it did.
func (w *Worker) icmpError(pkt []byte, meta engine.Meta, now time.Time, r *engine.Result) bool {
	ie := &w.icmp
	if header.ParseICMPError(pkt, ie) != header.OK {
		return false
	}
	e := w.e
	pol := e.cur.Load().pol
	if w.lookup(pol, ie.V6, ie.InnerSrc[:], ie.InnerSrcPort) == nil {
		// About a client's segment, or not ours at all: passed untouched.
		r.Verdict, r.Event = engine.Accept, engine.EventPassed
		if w.lookup(pol, ie.V6, ie.InnerDst[:], ie.InnerDstPort) == nil {
			r.Event = engine.EventUnguarded
		} else {
			r.Dir = engine.DirToClient
		}
		return true
	}
	r.Dir = engine.DirToServer
	var k flowKey
	k.set(&ie.InnerDst, &ie.InnerSrc, ie.InnerDstPort, ie.InnerSrcPort, ie.V6)
	fi, tag := e.flows.bucketKey(&k)
	mu := e.flows.lock(fi)
	mu.Lock()
	f := e.flows.find(fi, tag, &k, now.UnixNano())
	var delta uint32
	up := f != nil && f.up
	if up {
		delta = f.delta
	}
	mu.Unlock()
	if !up {
		r.Verdict, r.Event = engine.Accept, engine.EventPassed
		return true
	}
	var c header.ChecksumDelta
	c.Shift32(pkt[ie.SeqOffset:], -delta)
	if !meta.CsumNotReady {
		// ICMP and ICMPv6 checksums cover the quote (RFC 792, RFC 4443
		// §2.3), in which the sequence number sits at an even offset; a
		// partial one (not ready) is completed by the kernel from what
		// the packet holds.
		ck := pkt[ie.ICMPOffset+header.ICMPChecksumOffset:]
		binary.BigEndian.PutUint16(ck, c.Apply(binary.BigEndian.Uint16(ck)))
	}
	e.st.icmpTranslated.Add(1)
	r.Verdict, r.Packet, r.Event = engine.Accept, pkt, engine.EventTranslated
	return true
}
