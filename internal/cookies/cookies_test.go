package cookies

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestMSSTable(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		tab := MSSTable(v6)
		for i := 1; i < len(tab); i++ {
			if tab[i-1] >= tab[i] {
				t.Errorf("MSSTable(%v) = %v, not ascending", v6, tab)
			}
		}
	}
	if diff := cmp.Diff([4]uint16{536, 1300, 1440, 1460}, MSSTable(false)); diff != "" {
		t.Errorf("MSSTable(false) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([4]uint16{1220, 1420, 1440, 8940}, MSSTable(true)); diff != "" {
		t.Errorf("MSSTable(true) (-want +got):\n%s", diff)
	}
}

func TestRoundTrip(t *testing.T) {
	j := mustJar(t, Config{Secret: testSecret}, t0)
	tuples := map[string]Tuple{
		"v4": tuple4("198.18.0.1", 40000, "198.19.0.80", 80),
		"v6": tuple6("2001:db8::1", 40000, "2001:db8:1::80", 443),
	}
	for name, tp := range tuples {
		for _, mss := range MSSTable(tp.V6) {
			for _, isn := range []uint32{0, 1, 0x7fffffff, 0xfffffffe, 0xffffffff, 0x12345678} {
				t.Run(fmt.Sprintf("%s/mss=%d/isn=%#x", name, mss, isn), func(t *testing.T) {
					c := j.ISN(&tp, isn, mss, t0)
					got, err := j.Check(&tp, isn, c, t0)
					if err != nil || got != mss {
						t.Errorf("Check(ISN(%d)) = %d, %v, want %d, nil", mss, got, err, mss)
					}
					if c2 := j.ISN(&tp, isn, mss, t0.Add(testPeriod-1)); c2 != c {
						t.Errorf("ISN later in the same period = %#x, want %#x (a repeated SYN gets the same cookie)", c2, c)
					}
				})
			}
		}
	}
}

func TestMSSRounding(t *testing.T) {
	j := mustJar(t, Config{Secret: testSecret}, t0)
	tests := []struct {
		v6       bool
		mss      uint16
		wantMSS  uint16
		wantNote string
	}{
		{false, 0, 536, "no MSS option"},
		{false, 100, 536, "below every class"},
		{false, 535, 536, "below every class"},
		{false, 536, 536, ""},
		{false, 1299, 536, ""},
		{false, 1300, 1300, ""},
		{false, 1439, 1300, ""},
		{false, 1459, 1440, ""},
		{false, 1460, 1460, ""},
		{false, 8940, 1460, "jumbo on IPv4"},
		{false, 65535, 1460, ""},
		{true, 0, 1220, "no MSS option"},
		{true, 536, 1220, "below every class"},
		{true, 1220, 1220, ""},
		{true, 1419, 1220, ""},
		{true, 1420, 1420, ""},
		{true, 1440, 1440, ""},
		{true, 1460, 1440, ""},
		{true, 8939, 1440, ""},
		{true, 8940, 8940, ""},
		{true, 65535, 8940, ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("v6=%v/%d", tt.v6, tt.mss), func(t *testing.T) {
			tp := tuple4("198.18.5.5", 1234, "198.19.1.1", 22)
			if tt.v6 {
				tp = tuple6("2001:db8::5", 1234, "2001:db8::22", 22)
			}
			c := j.ISN(&tp, 77, tt.mss, t0)
			got, err := j.Check(&tp, 77, c, t0)
			if err != nil || got != tt.wantMSS {
				t.Errorf("Check(ISN(mss %d)) = %d, %v, want %d, nil %s", tt.mss, got, err, tt.wantMSS, tt.wantNote)
			}
		})
	}
}

