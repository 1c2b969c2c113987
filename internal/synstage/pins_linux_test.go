//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package synstage

import (
	"bytes"
	"testing"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
)

// TestSharedCachePins: clients without timestamps keep window scale, SACK
// and ECN only in the SYN cache, so their SYN-ACK offers them only with an
// entry pinned until the cookie expires (gateway Worker.syn). In a shared
// cache of one bucket of 4 the program pins the entries it writes for such
// clients: 4 SYNs get every option, the fifth none (the bucket is full of
// pins), byte for byte what the engine answers the same SYN, whose own
// victim passes over the program's pins (cache_full); a client with
// timestamps keeps its options, which its TSval carries.
func TestSharedCachePins(t *testing.T) {
	p := newPairSized(t, diffPolicy(t), true, 1, 4)
	p.tcOnly = true
	noTS := func(n int) synSpec {
		return synSpec{port: portFull, mss: 1460, ws: 7, sack: true, ecn: true, isn: 0x1000 * uint32(n+1), sport: uint16(44000 + n)}
	}
	opts := func(pkt []byte) (ws bool, sack bool, ecn bool) {
		var h header.Packet
		if r := header.Parse(bytes.Clone(pkt), &h); r != header.OK {
			t.Fatal(r)
		}
		return h.Opts.HasWScale, h.Opts.SACKPermitted, h.TCP.Flags()&header.ECE != 0
	}
	for n := range 4 {
		o := p.runBPF(p.s.objs.SynstageTc, false, ethernet(synPacket(t, noTS(n))))
		if o.Kind != "answer" {
			t.Fatalf("SYN %d: %+v", n, o)
		}
		if ws, sack, ecn := opts(o.Packet); !ws || !sack || !ecn {
			t.Errorf("SYN %d without timestamps, room in the bucket: SYN-ACK offers wscale %v, SACK %v, ECN %v; want all (pinned entry)", n, ws, sack, ecn)
		}
	}
	fifth := synPacket(t, noTS(4))
	o := p.runBPF(p.s.objs.SynstageTc, false, ethernet(fifth))
	if ws, sack, ecn := opts(o.Packet); o.Kind != "answer" || ws || sack || ecn {
		t.Errorf("fifth SYN without timestamps, bucket full of pins: %s offering wscale %v, SACK %v, ECN %v; want an answer offering none", o.Kind, ws, sack, ecn)
	}
	before := p.e.Stats()
	want := p.runEngine(fifth)
	if want.Kind != "answer" || !bytes.Equal(want.Packet, o.Packet) {
		t.Errorf("engine's SYN-ACK to the fifth SYN differs from the program's:\n% x\n% x", want.Packet, o.Packet)
	}
	if got := p.e.Stats().CacheFull - before.CacheFull; got != 1 {
		t.Errorf("engine CacheFull moved by %d, want 1 (the program's pins)", got)
	}
	// A handshake ACK of a pinned SYN-ACK finds its entry: the client's
	// options reach the server.
	s := noTS(0)
	sa := p.runBPF(p.s.objs.SynstageTc, false, ethernet(synPacket(t, s))) // a retransmission: same cookie
	var h header.Packet
	header.Parse(bytes.Clone(sa.Packet), &h)
	a := s
	a.flags, a.isn, a.mss, a.ws, a.sack, a.ecn = header.ACK, s.isn+1, -1, -1, false, false
	ack := synPacket(t, a)
	var ap header.Packet
	header.Parse(ack, &ap)
	ap.TCP.SetAckNumber(h.TCP.SequenceNumber() + 1)
	ap.SetTCPChecksum()
	var r engine.Result
	p.w.Process(ack, engine.Meta{}, p.now, &r)
	if r.Event != engine.EventHandshake {
		t.Fatalf("handshake ACK: %v", r.Event)
	}
	var srv header.Packet
	if reason := header.Parse(r.Packet, &srv); reason != header.OK {
		t.Fatal(reason)
	}
	if o := srv.Opts; !o.HasWScale || o.WScale != 7 || !o.SACKPermitted {
		t.Errorf("SYN to the server has options %+v, want the client's wscale 7 and SACK", o)
	}
	// With timestamps the options ride in the TSval: offered though the
	// bucket is full.
	ts := noTS(9)
	ts.ts, ts.tsval = true, 1234
	o = p.runBPF(p.s.objs.SynstageTc, false, ethernet(synPacket(t, ts)))
	if ws, sack, ecn := opts(o.Packet); !ws || !sack || !ecn {
		t.Errorf("SYN with timestamps, bucket full: offers wscale %v, SACK %v, ECN %v; want all", ws, sack, ecn)
	}
}
