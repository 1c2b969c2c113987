package synflood

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/netip"
)

// BenchNet and BenchNet6 are the only networks the generator sends from
// and to: the benchmarking range of RFC 2544 (RFC 5735 §3, 198.18.0.0/15)
// and the documentation prefix of IPv6 (RFC 3849, 2001:db8::/32).
var (
	BenchNet  = netip.MustParsePrefix("198.18.0.0/15")
	BenchNet6 = netip.MustParsePrefix("2001:db8::/32")
)

// Sizes of a generated SYN: IP header, TCP header with 20 bytes of
// options, nothing else.
const (
	ipLen      = 20 // IPv4 header (RFC 791 §3.1), no options
	ip6Len     = 40 // IPv6 header (RFC 8200 §3), no extension headers
	tcpLen     = 40
	PacketLen  = ipLen + tcpLen  // an IPv4 SYN
	PacketLen6 = ip6Len + tcpLen // an IPv6 SYN
	// MaxPacketLen is the larger of the two: the size of a send buffer.
	MaxPacketLen = PacketLen6
)

// Options of every SYN, as a Linux client sends them (RFC 9293 §3.7.1 MSS,
// RFC 2018 SACK-permitted, RFC 7323 timestamps and window scale).
const (
	synMSS    = 1460
	synMSS6   = 1440
	synWScale = 7
	synWindow = 64240
	synTTL    = 64
)

var (
	errFamily    = errors.New("sources and destination are of different address families")
	errOutside   = fmt.Errorf("not inside %v or %v (benchmarking and documentation addresses)", BenchNet, BenchNet6)
	errPortZero  = errors.New("port 0")
	errNotMasked = errors.New("has host bits set")
	errDistinct  = errors.New("more distinct sources than the prefix has (address, port) pairs")
)

// Source ports of generated SYNs: 1024-65535, the range of MinPort and
// NumPorts.
const (
	MinPort  = 1024
	NumPorts = 65536 - MinPort
)

// maxDistinctHostBits bounds the host bits that distinct sources use: an
// IPv6 prefix offers far more addresses than a run can send, so distinct
// sources take at most 2^32 addresses of it (the low 32 bits).
const maxDistinctHostBits = 32

// hostBits is how many host bits of p distinct sources use.
func hostBits(p netip.Prefix) int {
	return min(p.Addr().BitLen()-p.Bits(), maxDistinctHostBits)
}

// MaxDistinct is how many distinct (address, port) sources a prefix
// offers: every address (at most 2^32 of an IPv6 prefix) with every port
// from MinPort up.
func MaxDistinct(p netip.Prefix) uint64 {
	return (uint64(1) << hostBits(p)) * NumPorts
}

// benchNetOf is the allowed network of a's family.
func benchNetOf(a netip.Addr) netip.Prefix {
	if a.Is4() {
		return BenchNet
	}
	return BenchNet6
}

// ValidateSources checks that p is an IPv4 prefix wholly inside BenchNet or
// an IPv6 prefix wholly inside BenchNet6.
func ValidateSources(p netip.Prefix) error {
	if !p.IsValid() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
		return fmt.Errorf("sources %v: %w", p, errOutside)
	}
	n := benchNetOf(p.Addr())
	switch {
	case p.Masked() != p:
		return fmt.Errorf("sources %v: %w (did you mean %v?)", p, errNotMasked, p.Masked())
	case p.Bits() < n.Bits() || !n.Contains(p.Addr()):
		return fmt.Errorf("sources %v: %w", p, errOutside)
	}
	return nil
}

// ValidateDestination checks that dst is an address inside BenchNet or
// BenchNet6 with a port.
func ValidateDestination(dst netip.AddrPort) error {
	a := dst.Addr()
	switch {
	case !a.IsValid() || a.Is4In6() || a.Zone() != "" || !benchNetOf(a).Contains(a):
		return fmt.Errorf("destination %v: %w", dst, errOutside)
	case dst.Port() == 0:
		return fmt.Errorf("destination %v: %w", dst, errPortZero)
	}
	return nil
}