func TestCounterAges(t *testing.T) {
	tp := tuple4("198.18.0.9", 51000, "198.19.0.1", 443)
	tests := []struct {
		name    string
		made    time.Duration // after t0
		checked time.Duration // after t0
		want    error
	}{
		{"same instant", 0, 0, nil},
		{"end of the same period", 0, testPeriod - 1, nil},
		{"previous period", 0, testPeriod, nil},
		{"end of the previous period", 0, 2*testPeriod - 1, nil},
		{"made at period end, checked next period", testPeriod - 1, testPeriod, nil},
		{"made at period end, two periods later", testPeriod - 1, 2 * testPeriod, ErrExpired},
		{"two periods later", 0, 2 * testPeriod, ErrExpired},
		{"end of two periods later", 0, 3*testPeriod - 1, ErrExpired},
		{"three periods later (key gone)", 0, 3 * testPeriod, ErrInvalid},
		{"ten periods later (key gone)", 0, 10 * testPeriod, ErrInvalid},
		{"from the future: clock moved back 1ns", 0, -1, ErrExpired},
		{"from the future: clock moved back one period", 0, -testPeriod, ErrExpired},
		{"from two periods ahead (key unknown)", 0, -testPeriod - 1, ErrInvalid},
	}
	// Each case runs on three Jars with the same secret: one made when the
	// cookie is checked, one that made the cookie (its keys rotate or lag),
	// and one whose keys have already moved far ahead (keys derived on the
	// stack).
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			made, checked := t0.Add(tt.made), t0.Add(tt.checked)
			maker := mustJar(t, Config{Secret: testSecret}, made)
			c := maker.ISN(&tp, 999, 1460, made)
			jars := map[string]*Jar{
				"fresh": mustJar(t, Config{Secret: testSecret}, checked),
				"maker": maker,
				"ahead": mustJar(t, Config{Secret: testSecret}, t0.Add(50*testPeriod)),
			}
			for name, j := range jars {
				mss, err := j.Check(&tp, 999, c, checked)
				if err != tt.want {
					t.Errorf("%s jar: Check(made %v, checked %v) = %d, %v, want %v", name, tt.made, tt.checked, mss, err, tt.want)
				}
				if err == nil && mss != 1460 {
					t.Errorf("%s jar: Check() mss = %d, want 1460", name, mss)
				}
			}
		})
	}
}

func TestCounterBeforeEpoch(t *testing.T) {
	// Negative Unix times still count in whole periods (floor, not
	// truncation toward zero).
	j := mustJar(t, Config{Secret: testSecret}, time.Unix(0, 0))
	tp := tuple4("198.18.0.1", 1, "198.18.0.2", 2)
	c := j.ISN(&tp, 5, 536, time.Unix(0, -1))
	if _, err := j.Check(&tp, 5, c, time.Unix(0, 0).Add(testPeriod-1)); err != nil {
		t.Errorf("Check one period after the period before the epoch = %v, want nil", err)
	}
	if _, err := j.Check(&tp, 5, c, time.Unix(0, 0).Add(testPeriod)); err != ErrExpired {
		t.Errorf("Check two periods after = %v, want ErrExpired", err)
	}
}

func TestTupleBinding(t *testing.T) {
	j := mustJar(t, Config{Secret: testSecret}, t0)
	bases := []Tuple{
		tuple4("198.18.0.1", 40000, "198.19.0.80", 80),
		tuple6("2001:db8::1", 40000, "2001:db8:1::80", 80),
	}
	const isn = 0xdeadbeef
	for _, base := range bases {
		c := j.ISN(&base, isn, 1440, t0)
		n := 4
		if base.V6 {
			n = 16
		}
		type mut struct {
			name string
			f    func(*Tuple)
		}
		muts := []mut{
			{"sport", func(t *Tuple) { t.SrcPort++ }},
			{"dport", func(t *Tuple) { t.DstPort++ }},
			{"ports swapped", func(t *Tuple) { t.SrcPort, t.DstPort = t.DstPort, t.SrcPort }},
			{"addresses swapped", func(t *Tuple) { t.Src, t.Dst = t.Dst, t.Src }},
			{"family", func(t *Tuple) { t.V6 = !t.V6 }},
		}
		for i := range n {
			muts = append(muts,
				mut{fmt.Sprintf("src[%d]", i), func(t *Tuple) { t.Src[i] ^= 1 }},
				mut{fmt.Sprintf("dst[%d]", i), func(t *Tuple) { t.Dst[i] ^= 0x80 }})
		}
		for _, m := range muts {
			t.Run(fmt.Sprintf("v6=%v/%s", base.V6, m.name), func(t *testing.T) {
				tp := base
				m.f(&tp)
				if mss, err := j.Check(&tp, isn, c, t0); err != ErrInvalid {
					t.Errorf("Check(%+v, cookie of %+v) = %d, %v, want ErrInvalid", tp, base, mss, err)
				}
			})
		}
		for _, d := range []uint32{1, 0x80000000, 0xffffffff, 1 << 24} {
			t.Run(fmt.Sprintf("v6=%v/isn+%#x", base.V6, d), func(t *testing.T) {
				if mss, err := j.Check(&base, isn+d, c, t0); err != ErrInvalid {
					t.Errorf("Check(isn %#x, cookie of isn %#x) = %d, %v, want ErrInvalid", isn+d, uint32(isn), mss, err)
				}
			})
		}
	}
}

