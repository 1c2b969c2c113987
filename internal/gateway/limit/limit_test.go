package limit

import (
	"errors"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const sec = int64(time.Second)

// count runs allow at a steady offered rate (offered per second) for d
// simulated nanoseconds and returns how many were allowed.
func count(allow func(now int64) bool, start int64, offered int, d int64) int {
	step := sec / int64(offered)
	n := 0
	for now := start; now < start+d; now += step {
		if allow(now) {
			n++
		}
	}
	return n
}

func TestBucketRate(t *testing.T) {
	tests := []struct {
		rate    float64
		burst   uint32
		offered int
		seconds int64
	}{
		{100, 20, 10000, 10},
		{1000, 1, 100000, 10},
		{200000, 50000, 1000000, 3},
		{1000.0 / 60, 5, 1000, 60},
		{3, 3, 1000, 100},
	}
	for _, tt := range tests {
		b, err := NewBucket(tt.rate, tt.burst)
		if err != nil {
			t.Fatal(err)
		}
		start := int64(1_700_000_000) * sec
		got := count(b.Allow, start, tt.offered, tt.seconds*sec)
		want := tt.rate*float64(tt.seconds) + float64(tt.burst)
		if math.Abs(float64(got)-want) > 0.02*want {
			t.Errorf("Bucket(%v/s, burst %d) allowed %d in %ds at %d/s offered, want %v ±2%%", tt.rate, tt.burst, got, tt.seconds, tt.offered, want)
		}
	}
}

func TestBucketBurst(t *testing.T) {
	b, err := NewBucket(100, 20)
	if err != nil {
		t.Fatal(err)
	}
	now := int64(5 * sec)
	n := 0
	for range 100 {
		if b.Allow(now) {
			n++
		}
	}
	if n != 20 {
		t.Errorf("Bucket(100/s, 20) allowed %d at one instant, want 20", n)
	}
	// 10 ms later exactly one token has come back.
	if !b.Allow(now + 10*int64(time.Millisecond)) {
		t.Errorf("Allow(now+10ms) = false, want true (one token refilled)")
	}
	if b.Allow(now + 10*int64(time.Millisecond)) {
		t.Errorf("second Allow(now+10ms) = true, want false")
	}
	// After a long idle time the bucket is full again, not fuller.
	later := now + 3600*sec
	n = 0
	for range 100 {
		if b.Allow(later) {
			n++
		}
	}
	if n != 20 {
		t.Errorf("after an hour idle, allowed %d at one instant, want 20", n)
	}
}

func TestBucketSetLimit(t *testing.T) {
	b, _ := NewBucket(10, 1)
	if err := b.SetLimit(1000, 50); err != nil {
		t.Fatal(err)
	}
	got := count(b.Allow, sec, 100000, sec)
	if got < 1000 || got > 1060 {
		t.Errorf("after SetLimit(1000, 50): allowed %d in 1s, want about 1050", got)
	}
}

func TestBadLimits(t *testing.T) {
	tests := []struct {
		rate  float64
		burst uint32
		want  error
	}{
		{0, 1, ErrRate}, {-1, 1, ErrRate}, {math.NaN(), 1, ErrRate}, {2e9, 1, ErrRate}, {math.Inf(1), 1, ErrRate},
		{1, 0, ErrBurst},
	}
	for _, tt := range tests {
		if _, err := NewBucket(tt.rate, tt.burst); !errors.Is(err, tt.want) {
			t.Errorf("NewBucket(%v, %d) error = %v, want %v", tt.rate, tt.burst, err, tt.want)
		}
		if _, err := NewPerSource(16, tt.rate, tt.burst, 32, 64); !errors.Is(err, tt.want) {
			t.Errorf("NewPerSource(16, %v, %d, 32, 64) error = %v, want %v", tt.rate, tt.burst, err, tt.want)
		}
	}
	for _, c := range []struct{ slots, p4, p6 int }{{0, 32, 64}, {16, 15, 64}, {16, 33, 64}, {16, 32, 47}, {16, 32, 129}} {
		if _, err := NewPerSource(c.slots, 1, 1, c.p4, c.p6); err == nil {
			t.Errorf("NewPerSource(%d, 1, 1, %d, %d) error = nil, want an error", c.slots, c.p4, c.p6)
		}
	}
}

func v4(a, b, c, d byte) [16]byte { return [16]byte{a, b, c, d} }

func v6(last byte, sub byte) [16]byte {
	return [16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 3, 0, sub, 0, 0, 0, 0, 0, 0, 0, last}
}

func TestPerSourceRate(t *testing.T) {
	s, err := NewPerSource(1024, 100, 20, 32, 64)
	if err != nil {
		t.Fatal(err)
	}
	src := v4(198, 18, 1, 10)
	got := count(func(now int64) bool { return s.Allow(src, false, now) }, sec, 10000, 10*sec)
	if want := 1020.0; math.Abs(float64(got)-want) > 0.02*want {
		t.Errorf("PerSource(100/s, 20) allowed %d in 10s, want %v ±2%%", got, want)
	}
}

// drain takes tokens from src's bucket at now until it refuses; it returns
// how many it got.
func drain(s *PerSource, src [16]byte, isV6 bool, now int64) int {
	n := 0
	for s.Allow(src, isV6, now) {
		n++
		if n > 1e6 {
			break
		}
	}
	return n
}

func TestPerSourcePrefixes(t *testing.T) {
	now := 10 * sec
	tests := []struct {
		name       string
		p4, p6     int
		a, b       [16]byte
		isV6       bool
		wantShared bool
	}{
		{"v4 /32 different hosts", 32, 64, v4(198, 18, 1, 1), v4(198, 18, 1, 2), false, false},
		{"v4 /24 same /24", 24, 64, v4(198, 18, 1, 1), v4(198, 18, 1, 200), false, true},
		{"v4 /24 other /24", 24, 64, v4(198, 18, 1, 1), v4(198, 18, 2, 1), false, false},
		{"v4 /16 same /16", 16, 64, v4(198, 18, 1, 1), v4(198, 18, 250, 9), false, true},
		{"v4 /30 same /30", 30, 64, v4(198, 18, 1, 4), v4(198, 18, 1, 7), false, true},
		{"v4 /30 next /30", 30, 64, v4(198, 18, 1, 4), v4(198, 18, 1, 8), false, false},
		{"v6 /64 same /64", 32, 64, v6(1, 0), v6(99, 0), true, true},
		{"v6 /64 other /64", 32, 64, v6(1, 0), v6(1, 1), true, false},
		{"v6 /128 different hosts", 32, 128, v6(1, 0), v6(2, 0), true, false},
		{"v6 /48 other /64 same /48", 32, 48, v6(1, 0), v6(1, 7), true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewPerSource(1<<16, 10, 5, tt.p4, tt.p6)
			if err != nil {
				t.Fatal(err)
			}
			if got := drain(s, tt.a, tt.isV6, now); got != 5 {
				t.Fatalf("drain(a) = %d, want 5", got)
			}
			got := drain(s, tt.b, tt.isV6, now)
			if shared := got == 0; shared != tt.wantShared {
				t.Errorf("after draining a, b got %d tokens; shared = %t, want %t", got, shared, tt.wantShared)
			}
		})
	}
}

