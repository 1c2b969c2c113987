package observe

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
)

// hhKey is a service (address and port) or a source prefix (masked address,
// port 0), as words so that comparing is cheap.
type hhKey struct {
	a0, a1 uint64
	port   uint16
	v6     bool
}

func (k hhKey) addr() netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[0:], k.a0)
	binary.BigEndian.PutUint64(b[8:], k.a1)
	if k.v6 {
		return netip.AddrFrom16(b)
	}
	return netip.AddrFrom4([4]byte(b[:4]))
}

// topK is a Space-Saving table of fixed size: each monitored key has a
// count that overestimates its true count by at most err. A key not in a
// full table replaces the one with the smallest count and inherits that
// count as its error, so every key whose true count exceeds N/k (N items,
// k entries) is in the table. Its arrays are allocated once.
type topK struct {
	keys   []hhKey
	counts []uint64
	errs   []uint64
	n      int
}

func newTopK(k int) topK {
	return topK{keys: make([]hhKey, k), counts: make([]uint64, k), errs: make([]uint64, k)}
}

// add counts key by.
func (t *topK) add(key hhKey, by uint64) {
	for i := range t.n {
		if t.keys[i] == key {
			t.counts[i] += by
			return
		}
	}
	if t.n < len(t.keys) {
		t.keys[t.n], t.counts[t.n], t.errs[t.n] = key, by, 0
		t.n++
		return
	}
	m := 0
	for i := 1; i < t.n; i++ {
		if t.counts[i] < t.counts[m] {
			m = i
		}
	}
	t.keys[m], t.errs[m] = key, t.counts[m]
	t.counts[m] += by
}

// decay halves every count and error and forgets keys whose count reaches
// zero, so that the table follows what is happening now.
func (t *topK) decay() {
	j := 0
	for i := range t.n {
		c := t.counts[i] / 2
		if c == 0 {
			continue
		}
		t.keys[j], t.counts[j], t.errs[j] = t.keys[i], c, t.errs[i]/2
		j++
	}
	t.n = j
}

// hhMerge sums the tables of several workers as mergeable Space-Saving
// summaries: counts and error bounds add up, and a key missing from a full
// table may have been counted there up to that table's smallest count, so
// that much is added to its count and its error bound. Counts thus stay
// overestimates, by at most their error bound.
type hhMerge struct {
	keys  map[hhKey][3]uint64 // counts, error bounds, floors of the tables holding the key
	floor uint64              // sum of the smallest counts of the full tables
}

func (m *hhMerge) add(t *topK) {
	if m.keys == nil {
		m.keys = map[hhKey][3]uint64{}
	}
	var least uint64
	if t.n > 0 && t.n == len(t.keys) {
		least = slices.Min(t.counts[:t.n])
		m.floor += least
	}
	for i := range t.n {
		v := m.keys[t.keys[i]]
		v[0] += t.counts[i]
		v[1] += t.errs[i]
		v[2] += least
		m.keys[t.keys[i]] = v
	}
}

// top returns the n largest entries, largest first, counts scaled by scale.
func (m *hhMerge) top(n int, scale uint64) []hhEntry {
	out := make([]hhEntry, 0, len(m.keys))
	for k, v := range m.keys {
		missed := m.floor - v[2] // from the full tables without k
		out = append(out, hhEntry{key: k, count: (v[0] + missed) * scale, err: (v[1] + missed) * scale})
	}
	slices.SortFunc(out, func(a, b hhEntry) int {
		if c := cmp.Compare(b.count, a.count); c != 0 {
			return c
		}
		return a.key.addr().Compare(b.key.addr())
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

type hhEntry struct {
	key        hhKey
	count, err uint64
}
