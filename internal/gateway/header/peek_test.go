package header

import (
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// peekResult is Fixed with the addresses copied, for comparing.
type peekResult struct {
	OK               bool
	Src, Dst         string
	V6, Ports, Whole bool
	SrcPort, DstPort uint16
	Flags            uint8
}

func peekWith(fn func([]byte, *Fixed) bool, b []byte) peekResult {
	var f Fixed
	if !fn(b, &f) {
		return peekResult{}
	}
	r := peekResult{OK: true, Src: string(f.Src(b)), Dst: string(f.Dst(b)), V6: f.V6, Ports: f.Ports}
	if f.Ports {
		r.SrcPort, r.DstPort, r.Whole = f.SrcPort, f.DstPort, f.Whole
		if f.Whole {
			r.Flags = f.Flags
		}
	}
	return r
}

// peekAll is Peek's result, after checking that the general path (peek)
// gives the same.
func peekAll(t *testing.T, b []byte) peekResult {
	t.Helper()
	r := peekWith(Peek, b)
	if d := cmp.Diff(peekWith(peek, b), r); d != "" {
		t.Fatalf("Peek(% x) differs from the general path (-general +Peek):\n%s", b, d)
	}
	return r
}

func TestPeek(t *testing.T) {
	good4 := v4(nil, seg(SYN, nil, nil))
	good6 := v6(ProtocolTCP, nil, seg(SYN|ACK, nil, nil))
	a4 := func(r peekResult) peekResult {
		r.OK, r.Src, r.Dst = true, string(src4[:4]), string(dst4[:4])
		return r
	}
	a6 := func(r peekResult) peekResult {
		r.OK, r.Src, r.Dst, r.V6 = true, string(src6[:]), string(dst6[:]), true
		return r
	}
	tests := []struct {
		name string
		b    []byte
		want peekResult
	}{
		{"ipv4", good4, a4(peekResult{Ports: true, Whole: true, SrcPort: 40000, DstPort: 80, Flags: SYN})},
		{"ipv4 options", v4([]byte{1, 1, 1, 0}, seg(ACK|FIN, nil, nil)), a4(peekResult{Ports: true, Whole: true, SrcPort: 40000, DstPort: 80, Flags: ACK | FIN})},
		{"ipv6", good6, a6(peekResult{Ports: true, Whole: true, SrcPort: 40000, DstPort: 80, Flags: SYN | ACK})},
		{"ipv4 first fragment", mod(good4, func(b []byte) { b[6] = 0x20 }), a4(peekResult{Ports: true, SrcPort: 40000, DstPort: 80})},
		{"ipv4 later fragment", mod(good4, func(b []byte) { b[7] = 1 }), a4(peekResult{})},
		{"ipv4 udp", mod(good4, func(b []byte) { b[9] = 17 }), a4(peekResult{})},
		{"ipv4 ihl 4", mod(good4, func(b []byte) { b[0] = 0x44 }), a4(peekResult{})},
		{"ipv4 ports only", good4[:24], a4(peekResult{Ports: true, SrcPort: 40000, DstPort: 80})},
		{"ipv4 addresses only", good4[:23], a4(peekResult{})},
		{"ipv4 short", good4[:19], peekResult{}},
		{"ipv6 extension header", v6(IPv6DestOptions, ext(ProtocolTCP, 8), seg(SYN, nil, nil)), a6(peekResult{})},
		{"ipv6 ports only", good6[:44], a6(peekResult{Ports: true, SrcPort: 40000, DstPort: 80})},
		{"ipv6 short", good6[:39], peekResult{}},
		{"version 5", mod(good4, func(b []byte) { b[0] = 0x55 }), peekResult{}},
		{"empty", nil, peekResult{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := cmp.Diff(tt.want, peekAll(t, tt.b)); d != "" {
				t.Errorf("Peek(% x) (-want +got):\n%s", tt.b, d)
			}
		})
	}
}

// TestPeekAgreesWithParse: on packets Parse accepts whose TCP header follows
// the fixed IP header, Peek reads the same addresses, ports and flags; on
// damaged and cut packets its fast path agrees with the general one, and
// neither reads past b (it would panic).
func TestPeekAgreesWithParse(t *testing.T) {
	rng := rand.New(rand.NewPCG(51, 52))
	var p Packet
	for range 5000 {
		b := genPacket(rng)
		got := peekAll(t, b)
		if Parse(b, &p) == OK && (!p.V6 || len(p.IP) == IPv6FixedSize) {
			n := 4
			if p.V6 {
				n = 16
			}
			want := peekResult{OK: true, Src: string(p.Src[:n]), Dst: string(p.Dst[:n]), V6: p.V6, Ports: true, Whole: true,
				SrcPort: p.TCP.SourcePort(), DstPort: p.TCP.DestinationPort(), Flags: p.TCP.Flags()}
			if d := cmp.Diff(want, got); d != "" {
				t.Fatalf("Peek(% x) differs from Parse (-Parse +Peek):\n%s", b, d)
			}
		}
		m := append([]byte(nil), b...)
		m[rng.IntN(min(len(m), 60))] = byte(rng.Uint32())
		peekAll(t, m)
		peekAll(t, m[:rng.IntN(len(m)+1)])
	}
}
