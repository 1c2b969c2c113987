package gateway

import (
	"math/rand/v2"
	"testing"

	"github.com/synwall/synwall/internal/gateway/header"
)

// TestBuildSegmentChecksum checks the checksum buildSegment sums from the
// values it writes against one computed over the bytes it wrote, for every
// option combination, both families, and payloads of odd and even lengths.
func TestBuildSegmentChecksum(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var buf [bufSize]byte
	for i := 0; i < 4000; i++ {
		v6 := i%2 == 1
		var src, dst [16]byte
		n := 4
		if v6 {
			n = 16
		}
		for j := 0; j < n; j++ {
			src[j], dst[j] = byte(r.Uint32()), byte(r.Uint32())
		}
		o := synOpts{ws: -1, sack: r.IntN(2) == 0, ts: r.IntN(2) == 0, tsVal: r.Uint32(), tsEcr: r.Uint32()}
		if r.IntN(2) == 0 {
			o.mss = uint16(r.Uint32())
		}
		if r.IntN(2) == 0 {
			o.ws = int8(r.IntN(15))
		}
		var payload []byte
		if r.IntN(3) == 0 {
			payload = make([]byte, r.IntN(PendingSize+1))
			for j := range payload {
				payload[j] = byte(r.Uint32())
			}
		}
		seq, ack := r.Uint32(), r.Uint32()
		flags, win := uint8(r.Uint32()), uint16(r.Uint32())
		sport, dport := uint16(r.Uint32()), uint16(r.Uint32())
		out := buildSegment(buf[:], v6, &src, &dst, sport, dport, seq, ack, flags, win, &o, payload)
		var p header.Packet
		if reason := header.Parse(out, &p); reason != header.OK {
			t.Fatalf("case %d: Parse(built segment) = %v, want OK", i, reason)
		}
		got := p.TCP.Checksum()
		if !p.VerifyTCPChecksum() {
			t.Fatalf("case %d (v6 %v, opts %+v, %d bytes of payload): checksum %#04x does not verify", i, v6, o, len(payload), got)
		}
		p.SetTCPChecksum()
		if want := p.TCP.Checksum(); got != want {
			t.Fatalf("case %d: buildSegment checksum = %#04x, want %#04x (SetTCPChecksum)", i, got, want)
		}
		if !v6 && !header.VerifyIPv4Checksum(header.IPv4(out)) {
			t.Fatalf("case %d: IPv4 header checksum %#04x does not verify", i, header.IPv4(out).Checksum())
		}
		// Every field reads back as written.
		tc := p.TCP
		fields := []struct {
			name      string
			got, want uint64
		}{
			{"v6", b2u(p.V6), b2u(v6)},
			{"src", addrWord(&p.Src), addrWord(&src)},
			{"dst", addrWord(&p.Dst), addrWord(&dst)},
			{"sport", uint64(tc.SourcePort()), uint64(sport)},
			{"dport", uint64(tc.DestinationPort()), uint64(dport)},
			{"seq", uint64(tc.SequenceNumber()), uint64(seq)},
			{"ack", uint64(tc.AckNumber()), uint64(ack)},
			{"flags", uint64(tc.Flags()), uint64(flags)},
			{"reserved", uint64(tc[12] & 0xf), 0},
			{"window", uint64(tc.WindowSize()), uint64(win)},
			{"urgent", uint64(tc[18])<<8 | uint64(tc[19]), 0},
			{"payload", uint64(len(p.Payload)), uint64(len(payload))},
			{"mss", uint64(p.Opts.MSS), uint64(o.mss)},
			{"ts", b2u(p.Opts.HasTS), b2u(o.ts)},
			{"sack", b2u(p.Opts.SACKPermitted), b2u(o.sack)},
			{"ws", b2u(p.Opts.HasWScale), b2u(o.ws >= 0)},
		}
		for _, f := range fields {
			if f.got != f.want {
				t.Fatalf("case %d: built %s = %#x, want %#x", i, f.name, f.got, f.want)
			}
		}
		if !v6 {
			h := header.IPv4(out)
			if h[8] != 64 || h[9] != 6 || h[6] != 0x40 || h[7] != 0 || h[4] != 0 || h[5] != 0 || h[1] != 0 {
				t.Fatalf("case %d: IPv4 header % x, want TTL 64, TCP, DF, ID 0, TOS 0", i, h[:20])
			}
		} else if out[7] != 64 || out[6] != 6 {
			t.Fatalf("case %d: IPv6 header % x, want hop limit 64, TCP", i, out[:40])
		}
	}
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// addrWord folds an address into a word for comparing.
func addrWord(a *[16]byte) uint64 {
	var w uint64
	for i, c := range a {
		w = w*31 + uint64(c) + uint64(i)
	}
	return w
}