func TestPerSourceFamiliesDistinct(t *testing.T) {
	s, _ := NewPerSource(1<<16, 10, 5, 32, 128)
	var a [16]byte // 0.0.0.0 and :: must not share a bucket
	if got := drain(s, a, false, sec); got != 5 {
		t.Fatalf("drain(0.0.0.0) = %d, want 5", got)
	}
	if got := drain(s, a, true, sec); got != 5 {
		t.Errorf("drain(::) after draining 0.0.0.0 = %d, want 5", got)
	}
	// IPv4 ignores the bytes after the address.
	b := v4(198, 18, 0, 1)
	drain(s, b, false, sec)
	b[9] = 7
	if got := drain(s, b, false, sec); got != 0 {
		t.Errorf("drain(IPv4 with junk after the address) = %d, want 0 (same bucket)", got)
	}
}

// TestPerSourceFixedMemory: a million distinct sources neither grow the
// table nor allocate, and a source seen again later is not locked out.
func TestPerSourceFixedMemory(t *testing.T) {
	s, err := NewPerSource(1<<12, 100, 10, 32, 64)
	if err != nil {
		t.Fatal(err)
	}
	slots := s.Slots()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	now := sec
	for i := range 1_000_000 {
		src := v4(198, 18|byte(i>>16)&1, byte(i>>8), byte(i))
		if i&1 == 1 {
			src = v6(byte(i), byte(i>>8))
			src[6] = byte(i >> 16)
		}
		s.Allow(src, i&1 == 1, now)
		now += 1000
	}
	runtime.ReadMemStats(&after)
	if s.Slots() != slots {
		t.Errorf("Slots() = %d after 1e6 sources, want %d", s.Slots(), slots)
	}
	if d := after.Mallocs - before.Mallocs; d > 1000 {
		t.Errorf("1e6 Allow calls made %d heap allocations, want ~0", d)
	}
	// A victim drained earlier and evicted by the flood gets a full bucket.
	victim := v4(198, 19, 200, 1)
	drain(s, victim, false, now)
	for i := range 100_000 {
		s.Allow(v4(198, 18, byte(i>>8), byte(i)), false, now)
	}
	if got := drain(s, victim, false, now); got != 0 && got != 10 {
		t.Errorf("victim after flood got %d tokens, want 0 (kept) or 10 (evicted, full)", got)
	}
}

