package gateway

import (
	"testing"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
)

func TestRescale(t *testing.T) {
	for _, c := range []struct {
		field    uint16
		from, to uint8
		want     uint16
	}{
		{100, 7, 7, 100},
		{100, 9, 7, 400},
		{100, 7, 9, 25},
		{65535, 14, 0, 65535},
		{502, 7, 0, 64256},
		{3, 0, 7, 0},
	} {
		if got := rescale(c.field, c.from, c.to); got != c.want {
			t.Errorf("rescale(%d, %d, %d) = %d, want %d", c.field, c.from, c.to, got, c.want)
		}
	}
}

// TestTranslateSackAndTimestamps: SACK blocks from the client move into the
// server's space; the server's SACK blocks stay; timestamps both ways.
func TestTranslateSackAndTimestamps(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())
		cookie, ourTS, _ := h.establish(7, "")
		r := h.expect(h.craft(seg{flags: header.ACK, seq: clientISN + 1, ack: cookie + 1, win: 502, ts: true, tsVal: 200, tsEcr: ourTS + 40,
			sack: [][2]uint32{{cookie + 1001, cookie + 2001}, {cookie + 3001, cookie + 4001}, {cookie - 5, cookie + 3}}}), engine.Accept, engine.EventTranslated)
		got := decode(t, r.Packet)
		wantSack := [][2]uint32{{serverISN + 1001, serverISN + 2001}, {serverISN + 3001, serverISN + 4001}, {serverISN - 5, serverISN + 3}}
		if d := cmpDiff(wantSack, got.SACK); d != "" {
			t.Errorf("client SACK (-want +got):\n%s", d)
		}
		if got.TSEcr != serverTS+40 || got.TSVal != 200 || got.Ack != serverISN+1 {
			t.Errorf("client TS/ack = %d %d %d, want %d 200 %d", got.TSEcr, got.TSVal, got.Ack, serverTS+40, serverISN+1)
		}
		r = h.expect(h.craft(seg{fromServer: true, flags: header.ACK, seq: serverISN + 1, ack: clientISN + 1, win: 300, ts: true, tsVal: serverTS + 77, tsEcr: 200,
			sack: [][2]uint32{{clientISN + 100, clientISN + 200}}}), engine.Accept, engine.EventTranslated)
		got = decode(t, r.Packet)
		if d := cmpDiff([][2]uint32{{clientISN + 100, clientISN + 200}}, got.SACK); d != "" {
			t.Errorf("server SACK (-want +got):\n%s", d)
		}
		if got.TSVal != ourTS+77 || got.TSEcr != 200 || got.Seq != cookie+1 {
			t.Errorf("server TS/seq = %d %d %d, want %d 200 %d", got.TSVal, got.TSEcr, got.Seq, ourTS+77, cookie+1)
		}
	})
}

