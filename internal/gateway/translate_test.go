package gateway

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/synwall/synwall/internal/gateway/header"
)

// TestCsumAcc: changing several fields and fixing the checksum once gives a
// valid checksum, as a full recomputation does.
func TestCsumAcc(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var src, dst [16]byte
	for i := 0; i < 20000; i++ {
		seg := make([]byte, 20+rng.IntN(60))
		for j := range seg {
			seg[j] = byte(rng.Uint32())
		}
		if i%7 == 0 {
			clear(seg[4:12]) // zero fields
		}
		binary.BigEndian.PutUint32(src[:], rng.Uint32())
		binary.BigEndian.PutUint32(dst[:], rng.Uint32())
		header.SetTCPChecksum(false, &src, &dst, header.TCP(seg))
		var c csumAcc
		for _, off := range []int{4, 8, 12 + 4*rng.IntN(2)} {
			old := binary.BigEndian.Uint32(seg[off:])
			nw := rng.Uint32()
			if i%5 == 0 {
				nw = ^old
			}
			binary.BigEndian.PutUint32(seg[off:], nw)
			c.add32(old, nw)
		}
		oldW := binary.BigEndian.Uint16(seg[14:])
		newW := uint16(rng.Uint32())
		binary.BigEndian.PutUint16(seg[14:], newW)
		c.add16(oldW, newW)
		tcp := header.TCP(seg)
		tcp.SetChecksum(c.apply(tcp.Checksum()))
		if !header.VerifyTCPChecksum(false, &src, &dst, tcp) {
			t.Fatalf("case %d: checksum invalid after incremental update", i)
		}
	}
}

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
