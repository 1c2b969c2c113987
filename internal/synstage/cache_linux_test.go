//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package synstage

import (
	"bytes"
	"fmt"
	"testing"
	"unsafe"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway"
	"github.com/synwall/synwall/internal/gateway/header"
)

// TestCacheEntryLayout holds the program's SYN-cache entry to the layout
// the engine shares (gateway.CacheEntrySize and the Cache*Offset
// constants, which a gateway test holds to its own cacheEntry).
func TestCacheEntryLayout(t *testing.T) {
	var c synstageSynstageCacheEntry
	tests := []struct {
		name      string
		got, want uintptr
	}{
		{"size", unsafe.Sizeof(c), gateway.CacheEntrySize},
		{"fp", unsafe.Offsetof(c.Fp), gateway.CacheFPOffset},
		{"client_isn", unsafe.Offsetof(c.ClientIsn), gateway.CacheClientISNOffset},
		{"cookie", unsafe.Offsetof(c.Cookie), gateway.CacheCookieOffset},
		{"our_ts", unsafe.Offsetof(c.OurTs), gateway.CacheOurTSOffset},
		{"client_ts", unsafe.Offsetof(c.ClientTs), gateway.CacheClientTSOffset},
		{"mss", unsafe.Offsetof(c.Mss), gateway.CacheMSSOffset},
		{"ws", unsafe.Offsetof(c.Ws), gateway.CacheWSOffset},
		{"adv_ws", unsafe.Offsetof(c.AdvWs), gateway.CacheAdvWSOffset},
		{"sack", unsafe.Offsetof(c.Sack), gateway.CacheSACKOffset},
		{"ts", unsafe.Offsetof(c.Ts), gateway.CacheTSOffset},
		{"ecn", unsafe.Offsetof(c.Ecn), gateway.CacheECNOffset},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("synstage_cache_entry %s = %d, want %d", tc.name, tc.got, tc.want)
		}
	}
}

// TestSharedCache answers SYNs with the program and completes their
// handshakes in an engine whose SYN cache is the program's: the engine
// finds the entries the program wrote (a cache hit), opens the server side
// with the client's exact options even without timestamps (which a cookie
// alone loses), and answers a retransmitted SYN from the program's entry
// with the same SYN-ACK.
func TestSharedCache(t *testing.T) {
	p := newPairCache(t, diffPolicy(t), true)
	p.tcOnly = true
	for i, v6 := range []bool{false, true} {
		for j, ts := range []bool{false, true} {
			n := i*2 + j
			s := synSpec{v6: v6, port: portFull, mss: 1234, ws: 3, sack: true, ts: ts, ecn: true,
				isn: 0x1000 * uint32(n+1), sport: uint16(41000 + n), tsval: 555}
			name := fmt.Sprintf("v6=%v ts=%v", v6, ts)
			syn := synPacket(t, s)
			o := p.runBPF(p.s.objs.SynstageTc, false, ethernet(syn))
			if o.Kind != "answer" {
				t.Fatalf("%s: program %+v, want an answer", name, o)
			}
			// A retransmission reaches the engine: same SYN-ACK, from the
			// program's entry.
			before := p.e.Stats()
			if want := p.runEngine(syn); want.Kind != "answer" || !bytes.Equal(want.Packet, o.Packet) {
				t.Errorf("%s: the engine's answer to the retransmitted SYN differs from the program's:\n% x\n% x", name, want.Packet, o.Packet)
			}
			if got := p.e.Stats().CacheRetransmits - before.CacheRetransmits; got != 1 {
				t.Errorf("%s: CacheRetransmits moved by %d, want 1 (the program's entry)", name, got)
			}
			// The handshake ACK.
			var sa header.Packet
			if r := header.Parse(o.Packet, &sa); r != header.OK {
				t.Fatal(r)
			}
			a := s
			a.flags, a.isn, a.mss, a.ws, a.sack, a.ecn = header.ACK, s.isn+1, -1, -1, false, false
			ack := synPacket(t, a)
			var ap header.Packet
			header.Parse(ack, &ap)
			ap.TCP.SetAckNumber(sa.TCP.SequenceNumber() + 1)
			if ts {
				// NOP NOP TS: echo our TSval.
				ack = ackWithTS(t, a, sa.TCP.SequenceNumber()+1, s.tsval+1, sa.Opts.TSVal)
			} else {
				ap.SetTCPChecksum()
			}
			before = p.e.Stats()
			var r engine.Result
			p.w.Process(ack, engine.Meta{}, p.now, &r)
			if r.Event != engine.EventHandshake {
				t.Fatalf("%s: engine on the handshake ACK: %v, want %v", name, r.Event, engine.EventHandshake)
			}
			if got := p.e.Stats().CacheHits - before.CacheHits; got != 1 {
				t.Errorf("%s: CacheHits moved by %d, want 1", name, got)
			}
			var srv header.Packet
			if reason := header.Parse(r.Packet, &srv); reason != header.OK {
				t.Fatal(reason)
			}
			o2 := srv.Opts
			if !o2.HasMSS || o2.MSS != 1234 || !o2.HasWScale || o2.WScale != 3 || !o2.SACKPermitted || o2.HasTS != ts ||
				srv.TCP.Flags()&(header.ECE|header.CWR) != header.ECE|header.CWR {
				t.Errorf("%s: SYN to the server has options %+v flags %#x, want the client's MSS 1234, wscale 3, SACK, ECN, timestamps %v",
					name, o2, srv.TCP.Flags(), ts)
			}
		}
	}
}

// ackWithTS builds the handshake ACK of s with NOP, NOP, timestamps.
func ackWithTS(t *testing.T, s synSpec, ack, tsval, tsecr uint32) []byte {
	t.Helper()
	s.ts, s.tsval = true, tsval
	pkt := synPacket(t, s)
	var p header.Packet
	if r := header.Parse(pkt, &p); r != header.OK {
		t.Fatal(r)
	}
	p.TCP.SetAckNumber(ack)
	// synPacket wrote NOP NOP TS(tsval, 0): set TSecr.
	off := p.Opts.TSOffset
	p.TCP[off+4], p.TCP[off+5], p.TCP[off+6], p.TCP[off+7] = byte(tsecr>>24), byte(tsecr>>16), byte(tsecr>>8), byte(tsecr)
	p.SetTCPChecksum()
	return pkt
}