// Builder writes spoofed SYNs from random addresses of one prefix to one
// destination, IPv4 or IPv6. It is not safe for concurrent use.
type Builder struct {
	v6 bool
	// The prefix's first address and its host bits, as two 64-bit halves
	// (an IPv4 address in the low 32 bits of lo).
	baseHi, baseLo uint64
	maskHi, maskLo uint64
	distinctMask   uint32 // the host bits distinct sources use
	dst            [16]byte
	dstSum         uint32 // the destination's part of the pseudo-header sum
	dport          uint16
	rng            *rand.PCG
	tmpl           [MaxPacketLen]byte
	n              int // packet length

	// distinct > 0 cycles through exactly that many (address, port)
	// sources; next is the index of the next one.
	distinct, next uint64
	mult           uint32 // odd: scatters consecutive indices over the prefix
}

// NewBuilder validates sources and dst and returns a builder whose random
// choices follow seed.
func NewBuilder(sources netip.Prefix, dst netip.AddrPort, seed uint64) (*Builder, error) {
	if err := ValidateSources(sources); err != nil {
		return nil, err
	}
	if err := ValidateDestination(dst); err != nil {
		return nil, err
	}
	if sources.Addr().Is4() != dst.Addr().Is4() {
		return nil, fmt.Errorf("sources %v, destination %v: %w", sources, dst, errFamily)
	}
	b := &Builder{
		v6:    sources.Addr().Is6(),
		dport: dst.Port(),
		rng:   rand.NewPCG(seed, seed^0x9e3779b97f4a7c15),
		mult:  0x9e3779b1,
	}
	host := sources.Addr().BitLen() - sources.Bits()
	b.distinctMask = uint32(uint64(1)<<hostBits(sources) - 1)
	if b.v6 {
		a := sources.Addr().As16()
		b.baseHi, b.baseLo = binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])
		b.maskLo = lowBits(min(host, 64))
		b.maskHi = lowBits(max(host-64, 0))
		b.dst = dst.Addr().As16()
		b.dstSum = sum16(b.dst[:])
		b.n = PacketLen6
	} else {
		a := sources.Addr().As4()
		b.baseLo = uint64(binary.BigEndian.Uint32(a[:]))
		b.maskLo = lowBits(host)
		d := dst.Addr().As4()
		copy(b.dst[:], d[:])
		b.dstSum = sum16(d[:])
		b.n = PacketLen
	}
	t := b.tmpl[:]
	var tc []byte
	if b.v6 {
		// IPv6 header (RFC 8200 §3): version 6, payload length, next
		// header TCP, hop limit.
		t[0] = 0x60
		binary.BigEndian.PutUint16(t[4:], tcpLen)
		t[6] = 6
		t[7] = synTTL
		copy(t[24:40], b.dst[:])
		tc = t[ip6Len:]
	} else {
		// IPv4 header (RFC 791 §3.1): version 4, IHL 5, DF, TTL, protocol TCP.
		t[0] = 0x45
		binary.BigEndian.PutUint16(t[2:], PacketLen)
		binary.BigEndian.PutUint16(t[6:], 0x4000)
		t[8] = synTTL
		t[9] = 6
		copy(t[16:20], b.dst[:4])
		tc = t[ipLen:]
	}
	// TCP header (RFC 9293 §3.1): data offset 10 words, SYN.
	binary.BigEndian.PutUint16(tc[2:], b.dport)
	tc[12] = (tcpLen / 4) << 4
	tc[13] = 0x02
	binary.BigEndian.PutUint16(tc[14:], synWindow)
	// Options in the order Linux sends them: MSS, SACK-permitted,
	// timestamps, NOP, window scale.
	o := tc[20:]
	o[0], o[1] = 2, 4
	if b.v6 {
		binary.BigEndian.PutUint16(o[2:], synMSS6)
	} else {
		binary.BigEndian.PutUint16(o[2:], synMSS)
	}
	o[4], o[5] = 4, 2
	o[6], o[7] = 8, 10 // TSval at o[8:12], TSecr 0 in a SYN
	o[16] = 1
	o[17], o[18], o[19] = 3, 3, synWScale
	return b, nil
}

// Len is the length of the packets Fill writes: PacketLen or PacketLen6.
func (b *Builder) Len() int { return b.n }

// IPv6 reports whether the builder writes IPv6 packets.
func (b *Builder) IPv6() bool { return b.v6 }