func TestBitFlips(t *testing.T) {
	// Every bit of the cookie counts: flipping any one is refused.
	j := mustJar(t, Config{Secret: testSecret}, t0)
	r := seeded(2)
	for i := range 200 {
		tp := randomTuple(r, i%2 == 0)
		isn := r.Uint32()
		c := j.ISN(&tp, isn, uint16(r.Uint32()), t0)
		for b := range 32 {
			if mss, err := j.Check(&tp, isn, c^1<<b, t0); err != ErrInvalid {
				t.Fatalf("Check(%+v, %#x, cookie %#x with bit %d flipped) = %d, %v, want ErrInvalid", tp, isn, c, b, mss, err)
			}
		}
	}
}

func TestSharedSecret(t *testing.T) {
	a := mustJar(t, Config{Secret: testSecret}, t0)
	// Made later and from a copy of the secret: keys depend on the secret
	// and the counter only.
	b := mustJar(t, Config{Secret: []byte(string(testSecret))}, t0.Add(7*testPeriod))
	other := mustJar(t, Config{Secret: []byte("0123456789abcdef-synwall-test-secreT")}, t0)
	rnd1 := mustJar(t, Config{}, t0)
	rnd2 := mustJar(t, Config{}, t0)
	seededA := mustJar(t, Config{Rand: chacha(1)}, t0)
	seededB := mustJar(t, Config{Rand: chacha(1)}, t0)
	seededC := mustJar(t, Config{Rand: chacha(2)}, t0)

	tp := tuple6("2001:db8::77", 33333, "2001:db8::1", 25)
	tests := []struct {
		name       string
		make, chk  *Jar
		wantAccept bool
	}{
		{"same secret", a, b, true},
		{"same secret, other way", b, a, true},
		{"different secret", a, other, false},
		{"secret vs random", a, rnd1, false},
		{"random vs random", rnd1, rnd2, false},
		{"random vs secret", rnd1, a, false},
		{"same Rand stream", seededA, seededB, true},
		{"different Rand stream", seededA, seededC, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, at := range []time.Time{t0, t0.Add(9 * testPeriod)} {
				c := tt.make.ISN(&tp, 4242, 1420, at)
				for _, chkAt := range []time.Time{at, at.Add(testPeriod)} {
					_, err := tt.chk.Check(&tp, 4242, c, chkAt)
					if tt.wantAccept && err != nil {
						t.Errorf("Check at %v of a cookie made at %v = %v, want nil", chkAt, at, err)
					}
					if !tt.wantAccept && err != ErrInvalid {
						t.Errorf("Check at %v of a cookie made at %v = %v, want ErrInvalid", chkAt, at, err)
					}
				}
			}
		})
	}
}

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, errors.New("entropy exhausted") }

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"short secret", Config{Secret: []byte("0123456789abcde")}, "secret is 15 bytes, want at least 16"},
		{"empty secret", Config{Secret: []byte{}}, "secret is 0 bytes"},
		{"negative period", Config{Period: -time.Second}, "negative"},
		{"failing Rand", Config{Rand: failReader{}}, "entropy exhausted"},
		{"short Rand", Config{Rand: strings.NewReader("too short")}, io.ErrUnexpectedEOF.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := New(tt.cfg, t0)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New(%+v) = %v, %v, want error containing %q", tt.cfg, j, err, tt.want)
			}
		})
	}
	if j, err := New(Config{Secret: testSecret[:16]}, t0); err != nil {
		t.Errorf("New(16-byte secret) = %v, want nil", err)
	} else if j.Period() != DefaultPeriod {
		t.Errorf("New(zero Period).Period() = %v, want %v", j.Period(), DefaultPeriod)
	}
}

