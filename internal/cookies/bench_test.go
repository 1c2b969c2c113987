package cookies

import (
	"testing"
)

// benchTuples returns n varied tuples, IPv4 and IPv6 mixed when v6 is nil.
func benchTuples(n int, v6 *bool) []Tuple {
	r := seeded(42)
	ts := make([]Tuple, n)
	for i := range ts {
		six := i%2 == 1
		if v6 != nil {
			six = *v6
		}
		ts[i] = randomTuple(r, six)
	}
	return ts
}

var benchFamilies = []struct {
	name string
	v6   bool
}{{"v4", false}, {"v6", true}}

func BenchmarkISN(b *testing.B) {
	for _, fam := range benchFamilies {
		b.Run(fam.name, func(b *testing.B) {
			j := mustJar(b, Config{Secret: testSecret}, t0)
			ts := benchTuples(4096, &fam.v6)
			b.ReportAllocs()
			var sink uint32
			i := 0
			for b.Loop() {
				tp := &ts[i&4095]
				sink += j.ISN(tp, uint32(i), 1460, t0)
				i++
			}
			_ = sink
		})
	}
}

func BenchmarkCheck(b *testing.B) {
	for _, fam := range benchFamilies {
		for _, valid := range []bool{true, false} {
			name := fam.name + "/valid"
			if !valid {
				name = fam.name + "/forged"
			}
			b.Run(name, func(b *testing.B) {
				j := mustJar(b, Config{Secret: testSecret}, t0)
				ts := benchTuples(4096, &fam.v6)
				cs := make([]uint32, len(ts))
				r := seeded(43)
				for i := range ts {
					if valid {
						cs[i] = j.ISN(&ts[i], uint32(i), uint16(r.Uint32()), t0)
					} else {
						cs[i] = r.Uint32()
					}
				}
				now := t0.Add(testPeriod) // a period later: the previous counter's key
				b.ReportAllocs()
				var ok int
				i := 0
				for b.Loop() {
					k := i & 4095
					if _, err := j.Check(&ts[k], uint32(k), cs[k], now); err == nil {
						ok++
					}
					i++
				}
				if valid && ok != i {
					b.Fatalf("%d of %d valid cookies accepted", ok, i)
				}
				b.ReportMetric(float64(ok)/float64(i), "accepted/op")
			})
		}
	}
}

// BenchmarkRotate measures making the keys of a new counter, which happens
// once per period.
func BenchmarkRotate(b *testing.B) {
	j := mustJar(b, Config{Secret: testSecret}, t0)
	b.ReportAllocs()
	for b.Loop() {
		_ = j.newKeyset(12345)
	}
}
