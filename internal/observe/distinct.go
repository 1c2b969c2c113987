package observe

import (
	"math"
	"math/bits"
)

// DistinctBits is the size of the bitmap of each distinct-source counter.
// Linear counting with m bits estimates n distinct items with a standard
// error of sqrt(m(e^t-t-1))/n, t = n/m: about 1% at n = m/2, 1.5% at
// n = m, 4% at n = 5m. Past about m·ln m (≈160,000) every bit is set and the
// estimate is only a lower bound (Estimate.Saturated).
const DistinctBits = 1 << 14

// bitmap is a linear-counting sketch: one bit per hash value.
type bitmap [DistinctBits / 64]uint64

func (b *bitmap) add(h uint64) {
	i := h & (DistinctBits - 1)
	b[i>>6] |= 1 << (i & 63)
}

func (b *bitmap) or(o *bitmap) {
	for i := range b {
		b[i] |= o[i]
	}
}

// Estimate is a linear-counting estimate of a number of distinct items.
type Estimate struct {
	Value     uint64 `json:"value"`
	Saturated bool   `json:"saturated,omitempty"` // every bit set: the true value is larger
}

// estimate returns -m·ln(z/m), z the number of zero bits.
func (b *bitmap) estimate() Estimate {
	ones := 0
	for _, w := range b {
		ones += bits.OnesCount64(w)
	}
	const m = DistinctBits
	z := m - ones
	if z == 0 {
		return Estimate{Value: uint64(math.Round(m * math.Log(m))), Saturated: true}
	}
	return Estimate{Value: uint64(math.Round(-m * math.Log(float64(z)/m)))}
}
