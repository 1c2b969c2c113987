package header

import (
	"math/rand/v2"
	"testing"
)

func TestZeroAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	pkts := make([][]byte, 64)
	for i := range pkts {
		pkts[i] = genPacket(rng)
	}
	bad := v4(nil, seg(SYN, []byte{OptMSS, 3, 0, 0}, nil))
	var p Packet
	i := 0
	var sink uint16
	tests := map[string]func(){
		"Parse": func() {
			if Parse(pkts[i%len(pkts)], &p) != OK {
				t.Fatal("Parse failed")
			}
			i++
		},
		"Parse malformed": func() { Parse(bad, &p) },
		"CheckFlags": func() {
			if CheckFlags(uint8(i), i%2 == 0) == ReasonInvalid {
				t.Fatal("invalid reason")
			}
			i++
		},
		"Reason.String": func() { _ = Reason(i % int(NumReasons)).String(); i++ },
		"Checksum":      func() { sink += Checksum(pkts[i%len(pkts)], 0); i++ },
		"SetTCPChecksum": func() {
			Parse(pkts[i%len(pkts)], &p)
			p.SetTCPChecksum()
			if !p.VerifyTCPChecksum() {
				t.Fatal("VerifyTCPChecksum failed")
			}
			i++
		},
		"SetIPv4Checksum": func() { SetIPv4Checksum(good4) },
		"ChecksumDelta": func() {
			var d ChecksumDelta
			d.Add32(uint32(i), uint32(i*7))
			d.Add16(uint16(i), uint16(i*3))
			sink = d.Apply(sink)
			i++
		},
		"Peek": func() {
			var f Fixed
			if !Peek(pkts[i%len(pkts)], &f) {
				t.Fatal("Peek failed")
			}
			i++
		},
	}
	for name, f := range tests {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", name, n)
		}
	}
	_ = sink
}
