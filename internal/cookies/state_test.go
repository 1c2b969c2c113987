package cookies

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestKeysRoundTrip: a jar built from another's saved keys accepts every
// cookie the other made before, and makes the same ones after.
func TestKeysRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"random", Config{Period: testPeriod, Rand: chacha(7)}},
		{"shared secret", Config{Period: testPeriod, Secret: testSecret}},
		{"default period", Config{Rand: chacha(8)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old, err := New(tc.cfg, t0)
			if err != nil {
				t.Fatal(err)
			}
			b, err := old.Keys().AppendBinary(nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != KeysLen {
				t.Fatalf("len(AppendBinary) = %d, want %d", len(b), KeysLen)
			}
			var k Keys
			if err := k.UnmarshalBinary(b); err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			if diff := cmp.Diff(old.Keys(), k); diff != "" {
				t.Fatalf("keys changed in a round trip (-old +new):\n%s", diff)
			}
			cfg := tc.cfg
			cfg.Rand = chacha(99) // a fresh process would draw other keys
			restart := t0.Add(3 * time.Second)
			jar, err := NewFromKeys(cfg, k, restart)
			if err != nil {
				t.Fatalf("NewFromKeys: %v", err)
			}
			fresh, err := New(cfg, restart)
			if err != nil {
				t.Fatal(err)
			}
			rnd := seeded(3)
			for i := range 200 {
				tup := randTuple(rnd, i%2 == 1)
				isn := rnd.Uint32()
				made := t0.Add(-time.Duration(rnd.IntN(int(testPeriod))))
				c := old.ISN(&tup, isn, 1460, made)
				if _, err := jar.Check(&tup, isn, c, restart); err != nil {
					t.Fatalf("Check(cookie made before the restart) = %v, want accepted", err)
				}
				if tc.cfg.Secret == nil {
					if _, err := fresh.Check(&tup, isn, c, restart); err == nil && i < 8 {
						// A jar with fresh random keys must refuse (a few
						// chance matches in 2^28 are possible; none in 8).
						t.Fatalf("a jar with fresh keys accepted an old cookie")
					}
				}
				if got, want := jar.ISN(&tup, isn, 1460, restart), old.ISN(&tup, isn, 1460, restart); got != want {
					t.Fatalf("ISN after restart = %#x, want %#x as before", got, want)
				}
			}
		})
	}
}

func randTuple(r interface {
	Uint32() uint32
	Uint64() uint64
}, v6 bool) Tuple {
	var t Tuple
	for i := 0; i < 16; i += 4 {
		x := r.Uint32()
		t.Src[i], t.Src[i+1], t.Src[i+2], t.Src[i+3] = byte(x), byte(x>>8), byte(x>>16), byte(x>>24)
		y := r.Uint32()
		t.Dst[i], t.Dst[i+1], t.Dst[i+2], t.Dst[i+3] = byte(y), byte(y>>8), byte(y>>16), byte(y>>24)
	}
	if !v6 {
		clear(t.Src[4:])
		clear(t.Dst[4:])
	}
	p := r.Uint32()
	t.SrcPort, t.DstPort, t.V6 = uint16(p), uint16(p>>16), v6
	return t
}

func TestNewFromKeysRefuses(t *testing.T) {
	random, err := New(Config{Period: testPeriod, Rand: chacha(1)}, t0)
	if err != nil {
		t.Fatal(err)
	}
	shared, err := New(Config{Period: testPeriod, Secret: testSecret}, t0)
	if err != nil {
		t.Fatal(err)
	}
	other := []byte("another-secret-of-at-least-16-bytes")
	for _, tc := range []struct {
		name string
		cfg  Config
		keys Keys
		want error
	}{
		{"other period", Config{Period: 2 * testPeriod}, random.Keys(), ErrKeysPeriod},
		{"other secret", Config{Period: testPeriod, Secret: other}, shared.Keys(), ErrKeysSecret},
		{"random keys into a secret jar", Config{Period: testPeriod, Secret: testSecret}, random.Keys(), ErrKeysSecret},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, err := NewFromKeys(tc.cfg, tc.keys, t0)
			if !errors.Is(err, tc.want) {
				t.Fatalf("NewFromKeys = %v, %v; want error %v", j, err, tc.want)
			}
		})
	}
	if _, err := NewFromKeys(Config{Period: testPeriod, Secret: []byte("short")}, shared.Keys(), t0); err == nil {
		t.Errorf("NewFromKeys with a short secret = nil error, want refused")
	}
}

func TestKeysUnmarshalRefuses(t *testing.T) {
	good, _ := Keys{Period: testPeriod, Master: [16]byte{1, 2, 3}}.AppendBinary(nil)
	neg := append([]byte(nil), good...)
	neg[7] = 0x80 // negative period
	zero := append([]byte(nil), good...)
	clear(zero[:8])
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrKeysLength},
		{"short", good[:KeysLen-1], ErrKeysLength},
		{"long", append(append([]byte(nil), good...), 0), ErrKeysLength},
		{"negative period", neg, ErrKeysMalformed},
		{"zero period", zero, ErrKeysMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var k Keys
			if err := k.UnmarshalBinary(tc.in); !errors.Is(err, tc.want) {
				t.Errorf("UnmarshalBinary(%x) = %v, want %v", tc.in, err, tc.want)
			}
		})
	}
}

// TestCounterKey checks that CounterKey hands out the key ISN and Check use
// (cached counters and derived ones alike) and Counter the counter of now.
func TestCounterKey(t *testing.T) {
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	j, err := New(Config{Period: 30 * time.Second, Secret: []byte("0123456789abcdef0123")}, now)
	if err != nil {
		t.Fatal(err)
	}
	cur := uint64(now.Unix() / 30)
	if got := j.Counter(now); got != cur {
		t.Errorf("Counter(%v) = %d, want %d", now, got, cur)
	}
	for _, c := range []uint64{cur - 100, cur - 2, cur - 1, cur, cur + 1, cur + 100} {
		k := counterKey(j.master, c)
		if got, want := j.CounterKey(c), (CounterKey{k.k0, k.k1}); got != want {
			t.Errorf("CounterKey(%d) = %x, want %x", c, got, want)
		}
	}
	// The cookie of a SYN is the MAC under the key of the counter of now.
	tup := Tuple{SrcPort: 40000, DstPort: 80}
	copy(tup.Src[:], []byte{198, 18, 0, 5})
	copy(tup.Dst[:], []byte{198, 18, 1, 10})
	k := j.CounterKey(cur)
	idx := mssIndex(false, 1460)
	if got, want := j.ISN(&tup, 12345, 1460, now), makeCookie(cookieMAC(key{k.K0, k.K1}, &tup, 12345, idx, cur), idx, cur); got != want {
		t.Errorf("ISN = %#x, want %#x from CounterKey", got, want)
	}
}
