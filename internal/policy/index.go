package policy

import (
	"encoding/binary"
	"net/netip"
	"slices"
)

// prefixIndex maps addresses to the values of the prefixes that contain
// them. It keeps one hash map per prefix length in use, longest first, so a
// lookup costs one map probe per distinct length (usually one or two).
type prefixIndex struct {
	v4 []level4
	v6 []level6
	// f4 and f6 rule most addresses that no prefix contains out before
	// any table is probed (addrFilter).
	f4, f6 addrFilter
}

// addrFilter is a one-hash Bloom filter of the top bits of every prefix of
// one family: as many bits as the shortest prefix has (at most the first 64
// of an IPv6 address). Any address a prefix contains shares those bits with
// it, so a clear filter bit proves that no prefix contains the address; a
// set one proves nothing. Most server-to-client packets carry a client
// address as destination, which the filter turns away in a few
// instructions. The seed keeps the bits of chosen addresses from being
// predicted.
type addrFilter struct {
	bits  [filterWords]uint64
	shift uint8 // of the address word: its top bits are the key
	seed  uint64
}

const filterWords = 64 // 4096 bits, a few times the prefixes of a large policy

func (f *addrFilter) index(w uint64) uint64 {
	return ((w>>f.shift ^ f.seed) * mul1) >> (64 - 12)
}

func (f *addrFilter) set(w uint64) {
	i := f.index(w)
	f.bits[i/64] |= 1 << (i % 64)
}

// mayHave reports whether some prefix may contain the address whose first
// word (IPv4: the address in the low 32 bits; IPv6: the first 64 bits) is w.
func (f *addrFilter) mayHave(w uint64) bool {
	i := f.index(w)
	return f.bits[i/64]&(1<<(i%64)) != 0
}

type level4 struct {
	bits int
	mask uint32
	m    map[uint32]int32 // used while building
	t    table4           // used by lookups, built by freeze
}

type key6 struct{ hi, lo uint64 }

type level6 struct {
	bits int
	mask key6
	m    map[key6]int32
	t    table6
}

// table4 and table6 are frozen open-addressing hash tables (linear probing,
// load at most 1/2, val -1 marks an empty slot). They are built once from
// the policy, so their probe lengths are fixed by the operator's prefixes,
// not by the addresses looked up; the seed keeps them from being predicted.
type table4 struct {
	e     []entry4
	shift uint8
	seed  uint64
}

type entry4 struct {
	key uint32
	val int32
}

type table6 struct {
	e     []entry6
	shift uint8
	seed  uint64
}

type entry6 struct {
	key key6
	val int32
}

const mul1, mul2 = 0x9e3779b97f4a7c15, 0xc2b2ae3d27d4eb4f

func tableSize(n int) (size int, shift uint8) {
	size, bits := 8, 3
	for size < 2*n {
		size, bits = size*2, bits+1
	}
	return size, uint8(64 - bits)
}

func (t *table4) slot(k uint32) uint64 { return ((uint64(k) ^ t.seed) * mul1) >> t.shift }

func (t *table6) slot(k key6) uint64 {
	return (((k.hi^t.seed)*mul1 ^ k.lo) * mul2) >> t.shift
}

func (t *table4) get(k uint32) (int32, bool) {
	m := uint64(len(t.e) - 1)
	for i := t.slot(k); ; i = (i + 1) & m {
		e := &t.e[i]
		if e.val < 0 {
			return -1, false
		}
		if e.key == k {
			return e.val, true
		}
	}
}

func (t *table6) get(k key6) (int32, bool) {
	m := uint64(len(t.e) - 1)
	for i := t.slot(k); ; i = (i + 1) & m {
		e := &t.e[i]
		if e.val < 0 {
			return -1, false
		}
		if e.key == k {
			return e.val, true
		}
	}
}