func TestCustomPeriod(t *testing.T) {
	j, err := New(Config{Secret: testSecret, Period: 15 * time.Second}, t0)
	if err != nil {
		t.Fatal(err)
	}
	tp := tuple4("198.18.0.1", 1, "198.18.0.2", 2)
	c := j.ISN(&tp, 1, 1460, t0)
	if _, err := j.Check(&tp, 1, c, t0.Add(29*time.Second)); err != nil {
		t.Errorf("Check after 29s with a 15s period = %v, want nil", err)
	}
	if _, err := j.Check(&tp, 1, c, t0.Add(30*time.Second)); err != ErrExpired {
		t.Errorf("Check after 30s with a 15s period = %v, want ErrExpired", err)
	}
}

// poissonBound returns the smallest k with P(X > k) < p for X ~ Poisson(lambda).
func poissonBound(lambda, p float64) int {
	term := math.Exp(-lambda)
	cdf := term
	k := 0
	for 1-cdf >= p {
		k++
		term *= lambda / float64(k)
		cdf += term
	}
	return k
}

func TestForgery(t *testing.T) {
	// A blind attacker sends ACKs with random (sequence, acknowledgment)
	// numbers for one tuple. By design (doc.go) each is accepted with
	// probability 2^-29: half of the counter codes are live, then 28 MAC bits
	// must match.
	const n = 1_000_000
	j := mustJar(t, Config{Secret: testSecret}, t0)
	tp := tuple4("198.18.66.6", 4444, "198.19.0.1", 80)
	r := seeded(3)
	var accepted, expired, live int
	for range n {
		isn, c := r.Uint32(), r.Uint32()
		switch _, err := j.Check(&tp, isn, c, t0); err {
		case nil:
			accepted++
		case ErrExpired:
			expired++
		}
		// The counter code of a random cookie names a live counter half
		// the time; the MAC is what refuses those.
		if age := (j.counter(t0) - uint64((c^c>>macBits)&counterMask)) & counterMask; age <= 1 {
			live++
		}
	}
	lambda := n * math.Pow(2, -29)
	bound := poissonBound(lambda, 1e-12)
	t.Logf("%d random ACKs: %d accepted, %d expired (designed probability 2^-29 each: expect %.4f; bound %d)", n, accepted, expired, lambda, bound)
	if accepted > bound {
		t.Errorf("%d of %d random ACKs accepted, want at most %d (expected %.4f at 2^-29)", accepted, n, bound, lambda)
	}
	if expired > bound {
		t.Errorf("%d of %d random ACKs expired, want at most %d (expected %.4f at 2^-29)", expired, n, bound, lambda)
	}
	// Binomial(n, 1/2) within 6 standard deviations.
	if sd := math.Sqrt(n * 0.25); math.Abs(float64(live)-n/2) > 6*sd {
		t.Errorf("%d of %d random cookies name a live counter, want about %d", live, n, n/2)
	}
}

func TestCookieBitsBalanced(t *testing.T) {
	// Every bit of the ISN is set about half the time over many tuples: no
	// bit of the 28-bit MAC is stuck, which would shrink the forgery space,
	// and the low bits are scrambled (RFC 6528 asks for unpredictable ISNs).
	const n = 40_000
	j := mustJar(t, Config{Secret: testSecret}, t0)
	r := seeded(4)
	var ones [32]int
	for i := range n {
		tp := randomTuple(r, i%2 == 1)
		c := j.ISN(&tp, r.Uint32(), 1460, t0)
		for b := range 32 {
			ones[b] += int(c >> b & 1)
		}
	}
	sd := math.Sqrt(n * 0.25)
	for b, k := range ones {
		if math.Abs(float64(k)-n/2) > 6*sd {
			t.Errorf("bit %d of the cookie set %d times in %d, want about %d", b, k, n, n/2)
		}
	}
}

