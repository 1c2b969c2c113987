package policy

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrNoProbeTarget is returned by ProbeTargets for a service with no
// address or no port to probe.
var ErrNoProbeTarget = errors.New("policy: service has no address or port to probe")

// ProbeTargets returns one probe target per address family of s, IPv4
// first: the first prefix of each family, at the lowest guarded port. A
// service that guards IPv4 and IPv6 servers thus learns both MSS4 and MSS6.
//
// A single-host prefix (/32, /128) is probed at its address. For a wider
// prefix there is no way to know which addresses hold a server, so the
// prefix's first usable host is probed (the network address + 1; for a /31
// or /127 point-to-point prefix, RFC 3021 and RFC 6164, its first address).
// Operators who want a particular backend probed should list it first as a
// single host.
func ProbeTargets(s *Service) ([]netip.AddrPort, error) {
	if s == nil {
		return nil, ErrNoProbeTarget
	}
	port, ok := probePort(s)
	if !ok {
		return nil, ErrNoProbeTarget
	}
	var out []netip.AddrPort
	for _, want4 := range []bool{true, false} {
		for _, pf := range s.Prefixes {
			if pf.Addr().Is4() != want4 {
				continue
			}
			if a, ok := ProbeAddr(pf); ok {
				out = append(out, netip.AddrPortFrom(a, port))
			}
			break
		}
	}
	if len(out) == 0 {
		return nil, ErrNoProbeTarget
	}
	return out, nil
}

// ProbeAddr returns the address probed for prefix pf (see ProbeTargets), or
// false for an invalid prefix.
func ProbeAddr(pf netip.Prefix) (netip.Addr, bool) {
	if !pf.IsValid() {
		return netip.Addr{}, false
	}
	pf = pf.Masked()
	a := pf.Addr()
	if pf.Bits() >= a.BitLen()-1 {
		return a, true
	}
	return a.Next(), true
}

func probePort(s *Service) (uint16, bool) {
	if len(s.Ports) > 0 {
		lo := s.Ports[0].Lo
		for _, r := range s.Ports[1:] {
			lo = min(lo, r.Lo)
		}
		return lo, lo != 0
	}
	return s.PortLo, s.PortLo != 0
}

// Learned is what a probe of a backend found in its SYN-ACK.
type Learned struct {
	IPv6       bool   // the probe went over IPv6: MSS is the IPv6 MSS
	MSS        uint16 // MSS the server advertised; 0 when unknown
	WScale     int8   // the server's window scale; NoWScale when it offered none
	SACK       bool   // the server permitted SACK (RFC 2018)
	Timestamps bool   // the server agreed to timestamps (RFC 7323 §3)
	// ECN is the server's answer to an ECN setup SYN (RFC 3168 §6.1.1). It
	// is used only when ECNKnown: a probe that did not ask for ECN learns
	// nothing about it.
	ECN, ECNKnown bool
	Window        uint16 // the SYN-ACK's window field; 0 when unknown
}

// Learn returns a with what l found replacing the advertised options; what
// l does not know (a zero MSS or Window, ECN without ECNKnown, the MSS of the
// other address family) keeps a's value. MSS and WScale are clamped into the
// ranges a policy allows. Discover is kept.
func (a Advertise) Learn(l Learned) Advertise {
	if l.MSS != 0 {
		if l.IPv6 {
			a.MSS6 = max(l.MSS, MinMSS6)
		} else {
			a.MSS4 = max(l.MSS, MinMSS4)
		}
	}
	switch {
	case l.WScale < 0:
		a.WScale = NoWScale
	default:
		a.WScale = min(l.WScale, MaxWScale)
	}
	a.SACK = l.SACK
	a.Timestamps = l.Timestamps
	if l.ECNKnown {
		a.ECN = l.ECN
	}
	if l.Window != 0 {
		a.Window = l.Window
	}
	return a
}

// WithAdvertise returns a new validated policy equal to p except that the
// service named name advertises a. p is not changed. See WithAdvertises.
func (p *Policy) WithAdvertise(name string, a Advertise) (*Policy, error) {
	return p.WithAdvertises(map[string]Advertise{name: a})
}

// WithAdvertises returns a new validated policy equal to p except that each
// service named in m advertises m[name]. p is immutable and may be in use by
// running workers: it is never changed, and the new policy shares no mutable
// state with it (every service is copied). An unknown name or an Advertise
// that does not validate is an error, and no policy is returned.
func (p *Policy) WithAdvertises(m map[string]Advertise) (*Policy, error) {
	if p == nil {
		return nil, errors.New("policy: WithAdvertise on a nil policy")
	}
	known := make(map[string]bool, len(p.Services))
	for _, s := range p.Services {
		known[s.Name] = true
	}
	var errs []error
	for name := range m {
		if !known[name] {
			errs = append(errs, &Error{File: p.fileName(), Path: "services", Msg: fmt.Sprintf("no service named %q", name)})
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	q := &Policy{
		Tables:       p.Tables,
		Cookies:      p.Cookies,
		Limits:       p.Limits,
		Allow:        p.Allow,
		Deny:         p.Deny,
		InvalidFlags: p.InvalidFlags,
		Queue:        p.Queue,
		Name:         p.Name,
		Services:     make([]*Service, len(p.Services)),
	}
	for i, s := range p.Services {
		c := *s // build clones the slices of its copy
		if a, ok := m[s.Name]; ok {
			c.Advertise = a
		}
		q.Services[i] = &c
	}
	b := &builder{file: p.fileName()}
	return b.build(q)
}

// fileName is the file p came from, for error messages, or "".
func (p *Policy) fileName() string {
	if p.Name == "default" {
		return ""
	}
	return p.Name
}