// lowBits returns a mask of the n low bits, 0 <= n <= 64.
func lowBits(n int) uint64 {
	if n >= 64 {
		return ^uint64(0)
	}
	return uint64(1)<<n - 1
}

// sum16 adds b as 16-bit big-endian words (len(b) even).
func sum16(b []byte) uint32 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	return s
}

// SetDistinct makes the builder draw its sources from exactly n distinct
// (address, port) pairs of the prefix, in a fixed order that visits each
// of them once before any repeats: n packets carry n different sources.
// Index i is address (i mod hosts) scattered over the prefix by an odd
// multiplier (a bijection of the host bits) with port MinPort + i/hosts,
// so that n up to the prefix's size gives n different addresses and a
// larger n adds ports; an IPv6 prefix lends at most its 2^32 lowest
// addresses. n = 0 returns to a random source per packet. It refuses n
// above MaxDistinct of the prefix.
func (b *Builder) SetDistinct(n uint64) error {
	hosts := uint64(b.distinctMask) + 1
	if n > hosts*NumPorts {
		return fmt.Errorf("distinct %d: %w (%d)", n, errDistinct, hosts*NumPorts)
	}
	b.distinct, b.next = n, 0
	return nil
}

// source returns the next source address (two 64-bit halves) and port; r1
// and r2 are the packet's random bits, used when the sources are random.
func (b *Builder) source(r1, r2 uint64) (hi, lo uint64, port uint16) {
	if b.distinct == 0 {
		return b.baseHi | r2&b.maskHi, b.baseLo | (r1^r2<<32)&b.maskLo, uint16(MinPort + (r1>>32)%NumPorts)
	}
	i := b.next
	if b.next++; b.next == b.distinct {
		b.next = 0
	}
	// The prefix holds a power of two of addresses: index i is address
	// i mod hosts and port i / hosts.
	h, port := uint32(i)&b.distinctMask, uint16(MinPort+i>>bits.OnesCount32(b.distinctMask))
	return b.baseHi, b.baseLo | uint64((h*b.mult)&b.distinctMask), port
}

// Fill writes one SYN into p, which must hold Len() bytes, from a random
// source address of the prefix and a random port 1024-65535 (or the next
// of the distinct sources, see SetDistinct), with a random ISN, TSval and
// IP ID (IPv4) or flow label (IPv6, RFC 6437), and valid checksums.
func (b *Builder) Fill(p []byte) {
	p = p[:b.n]
	copy(p, b.tmpl[:b.n])
	r1, r2, r3 := b.rng.Uint64(), b.rng.Uint64(), b.rng.Uint64()
	hi, lo, sport := b.source(r1, r3)
	var tc []byte
	var pseudo uint32
	if b.v6 {
		fl := uint32(r1>>44) & 0xfffff
		p[1], p[2], p[3] = byte(fl>>16), byte(fl>>8), byte(fl)
		binary.BigEndian.PutUint64(p[8:], hi)
		binary.BigEndian.PutUint64(p[16:], lo)
		tc = p[ip6Len:]
		// Pseudo-header (RFC 8200 §8.1): addresses, upper-layer length,
		// next header.
		pseudo = sum16(p[8:24]) + b.dstSum + tcpLen + 6
	} else {
		src := uint32(lo)
		binary.BigEndian.PutUint16(p[4:], uint16(r1>>48)) // IP ID
		binary.BigEndian.PutUint32(p[12:], src)
		binary.BigEndian.PutUint16(p[10:], checksum(p[:ipLen], 0))
		tc = p[ipLen:]
		// Pseudo-header (RFC 9293 §3.1): addresses, protocol, TCP length.
		pseudo = src>>16 + src&0xffff + b.dstSum + 6 + tcpLen
	}
	binary.BigEndian.PutUint16(tc[0:], sport)
	binary.BigEndian.PutUint32(tc[4:], uint32(r2))      // ISN
	binary.BigEndian.PutUint32(tc[28:], uint32(r2>>32)) // TSval
	binary.BigEndian.PutUint16(tc[16:], checksum(tc, pseudo))
}

// checksum is the Internet checksum (RFC 1071) of b, starting from the
// partial sum initial; the checksum field of b must be zero.
func checksum(b []byte, initial uint32) uint16 {
	sum := initial
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