// TestWindowRescale: when the server's window scale differs from the one our
// SYN-ACK offered, windows are converted both ways.
func TestWindowRescale(t *testing.T) {
	for _, tc := range []struct {
		serverWS          int
		s2cIn, s2cOut     uint16
		c2sIn, c2sOut     uint16
		ackWin            uint16
		rescaleC, rescale bool
	}{
		{serverWS: 7, s2cIn: 300, s2cOut: 300, c2sIn: 502, c2sOut: 502, ackWin: 502},
		{serverWS: 9, s2cIn: 300, s2cOut: 1200, c2sIn: 502, c2sOut: 502, ackWin: 502, rescale: true},
		{serverWS: 2, s2cIn: 3000, s2cOut: 93, c2sIn: 502, c2sOut: 502, ackWin: 502, rescale: true},
		{serverWS: 14, s2cIn: 60000, s2cOut: 65535, c2sIn: 502, c2sOut: 502, ackWin: 502, rescale: true},
		// The server did not scale: scaling is off toward it both ways.
		{serverWS: -1, s2cIn: 65000, s2cOut: 507, c2sIn: 502, c2sOut: 64256, ackWin: 64256, rescaleC: true, rescale: true},
		{serverWS: -1, s2cIn: 65000, s2cOut: 507, c2sIn: 3, c2sOut: 384, ackWin: 64256, rescaleC: true, rescale: true},
		{serverWS: -1, s2cIn: 65000, s2cOut: 507, c2sIn: 600, c2sOut: 65535, ackWin: 64256, rescaleC: true, rescale: true},
	} {
		families(t, func(t *testing.T, v6 bool) {
			h := newHarness(t, v6, testAdvertise())
			cookie, _, inj := h.establish(tc.serverWS, "")
			if inj[0].Window != tc.ackWin {
				t.Errorf("ws %d: ACK to server window = %d, want %d", tc.serverWS, inj[0].Window, tc.ackWin)
			}
			f, _ := h.flowOf()
			if f.rescaleS2C != tc.rescale || f.rescaleC2S != tc.rescaleC {
				t.Errorf("ws %d: rescale s2c %v c2s %v, want %v %v", tc.serverWS, f.rescaleS2C, f.rescaleC2S, tc.rescale, tc.rescaleC)
			}
			r := h.expect(h.craft(seg{fromServer: true, flags: header.ACK, seq: serverISN + 1, ack: clientISN + 1, win: tc.s2cIn}), engine.Accept, engine.EventTranslated)
			if got := decode(t, r.Packet).Window; got != tc.s2cOut {
				t.Errorf("ws %d: server window %d → %d, want %d", tc.serverWS, tc.s2cIn, got, tc.s2cOut)
			}
			r = h.expect(h.craft(seg{flags: header.ACK, seq: clientISN + 1, ack: cookie + 1, win: tc.c2sIn}), engine.Accept, engine.EventTranslated)
			if got := decode(t, r.Packet).Window; got != tc.c2sOut {
				t.Errorf("ws %d: client window %d → %d, want %d", tc.serverWS, tc.c2sIn, got, tc.c2sOut)
			}
		})
	}
}

// TestCsumNotReady: a packet whose checksum field holds only the
// pseudo-header sum (GSO super-packets, packets forwarded from a veth) gets a
// complete checksum after the rewrite, because the kernel takes an altered
// packet's checksum as final (measured; see queue/doc.go).
func TestCsumNotReady(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())
		cookie, ourTS, _ := h.establish(7, "")
		for _, fromServer := range []bool{false, true} {
			s := seg{flags: header.ACK, seq: clientISN + 1, ack: cookie + 1, win: 502, ts: true, tsVal: 5, tsEcr: ourTS, payload: string(make([]byte, 3000))}
			if fromServer {
				s = seg{fromServer: true, flags: header.ACK, seq: serverISN + 1, ack: clientISN + 1, win: 502, ts: true, tsVal: serverTS + 1, tsEcr: 5, payload: string(make([]byte, 3000))}
			}
			pkt := h.craft(s)
			ipl := 20
			if v6 {
				ipl = 40
			}
			const partial = 0xbeef
			pkt[ipl+16], pkt[ipl+17] = partial>>8, partial&0xff
			var r engine.Result
			h.w.Process(pkt, engine.Meta{CsumNotReady: true}, h.now, &r)
			if r.Verdict != engine.Accept || r.Event != engine.EventTranslated {
				t.Fatalf("Process = %v %v", r.Verdict, r.Event)
			}
			var p header.Packet
			if reason := header.Parse(r.Packet, &p); reason != header.OK {
				t.Fatalf("fromServer %v: output does not parse: %v", fromServer, reason)
			}
			if !p.VerifyTCPChecksum() {
				t.Errorf("fromServer %v: checksum %#x of the translated packet is not complete and valid", fromServer, p.TCP.Checksum())
			}
			tcp := header.TCP(r.Packet[ipl:])
			if fromServer && tcp.SequenceNumber() != cookie+1 || !fromServer && tcp.AckNumber() != serverISN+1 {
				t.Errorf("fromServer %v: seq/ack not rewritten", fromServer)
			}
		}
	})
}