// freeze builds the lookup tables and the filters from the build maps.
func (x *prefixIndex) freeze(seed uint64) {
	x.f4 = addrFilter{shift: 32, seed: seed}
	if n := len(x.v4); n > 0 {
		x.f4.shift = uint8(32 - x.v4[n-1].bits) // levels are longest first
		for i := range x.v4 {
			for k := range x.v4[i].m {
				x.f4.set(uint64(k))
			}
		}
	}
	x.f6 = addrFilter{shift: 64, seed: seed}
	if n := len(x.v6); n > 0 {
		x.f6.shift = uint8(64 - min(x.v6[n-1].bits, 64))
		for i := range x.v6 {
			for k := range x.v6[i].m {
				x.f6.set(k.hi)
			}
		}
	}
	for i := range x.v4 {
		l := &x.v4[i]
		size, shift := tableSize(len(l.m))
		l.t = table4{e: make([]entry4, size), shift: shift, seed: seed}
		for j := range l.t.e {
			l.t.e[j].val = -1
		}
		m := uint64(size - 1)
		for k, v := range l.m {
			j := l.t.slot(k)
			for l.t.e[j].val >= 0 {
				j = (j + 1) & m
			}
			l.t.e[j] = entry4{k, v}
		}
	}
	for i := range x.v6 {
		l := &x.v6[i]
		size, shift := tableSize(len(l.m))
		l.t = table6{e: make([]entry6, size), shift: shift, seed: seed}
		for j := range l.t.e {
			l.t.e[j].val = -1
		}
		m := uint64(size - 1)
		for k, v := range l.m {
			j := l.t.slot(k)
			for l.t.e[j].val >= 0 {
				j = (j + 1) & m
			}
			l.t.e[j] = entry6{k, v}
		}
	}
}

func mask4(bits int) uint32 {
	if bits == 0 {
		return 0
	}
	return ^uint32(0) << (32 - bits)
}

func mask6(bits int) key6 {
	var k key6
	switch {
	case bits == 0:
	case bits <= 64:
		k.hi = ^uint64(0) << (64 - bits)
	default:
		k.hi = ^uint64(0)
		k.lo = ^uint64(0) << (128 - bits)
	}
	return k
}

