package header

import (
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestParseFastPaths checks that Parse, with its fast paths for IHL-5 IPv4
// and IPv6 carrying TCP directly, gives the same reason and, on OK, the same
// Packet as the general path, on valid packets and on packets with single
// bytes changed or cut short.
func TestParseFastPaths(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	check := func(b []byte) {
		t.Helper()
		var fast, slow Packet
		rf, rs := Parse(b, &fast), parseAny(b, &slow)
		if rf != rs {
			t.Fatalf("Parse(% x) = %v, general path %v", b, rf, rs)
		}
		if rf != OK {
			return
		}
		if diff := cmp.Diff(slow, fast); diff != "" {
			t.Fatalf("Parse(% x) packet differs from the general path (-general +Parse):\n%s", b, diff)
		}
	}
	for i := 0; i < 1000; i++ {
		b := genPacket(rng)
		check(b)
		// Damage one byte of the headers, then cut the packet short.
		m := append([]byte(nil), b...)
		k := rng.IntN(min(len(m), 100))
		m[k] = byte(rng.Uint32())
		check(m)
		check(m[:rng.IntN(len(m)+1)])
		// Fragments, other protocols and lengths on the fast paths.
		m = append([]byte(nil), b...)
		switch m[0] >> 4 {
		case 4:
			m[6], m[9] = byte(rng.IntN(4)), byte(rng.IntN(8))
			m[2], m[3] = byte(rng.IntN(2)), byte(rng.Uint32())
		case 6:
			m[6] = []byte{ProtocolTCP, IPv6HopByHop, IPv6Fragment, 17}[rng.IntN(4)]
			m[4], m[5] = byte(rng.IntN(2)), byte(rng.Uint32())
		}
		check(m)
	}
}

// linuxSYNOpts returns the options of a SYN as Linux writes them: MSS,
// SACK-permitted (or two NOPs) and timestamps, NOP and window scale.
func linuxSYNOpts(rng *rand.Rand) []byte {
	o := []byte{OptMSS, 4, byte(rng.Uint32()), byte(rng.Uint32()),
		OptSACKPermitted, 2, OptTimestamps, 10, 0, 0, 0, 0, 0, 0, 0, 0,
		OptNOP, OptWindowScale, 3, byte(rng.IntN(20))}
	if rng.IntN(3) == 0 {
		o[4], o[5] = OptNOP, OptNOP
	}
	for i := 8; i < 16; i++ {
		o[i] = byte(rng.Uint32())
	}
	return o
}

// TestParseLinuxSYN checks that the fast path for Linux SYN options gives
// what the general loop gives, on the layout itself and on the layout with
// any one byte changed (which the fast path must leave to the loop unless
// the result is the same).
func TestParseLinuxSYN(t *testing.T) {
	rng := rand.New(rand.NewPCG(43, 44))
	check := func(opts []byte) {
		t.Helper()
		s := TCP(seg(SYN, opts, nil))
		var fast, slow Options
		rf, rs := ParseOptions(s, &fast), parseOptions(s[:s.DataOffset()], &slow)
		if rf != rs {
			t.Fatalf("ParseOptions(% x) = %v, general loop %v", opts, rf, rs)
		}
		if rf == OK && fast != slow {
			t.Fatalf("ParseOptions(% x) = %+v, general loop %+v", opts, fast, slow)
		}
	}
	hits := 0
	for i := 0; i < 2000; i++ {
		opts := linuxSYNOpts(rng)
		var o Options
		if parseLinuxSYN(seg(SYN, opts, nil), &o) {
			hits++
		}
		check(opts)
		m := append([]byte(nil), opts...)
		m[rng.IntN(len(m))] = byte(rng.Uint32())
		check(m)
	}
	if hits != 2000 {
		t.Errorf("the fast path took %d of 2000 Linux SYNs, want all", hits)
	}
}

// TestParseTSSACK checks the fast path for NOP, NOP, timestamps, NOP, NOP,
// SACK against the general loop, for 1 to 3 blocks, as laid out and with
// any one byte changed.
func TestParseTSSACK(t *testing.T) {
	rng := rand.New(rand.NewPCG(45, 46))
	hits := 0
	for i := 0; i < 3000; i++ {
		n := 1 + i%3
		opts := []byte{OptNOP, OptNOP, OptTimestamps, 10, 0, 0, 0, 0, 0, 0, 0, 0, OptNOP, OptNOP, OptSACK, byte(2 + 8*n)}
		for j := 4; j < 12; j++ {
			opts[j] = byte(rng.Uint32())
		}
		for j := 0; j < 8*n; j++ {
			opts = append(opts, byte(rng.Uint32()))
		}
		var o Options
		if parseTSSACK(TCP(seg(ACK, opts, nil)), &o) {
			hits++
		}
		m := append([]byte(nil), opts...)
		m[rng.IntN(len(m))] = byte(rng.Uint32())
		for _, b := range [][]byte{opts, m} {
			s := TCP(seg(ACK, b, nil))
			var fast, slow Options
			rf, rs := ParseOptions(s, &fast), parseOptions(s[:s.DataOffset()], &slow)
			if rf != rs || (rf == OK && fast != slow) {
				t.Fatalf("ParseOptions(% x) = %v %+v, general loop %v %+v", b, rf, fast, rs, slow)
			}
		}
	}
	if hits != 3000 {
		t.Errorf("the fast path took %d of 3000 segments, want all", hits)
	}
}
