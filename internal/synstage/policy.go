package synstage

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/synwall/synwall/internal/policy"
)

// portRange is one guarded port range and the service behind it.
type portRange struct {
	Lo, Hi uint16
	Svc    *policy.Service
}

// prefixPorts is what a services-trie entry holds: every port range an
// address of Prefix resolves to, whichever prefix of the policy names it.
type prefixPorts struct {
	Prefix netip.Prefix
	Ranges []portRange // sorted by Lo, disjoint
}

// servicePrefixes flattens the policy's services into one entry per
// distinct prefix, for a longest-prefix-match trie.
//
// Policy.LookupIP tries the prefixes that contain an address longest first
// and takes the first whose port ranges hold the port, so a port that the
// longest prefix does not guard falls back to shorter ones. A trie returns
// only the longest match, so each entry here carries its own ranges and,
// for the ports they leave free, the ranges of every shorter prefix that
// contains it, longest first. Adjacent ranges of one service are merged.
func servicePrefixes(p *policy.Policy) []prefixPorts {
	own := map[netip.Prefix][]portRange{}
	for _, s := range p.Services {
		ports := s.Ports
		if len(ports) == 0 {
			ports = []policy.PortRange{{Lo: s.PortLo, Hi: s.PortHi}}
		}
		for _, pf := range s.Prefixes {
			pf = pf.Masked()
			for _, r := range ports {
				own[pf] = append(own[pf], portRange{r.Lo, r.Hi, s})
			}
		}
	}
	// Longest first, so that each prefix's ancestors come after it.
	all := make([]netip.Prefix, 0, len(own))
	for pf := range own {
		all = append(all, pf)
	}
	slices.SortFunc(all, func(a, b netip.Prefix) int {
		if c := cmp.Compare(b.Bits(), a.Bits()); c != 0 {
			return c
		}
		return a.Addr().Compare(b.Addr())
	})
	out := make([]prefixPorts, 0, len(all))
	for i, pf := range all {
		var rs []portRange
		for _, q := range all[i:] {
			if q.Addr().Is4() != pf.Addr().Is4() || q.Bits() > pf.Bits() || !q.Contains(pf.Addr()) {
				continue
			}
			for _, r := range own[q] {
				rs = addUncovered(rs, r)
			}
		}
		out = append(out, prefixPorts{Prefix: pf, Ranges: mergeRanges(rs)})
	}
	return out
}

// addUncovered adds the ports of r that no range of rs covers, as ranges of
// r's service, and returns rs sorted by Lo.
func addUncovered(rs []portRange, r portRange) []portRange {
	slices.SortFunc(rs, func(a, b portRange) int { return cmp.Compare(a.Lo, b.Lo) })
	lo := uint32(r.Lo)
	n := len(rs)
	for _, c := range rs[:n] {
		if lo > uint32(r.Hi) {
			break
		}
		if uint32(c.Hi) < lo {
			continue
		}
		if uint32(c.Lo) > lo {
			hi := min(uint32(c.Lo)-1, uint32(r.Hi))
			rs = append(rs, portRange{uint16(lo), uint16(hi), r.Svc})
		}
		lo = max(lo, uint32(c.Hi)+1)
	}
	if lo <= uint32(r.Hi) {
		rs = append(rs, portRange{uint16(lo), r.Hi, r.Svc})
	}
	slices.SortFunc(rs, func(a, b portRange) int { return cmp.Compare(a.Lo, b.Lo) })
	return rs
}

// mergeRanges joins adjacent ranges of one service.
func mergeRanges(rs []portRange) []portRange {
	if len(rs) == 0 {
		return rs
	}
	m := rs[:1]
	for _, r := range rs[1:] {
		last := &m[len(m)-1]
		if last.Svc == r.Svc && uint32(last.Hi)+1 == uint32(r.Lo) {
			last.Hi = r.Hi
			continue
		}
		m = append(m, r)
	}
	return m
}

// lookupPrefixes is the BPF program's service lookup over the output of
// servicePrefixes: the longest prefix that contains addr, then its ranges.
// It is the model the tests hold against Policy.LookupIP.
func lookupPrefixes(ps []prefixPorts, addr netip.Addr, port uint16) *policy.Service {
	best := -1
	for i, pp := range ps {
		if pp.Prefix.Contains(addr) && (best < 0 || pp.Prefix.Bits() > ps[best].Prefix.Bits()) {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	for _, r := range ps[best].Ranges {
		if r.Lo <= port && port <= r.Hi {
			return r.Svc
		}
	}
	return nil
}