func addr4(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func addr6(a netip.Addr) key6 {
	b := a.As16()
	return key6{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// add maps p (masked) to v. It reports false when p is already mapped.
func (x *prefixIndex) add(p netip.Prefix, v int32) bool {
	bits := p.Bits()
	if p.Addr().Is4() {
		i := slices.IndexFunc(x.v4, func(l level4) bool { return l.bits == bits })
		if i < 0 {
			x.v4 = append(x.v4, level4{bits: bits, mask: mask4(bits), m: map[uint32]int32{}})
			slices.SortFunc(x.v4, func(a, b level4) int { return b.bits - a.bits })
			i = slices.IndexFunc(x.v4, func(l level4) bool { return l.bits == bits })
		}
		l := &x.v4[i]
		k := addr4(p.Addr()) & l.mask
		if _, dup := l.m[k]; dup {
			return false
		}
		l.m[k] = v
		return true
	}
	i := slices.IndexFunc(x.v6, func(l level6) bool { return l.bits == bits })
	if i < 0 {
		x.v6 = append(x.v6, level6{bits: bits, mask: mask6(bits), m: map[key6]int32{}})
		slices.SortFunc(x.v6, func(a, b level6) int { return b.bits - a.bits })
		i = slices.IndexFunc(x.v6, func(l level6) bool { return l.bits == bits })
	}
	l := &x.v6[i]
	a := addr6(p.Addr())
	k := key6{a.hi & l.mask.hi, a.lo & l.mask.lo}
	if _, dup := l.m[k]; dup {
		return false
	}
	l.m[k] = v
	return true
}

// get returns the value stored for exactly p, or -1.
func (x *prefixIndex) get(p netip.Prefix) int32 {
	bits := p.Bits()
	if p.Addr().Is4() {
		for i := range x.v4 {
			if l := &x.v4[i]; l.bits == bits {
				if v, ok := l.m[addr4(p.Addr())&l.mask]; ok {
					return v
				}
			}
		}
		return -1
	}
	for i := range x.v6 {
		if l := &x.v6[i]; l.bits == bits {
			a := addr6(p.Addr())
			if v, ok := l.m[key6{a.hi & l.mask.hi, a.lo & l.mask.lo}]; ok {
				return v
			}
		}
	}
	return -1
}

// contains reports whether any prefix in x contains a.
func (x *prefixIndex) contains(a netip.Addr) bool {
	if a.Is4() || a.Is4In6() {
		k := addr4(a.Unmap())
		for i := range x.v4 {
			l := &x.v4[i]
			if _, ok := l.t.get(k & l.mask); ok {
				return true
			}
		}
		return false
	}
	if !a.IsValid() {
		return false
	}
	k := addr6(a)
	for i := range x.v6 {
		l := &x.v6[i]
		if _, ok := l.t.get(key6{k.hi & l.mask.hi, k.lo & l.mask.lo}); ok {
			return true
		}
	}
	return false
}

// portEntry is one port range of one service under one prefix.
type portEntry struct {
	r   PortRange
	svc *Service
}

// findPort returns the service whose range in list (sorted by Lo, disjoint)
// holds port, or nil.
func findPort(list []portEntry, port uint16) *Service {
	if len(list) <= 8 {
		for i := range list {
			if port <= list[i].r.Hi {
				if list[i].r.Lo <= port {
					return list[i].svc
				}
				return nil
			}
		}
		return nil
	}
	// Binary search for the first entry with Lo > port.
	lo, hi := 0, len(list)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if list[m].r.Lo <= port {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo > 0 && port <= list[lo-1].r.Hi {
		return list[lo-1].svc
	}
	return nil
}

// LookupIP returns the service guarding addr:port, or nil; the longest
// matching prefix wins. addr is held as bytes in network order, as packet
// headers carry it: 4 bytes for IPv4, 16 for IPv6 (IPv4-mapped IPv6
// addresses are looked up as IPv4, RFC 4291 §2.5.5.2). Any other length,
// and a nil Policy, guard nothing. It does not allocate.
func (p *Policy) LookupIP(addr []byte, port uint16) *Service {
	if p == nil {
		return nil
	}
	switch len(addr) {
	case 4:
		return p.lookup4(binary.BigEndian.Uint32(addr), port)
	case 16:
		k := key6{binary.BigEndian.Uint64(addr[:8]), binary.BigEndian.Uint64(addr[8:])}
		if k.hi == 0 && k.lo>>32 == 0xffff { // ::ffff:0:0/96 (RFC 4291 §2.5.5.2)
			return p.lookup4(uint32(k.lo), port)
		}
		return p.lookup6(k, port)
	}
	return nil
}

// lookup4 finds the service for an IPv4 address, longest prefix first.
func (p *Policy) lookup4(k uint32, port uint16) *Service {
	x := &p.services
	if !x.f4.mayHave(uint64(k)) {
		return nil
	}
	for i := range x.v4 {
		l := &x.v4[i]
		if v, ok := l.t.get(k & l.mask); ok {
			if s := findPort(p.ports[v], port); s != nil {
				return s
			}
		}
	}
	return nil
}

// lookup6 finds the service for an IPv6 address, longest prefix first.
func (p *Policy) lookup6(k key6, port uint16) *Service {
	x := &p.services
	if !x.f6.mayHave(k.hi) {
		return nil
	}
	for i := range x.v6 {
		l := &x.v6[i]
		if v, ok := l.t.get(key6{k.hi & l.mask.hi, k.lo & l.mask.lo}); ok {
			if s := findPort(p.ports[v], port); s != nil {
				return s
			}
		}
	}
	return nil
}
