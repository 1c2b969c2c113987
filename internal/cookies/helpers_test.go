package cookies

import (
	"math/rand/v2"
	"net/netip"
	"time"
)

// testPeriod is the period of the Jars in the tests.
const testPeriod = 30 * time.Second

// periodStart returns the start of counter k for testPeriod.
func periodStart(k int64) time.Time {
	return time.Unix(0, 0).Add(time.Duration(k) * testPeriod)
}

// t0 is the start of a counter period well after the epoch.
var t0 = periodStart(56_789_012)

// testSecret is a shared secret of the tests.
var testSecret = []byte("0123456789abcdef-synwall-test-secret")

// seeded returns a deterministic random source.
func seeded(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// chacha returns a deterministic byte stream for Config.Rand.
func chacha(seed byte) *rand.ChaCha8 {
	var s [32]byte
	s[0] = seed
	return rand.NewChaCha8(s)
}

// tuple4 and tuple6 build tuples from address strings.
func tuple4(src string, sport uint16, dst string, dport uint16) Tuple {
	var t Tuple
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(t.Src[:], s[:])
	copy(t.Dst[:], d[:])
	t.SrcPort, t.DstPort = sport, dport
	return t
}

func tuple6(src string, sport uint16, dst string, dport uint16) Tuple {
	return Tuple{
		Src: netip.MustParseAddr(src).As16(), Dst: netip.MustParseAddr(dst).As16(),
		SrcPort: sport, DstPort: dport, V6: true,
	}
}

// randomTuple returns a tuple with random addresses (in the documentation
// ranges' byte layout, but any value would do) and ports.
func randomTuple(r *rand.Rand, v6 bool) Tuple {
	var t Tuple
	if v6 {
		for i := range t.Src {
			t.Src[i], t.Dst[i] = byte(r.Uint32()), byte(r.Uint32())
		}
		t.V6 = true
	} else {
		for i := 0; i < 4; i++ {
			t.Src[i], t.Dst[i] = byte(r.Uint32()), byte(r.Uint32())
		}
	}
	t.SrcPort, t.DstPort = uint16(r.Uint32()), uint16(r.Uint32())
	return t
}

// mustJar returns a Jar made at now from cfg with testPeriod unless set.
func mustJar(tb interface {
	Helper()
	Fatalf(string, ...any)
}, cfg Config, now time.Time) *Jar {
	tb.Helper()
	if cfg.Period == 0 {
		cfg.Period = testPeriod
	}
	j, err := New(cfg, now)
	if err != nil {
		tb.Fatalf("New(%+v) = %v", cfg, err)
	}
	return j
}
