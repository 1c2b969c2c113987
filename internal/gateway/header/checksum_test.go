package header

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// naiveChecksum is RFC 1071 §4.1 written out: 16-bit big-endian words, an
// odd byte padded with zero, carries folded at the end.
func naiveChecksum(b []byte, initial uint16) uint16 {
	sum := uint32(initial)
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}

func TestChecksumMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, 4096+8)
	for range 20000 {
		n := rng.IntN(1600)
		if rng.IntN(10) == 0 {
			n = rng.IntN(4096)
		}
		off := rng.IntN(8) // unaligned starts
		b := buf[off : off+n]
		switch rng.IntN(4) {
		case 0: // all ones: the carry-heavy worst case
			for i := range b {
				b[i] = 0xff
			}
		case 1:
			for i := range b {
				b[i] = 0
			}
		default:
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
		}
		initial := uint16(rng.Uint32())
		if rng.IntN(4) == 0 {
			initial = 0xffff
		}
		if got, want := Checksum(b, initial), naiveChecksum(b, initial); got != want {
			t.Fatalf("Checksum(%x, %#04x) = %#04x, want %#04x", b, initial, got, want)
		}
	}
}

func TestChecksumEdges(t *testing.T) {
	tests := []struct {
		b       []byte
		initial uint16
		want    uint16
	}{
		{nil, 0, 0},
		{nil, 0x1234, 0x1234},
		{[]byte{0xab}, 0, 0xab00},
		{[]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, 0, 0xddf2}, // RFC 1071 §3 example
		{[]byte{0xff, 0xff, 0x00, 0x01}, 0, 0x0001},
	}
	for _, tt := range tests {
		if got := Checksum(tt.b, tt.initial); got != tt.want {
			t.Errorf("Checksum(%x, %#04x) = %#04x, want %#04x", tt.b, tt.initial, got, tt.want)
		}
	}
}

// pseudoNaive builds the pseudo-header bytes (RFC 9293 §3.1, RFC 8200 §8.1)
// and sums them.
func pseudoNaive(v6 bool, src, dst *[16]byte, n int) uint16 {
	var b []byte
	if v6 {
		b = append(b, src[:]...)
		b = append(b, dst[:]...)
		b = binary.BigEndian.AppendUint32(b, uint32(n))
		b = append(b, 0, 0, 0, ProtocolTCP)
	} else {
		b = append(b, src[:4]...)
		b = append(b, dst[:4]...)
		b = append(b, 0, ProtocolTCP)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	}
	return naiveChecksum(b, 0)
}

func TestPseudoHeaderChecksum(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 10000 {
		var s, d [16]byte
		for i := range s {
			s[i], d[i] = byte(rng.Uint32()), byte(rng.Uint32())
		}
		if rng.IntN(8) == 0 {
			for i := range s {
				s[i], d[i] = 0xff, 0xff
			}
		}
		v6 := rng.IntN(2) == 0
		if !v6 {
			clear(s[4:])
			clear(d[4:])
		}
		n := rng.IntN(65536)
		if got, want := PseudoHeaderChecksum(v6, &s, &d, n), pseudoNaive(v6, &s, &d, n); got != want {
			t.Fatalf("PseudoHeaderChecksum(%v, %x, %x, %d) = %#04x, want %#04x", v6, s, d, n, got, want)
		}
	}
}

func TestSetVerifyTCPChecksum(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for range 2000 {
		b := genPacket(rng)
		var p Packet
		if r := Parse(b, &p); r != OK {
			t.Fatalf("Parse = %v", r)
		}
		seg := p.Segment()
		// Reference: checksum field zero, naive sum over pseudo-header and
		// segment, complemented.
		c := append([]byte(nil), seg...)
		c[16], c[17] = 0, 0
		want := ^naiveChecksum(c, pseudoNaive(p.V6, &p.Src, &p.Dst, len(c)))
		seg.SetChecksum(uint16(rng.Uint32())) // any old value
		p.SetTCPChecksum()
		if got := seg.Checksum(); got != want {
			t.Fatalf("SetTCPChecksum stored %#04x, want %#04x", got, want)
		}
		if !p.VerifyTCPChecksum() {
			t.Fatalf("VerifyTCPChecksum() = false after SetTCPChecksum")
		}
		i := rng.IntN(len(seg))
		seg[i] ^= 1 << rng.IntN(8)
		if p.VerifyTCPChecksum() {
			t.Fatalf("VerifyTCPChecksum() = true after flipping a bit of byte %d", i)
		}
	}
}

// TestChecksumDelta: single 16- and 32-bit changes at any even offset, one
// at a time and several summed before one Apply, give the checksum a full
// recomputation gives (RFC 1624), also for sums near zero.
func TestChecksumDelta(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	b := make([]byte, 64)
	for i := range 20000 {
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		if i%50 == 0 {
			clear(b) // sums near zero
		}
		csum := ^Checksum(b, 0)
		var d ChecksumDelta
		for range 1 + rng.IntN(4) {
			off := 2 * rng.IntN(len(b)/2-1)
			switch rng.IntN(4) {
			case 0:
				old := binary.BigEndian.Uint32(b[off:])
				nw := rng.Uint32()
				if i%7 == 0 {
					nw = ^old
				}
				binary.BigEndian.PutUint32(b[off:], nw)
				d.Add32(old, nw)
			case 1:
				old := binary.BigEndian.Uint16(b[off:])
				nw := uint16(rng.Uint32())
				binary.BigEndian.PutUint16(b[off:], nw)
				d.Add16(old, nw)
			case 2:
				d.Put32(b[off:], rng.Uint32())
			default:
				d.Put16(b[off:], uint16(rng.Uint32()))
			}
		}
		if got, want := d.Apply(csum), ^Checksum(b, 0); got != want {
			t.Fatalf("case %d: ChecksumDelta.Apply(%#04x) = %#04x, want %#04x", i, csum, got, want)
		}
	}
}

// TestUpdateTCPSequence rewrites seq and ack of real segments the way the
// translator does and checks the result against a full recomputation.
func TestUpdateTCPSequence(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	var p Packet
	for range 2000 {
		b := genPacket(rng)
		if r := Parse(b, &p); r != OK {
			t.Fatalf("Parse = %v", r)
		}
		tc := p.TCP
		d := rng.Uint32()
		var cd ChecksumDelta
		cd.Shift32(tc[TCPSeqNumOffset:], d)
		cd.Shift32(tc[TCPAckNumOffset:], -d)
		c := cd.Apply(tc.Checksum())
		tc.SetChecksum(c)
		if !p.VerifyTCPChecksum() {
			t.Fatalf("checksum %#04x after incremental update does not verify", c)
		}
		p.SetTCPChecksum()
		if got := tc.Checksum(); got != c {
			t.Fatalf("incremental checksum %#04x, full recomputation %#04x", c, got)
		}
	}
}