func TestTimestampOptions(t *testing.T) {
	for ws := range 16 {
		for _, sack := range []bool{false, true} {
			for _, ecn := range []bool{false, true} {
				o := TSOptions{WScale: uint8(ws), SACK: sack, ECN: ecn}
				for _, ts := range []uint32{0, 0xffffffff, 0x12345678, 63, 64} {
					enc := EncodeTS(ts, o)
					if enc&^(1<<TSBits-1) != ts&^(1<<TSBits-1) {
						t.Errorf("EncodeTS(%#x, %+v) = %#x, changed bits above the low %d", ts, o, enc, TSBits)
					}
					got, ok := DecodeTS(enc)
					if !ok || got != o {
						t.Errorf("DecodeTS(EncodeTS(%#x, %+v)) = %+v, %v, want %+v, true", ts, o, got, ok, o)
					}
				}
			}
		}
	}
	// Shift counts above 14 are treated as 14 (RFC 7323 §2.3).
	for _, ws := range []uint8{16, 20, 255} {
		got, ok := DecodeTS(EncodeTS(0, TSOptions{WScale: ws, SACK: true}))
		if want := (TSOptions{WScale: MaxWScale, SACK: true}); !ok || got != want {
			t.Errorf("DecodeTS(EncodeTS(WScale %d)) = %+v, %v, want %+v, true", ws, got, ok, want)
		}
	}
	// Layout as Linux's cookie_init_timestamp.
	if got, want := EncodeTS(0xffffffc0, TSOptions{WScale: 7, SACK: true, ECN: true}), uint32(0xffffffc0|7|1<<4|1<<5); got != want {
		t.Errorf("EncodeTS(wscale 7, SACK, ECN) = %#x, want %#x", got, want)
	}
	if got, _ := DecodeTS(0xf); got.WScale != NoWScale {
		t.Errorf("DecodeTS(0xf).WScale = %d, want NoWScale", got.WScale)
	}
}

func TestConcurrent(t *testing.T) {
	// Many goroutines make and check cookies while the clock moves across
	// several periods (run with -race).
	j := mustJar(t, Config{Secret: testSecret}, t0)
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := seeded(uint64(100 + g))
			for i := range 3000 {
				now := t0.Add(time.Duration(i) * testPeriod / 300).Add(time.Duration(r.IntN(int(testPeriod))) - testPeriod/2)
				tp := randomTuple(r, i%2 == 0)
				isn := r.Uint32()
				c := j.ISN(&tp, isn, 1440, now)
				if _, err := j.Check(&tp, isn, c, now.Add(testPeriod/2)); err != nil {
					errs <- fmt.Sprintf("goroutine %d: Check(ISN at %v) half a period later = %v, want nil", g, now, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if got, want := j.ks.Load().cur, j.counter(t0.Add(10*testPeriod)); got < want-1 {
		t.Errorf("keyset counter = %d after the clock moved ten periods, want at least %d", got, want-1)
	}
}

func TestZeroAllocs(t *testing.T) {
	j := mustJar(t, Config{Secret: testSecret}, t0)
	ahead := mustJar(t, Config{Secret: testSecret}, t0.Add(100*testPeriod))
	t4 := tuple4("198.18.0.1", 1000, "198.19.0.1", 80)
	t6 := tuple6("2001:db8::1", 1000, "2001:db8::2", 80)
	c4 := j.ISN(&t4, 1, 1460, t0)
	c6 := j.ISN(&t6, 1, 1460, t0)
	var sink uint64
	tests := []struct {
		name string
		f    func()
	}{
		{"ISN v4", func() { sink += uint64(j.ISN(&t4, 1, 1460, t0)) }},
		{"ISN v6", func() { sink += uint64(j.ISN(&t6, 1, 1460, t0)) }},
		{"Check v4", func() { m, _ := j.Check(&t4, 1, c4, t0); sink += uint64(m) }},
		{"Check v6", func() { m, _ := j.Check(&t6, 1, c6, t0); sink += uint64(m) }},
		{"Check invalid", func() { _, err := j.Check(&t4, 2, c4, t0); sink += uint64(len(err.Error())) }},
		{"Check expired", func() { _, err := j.Check(&t4, 1, c4, t0.Add(2*testPeriod)); sink += uint64(len(err.Error())) }},
		{"Check with a lagging clock", func() { m, _ := ahead.Check(&t4, 1, c4, t0); sink += uint64(m) }},
		{"ISN with a lagging clock", func() { sink += uint64(ahead.ISN(&t6, 1, 1460, t0)) }},
		{"EncodeTS/DecodeTS", func() { o, _ := DecodeTS(EncodeTS(5, TSOptions{WScale: 3})); sink += uint64(o.WScale) }},
	}
	for _, tt := range tests {
		if got := testing.AllocsPerRun(1000, tt.f); got != 0 {
			t.Errorf("%s: %v allocations per run, want 0", tt.name, got)
		}
	}
	_ = sink
}
