package gateway

import (
	"encoding/binary"
	"testing"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
)

// FuzzProcess feeds arbitrary bytes to one engine. With mode&1 the bytes are
// a TCP segment behind a valid IPv4 or IPv6 header (mode&2), sent by the
// server when mode&4, so that the fuzzer reaches the stateful paths; mode&8
// marks the checksum as not ready. Nothing may panic, and every result must
// be consistent.
func FuzzProcess(f *testing.F) {
	h := newHarness(f, false, testAdvertise())
	h6 := &harness{tb: f, e: h.e, w: h.w, now: h.now, v6: true}
	for _, hh := range []*harness{h, h6} {
		for _, s := range []seg{
			fullSyn(),
			{flags: header.ACK, seq: clientISN + 1, ack: 5, win: 3, ts: true, tsVal: 1, tsEcr: 2},
			{flags: header.ACK | header.PSH, seq: clientISN + 1, ack: 5, win: 3, payload: "data", sack: [][2]uint32{{1, 2}}},
			{fromServer: true, flags: header.SYN | header.ACK, seq: 9, ack: clientISN + 1, mss: 1400, hasWS: true, ws: 3, ts: true},
			{fromServer: true, flags: header.RST},
			{flags: header.SYN | header.FIN},
		} {
			pkt := hh.craft(s)
			f.Add(pkt, uint8(0))
			ipl := 20
			if hh.v6 {
				ipl = 40
			}
			mode := uint8(1)
			if hh.v6 {
				mode |= 2
			}
			if s.fromServer {
				mode |= 4
			}
			f.Add(pkt[ipl:], mode)
		}
	}
	// Establish a flow so that translation is reachable.
	h.establish(7, "")
	h6.establish(7, "")
	ip4 := h.craft(seg{flags: header.ACK})[:20]
	ip4s := h.craft(seg{fromServer: true, flags: header.ACK})[:20]
	ip6 := h6.craft(seg{flags: header.ACK})[:40]
	ip6s := h6.craft(seg{fromServer: true, flags: header.ACK})[:40]
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		pkt := data
		if mode&1 != 0 {
			var ip []byte
			switch mode & 6 {
			case 0:
				ip = ip4
			case 4:
				ip = ip4s
			case 2:
				ip = ip6
			default:
				ip = ip6s
			}
			pkt = append(append([]byte(nil), ip...), data...)
			if len(ip) == 20 {
				binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
				pkt[10], pkt[11] = 0, 0
			} else {
				binary.BigEndian.PutUint16(pkt[4:], uint16(len(data)))
			}
		}
		var r engine.Result
		h.w.Process(pkt, engine.Meta{CsumNotReady: mode&8 != 0}, h.now, &r)
		if r.Verdict != engine.Accept && r.Verdict != engine.Drop || r.Event == engine.EventInvalid || r.Event >= engine.NumEvents {
			t.Fatalf("Process = %v %v", r.Verdict, r.Event)
		}
		if r.Event == engine.EventMalformed && (r.Reason == header.OK || r.Reason == header.ReasonInvalid) {
			t.Fatalf("malformed without a reason: %v", r.Reason)
		}
		for _, p := range r.Inject {
			var q header.Packet
			if reason := header.Parse(p, &q); reason != header.OK {
				t.Fatalf("injected packet does not parse: %v", reason)
			}
			if !header.VerifyTCPChecksum(q.V6, &q.Src, &q.Dst, q.TCP) {
				t.Fatalf("injected packet with a bad checksum")
			}
		}
	})
}