func TestNoAllocs(t *testing.T) {
	s, _ := NewPerSource(1<<10, 100, 10, 24, 64)
	b, _ := NewBucket(100, 10)
	src := v4(198, 18, 1, 1)
	now := sec
	allocs := testing.AllocsPerRun(1000, func() {
		now += 1000
		src[3]++
		s.Allow(src, false, now)
		s.Allow(v6(src[3], 1), true, now)
		b.Allow(now)
	})
	if allocs != 0 {
		t.Errorf("Allow allocates %v times per run, want 0", allocs)
	}
}

// TestConcurrent hammers one Bucket and one PerSource from several
// goroutines (run with -race) and checks the total admitted stays exact.
func TestConcurrent(t *testing.T) {
	b, _ := NewBucket(1000, 100)
	s, _ := NewPerSource(64, 1000, 100, 32, 64)
	var nb, ns atomic.Int64
	var wg sync.WaitGroup
	now := 100 * sec
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5000 {
				if b.Allow(now) {
					nb.Add(1)
				}
				if s.Allow(v4(198, 18, 0, 1), false, now) {
					ns.Add(1)
				}
				s.Allow(v4(198, 18, byte(g), byte(i)), false, now)
			}
		}()
	}
	wg.Wait()
	if nb.Load() != 100 {
		t.Errorf("Bucket admitted %d at one instant from 4 goroutines, want 100", nb.Load())
	}
	if n := ns.Load(); n < 100 {
		t.Errorf("PerSource admitted %d for one source, want at least 100", n)
	}
}

func BenchmarkBucket(b *testing.B) {
	bk, _ := NewBucket(1e6, 1000)
	b.ReportAllocs()
	now := sec
	for b.Loop() {
		now += 500
		bk.Allow(now)
	}
}

func BenchmarkBucketParallel(b *testing.B) {
	bk, _ := NewBucket(1e6, 1000)
	b.ReportAllocs()
	var clock atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			bk.Allow(clock.Add(500))
		}
	})
}

func BenchmarkPerSource(b *testing.B) {
	for _, bc := range []struct {
		name    string
		sources int
		isV6    bool
	}{{"v4/sources=1", 1, false}, {"v4/sources=1M", 1 << 20, false}, {"v6/sources=1M", 1 << 20, true}} {
		b.Run(bc.name, func(b *testing.B) {
			s, _ := NewPerSource(1<<16, 100, 200, 24, 64)
			srcs := make([][16]byte, 4096)
			for i := range srcs {
				x := i * 7919 % bc.sources
				if bc.isV6 {
					srcs[i] = v6(byte(x), byte(x>>8))
					srcs[i][5] = byte(x >> 16)
				} else {
					srcs[i] = v4(198, 18|byte(x>>16)&1, byte(x>>8), byte(x))
				}
			}
			b.ReportAllocs()
			now := sec
			i := 0
			for b.Loop() {
				now += 100
				s.Allow(srcs[i&4095], bc.isV6, now)
				i++
			}
		})
	}
}

// TestPerSourceSpread: consecutive prefixes, as a sweep of one range
// sends, spread over the slots like random ones (about 1-1/e of the slots
// used when there are as many prefixes as slots), for both families.
func TestPerSourceSpread(t *testing.T) {
	for _, isV6 := range []bool{false, true} {
		s, err := NewPerSource(1<<12, 10, 5, 32, 64)
		if err != nil {
			t.Fatal(err)
		}
		for i := range s.Slots() {
			src := v4(198, 18, byte(i>>8), byte(i))
			if isV6 {
				src = v6(0, byte(i)) // consecutive /64s
				src[6] = byte(i >> 8)
			}
			s.Allow(src, isV6, sec)
		}
		used := 0
		for i := range s.slots {
			if s.slots[i].k0 != 0 {
				used++
			}
		}
		if min := s.Slots() * 55 / 100; used < min {
			t.Errorf("v6 %t: %d sources took %d of %d slots, want at least %d", isV6, s.Slots(), used, s.Slots(), min)
		}
	}
}
