package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/netip"
)

// BenchNet is the only network the generator sends from and to: the
// benchmarking range of RFC 2544 (RFC 5735 §3, 198.18.0.0/15).
var BenchNet = netip.MustParsePrefix("198.18.0.0/15")

// Sizes of a generated SYN: IPv4 header, TCP header with 20 bytes of
// options, nothing else.
const (
	ipLen     = 20
	tcpLen    = 40
	PacketLen = ipLen + tcpLen
)

// Options of every SYN, as a Linux client sends them (RFC 9293 §3.7.1 MSS,
// RFC 2018 SACK-permitted, RFC 7323 timestamps and window scale).
const (
	synMSS    = 1460
	synWScale = 7
	synWindow = 64240
	synTTL    = 64
)

var (
	errNotV4     = errors.New("not an IPv4 prefix")
	errOutside   = fmt.Errorf("not inside %v (RFC 2544 benchmarking addresses)", BenchNet)
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

// MaxDistinct is how many distinct (address, port) sources a prefix
// offers: every address with every port from MinPort up.
func MaxDistinct(p netip.Prefix) uint64 {
	return (uint64(1) << (32 - p.Bits())) * NumPorts
}

// ValidateSources checks that p is an IPv4 prefix wholly inside BenchNet.
func ValidateSources(p netip.Prefix) error {
	switch {
	case !p.IsValid() || !p.Addr().Is4():
		return fmt.Errorf("sources %v: %w", p, errNotV4)
	case p.Masked() != p:
		return fmt.Errorf("sources %v: %w (did you mean %v?)", p, errNotMasked, p.Masked())
	case p.Bits() < BenchNet.Bits() || !BenchNet.Contains(p.Addr()):
		return fmt.Errorf("sources %v: %w", p, errOutside)
	}
	return nil
}

// ValidateDestination checks that dst is an IPv4 address inside BenchNet
// with a port.
func ValidateDestination(dst netip.AddrPort) error {
	a := dst.Addr()
	switch {
	case !a.Is4():
		return fmt.Errorf("destination %v: %w", dst, errNotV4)
	case !BenchNet.Contains(a):
		return fmt.Errorf("destination %v: %w", dst, errOutside)
	case dst.Port() == 0:
		return fmt.Errorf("destination %v: %w", dst, errPortZero)
	}
	return nil
}

// Builder writes spoofed SYNs from random addresses of one prefix to one
// destination. It is not safe for concurrent use.
type Builder struct {
	base     uint32 // the prefix's first address
	hostMask uint32 // the host bits of the prefix
	dst      [4]byte
	dport    uint16
	rng      *rand.PCG
	tmpl     [PacketLen]byte

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
	b := &Builder{
		base:     binary.BigEndian.Uint32(sources.Addr().AsSlice()),
		hostMask: uint32(uint64(1)<<(32-sources.Bits()) - 1),
		dst:      dst.Addr().As4(),
		dport:    dst.Port(),
		rng:      rand.NewPCG(seed, seed^0x9e3779b97f4a7c15),
		mult:     0x9e3779b1,
	}
	t := b.tmpl[:]
	// IPv4 header (RFC 791 §3.1): version 4, IHL 5, DF, TTL, protocol TCP.
	t[0] = 0x45
	binary.BigEndian.PutUint16(t[2:], PacketLen)
	binary.BigEndian.PutUint16(t[6:], 0x4000)
	t[8] = synTTL
	t[9] = 6
	copy(t[16:20], b.dst[:])
	// TCP header (RFC 9293 §3.1): data offset 10 words, SYN.
	tc := t[ipLen:]
	binary.BigEndian.PutUint16(tc[2:], b.dport)
	tc[12] = (tcpLen / 4) << 4
	tc[13] = 0x02
	binary.BigEndian.PutUint16(tc[14:], synWindow)
	// Options in the order Linux sends them: MSS, SACK-permitted,
	// timestamps, NOP, window scale.
	o := tc[20:]
	o[0], o[1] = 2, 4
	binary.BigEndian.PutUint16(o[2:], synMSS)
	o[4], o[5] = 4, 2
	o[6], o[7] = 8, 10 // TSval at o[8:12], TSecr 0 in a SYN
	o[16] = 1
	o[17], o[18], o[19] = 3, 3, synWScale
	return b, nil
}

// SetDistinct makes the builder draw its sources from exactly n distinct
// (address, port) pairs of the prefix, in a fixed order that visits each
// of them once before any repeats: n packets carry n different sources.
// Index i is address (i mod hosts) scattered over the prefix by an odd
// multiplier (a bijection of the host bits) with port MinPort + i/hosts,
// so that n up to the prefix's size gives n different addresses and a
// larger n adds ports. n = 0 returns to a random source per packet. It
// refuses n above MaxDistinct of the prefix.
func (b *Builder) SetDistinct(n uint64) error {
	hosts := uint64(b.hostMask) + 1
	if n > hosts*NumPorts {
		return fmt.Errorf("distinct %d: %w (%d)", n, errDistinct, hosts*NumPorts)
	}
	b.distinct, b.next = n, 0
	return nil
}

// source returns the next source address and port; r is the packet's
// random bits, used when the sources are random.
func (b *Builder) source(r uint64) (uint32, uint16) {
	if b.distinct == 0 {
		return b.base | uint32(r)&b.hostMask, uint16(MinPort + (r>>32)%NumPorts)
	}
	i := b.next
	if b.next++; b.next == b.distinct {
		b.next = 0
	}
	// The prefix holds a power of two of addresses: index i is address
	// i mod hosts and port i / hosts.
	h, port := uint32(i)&b.hostMask, uint16(MinPort+i>>bits.OnesCount32(b.hostMask))
	return b.base | (h*b.mult)&b.hostMask, port
}

// Fill writes one SYN into p, which must hold PacketLen bytes, from a
// random source address of the prefix and a random port 1024-65535 (or
// the next of the distinct sources, see SetDistinct), with a random ISN,
// IP ID and TSval, and valid IPv4 and TCP checksums.
func (b *Builder) Fill(p []byte) {
	p = p[:PacketLen]
	copy(p, b.tmpl[:])
	r1, r2 := b.rng.Uint64(), b.rng.Uint64()
	src, sport := b.source(r1)
	binary.BigEndian.PutUint16(p[4:], uint16(r1>>48)) // IP ID
	binary.BigEndian.PutUint32(p[12:], src)
	binary.BigEndian.PutUint16(p[10:], checksum(p[:ipLen], 0))

	tc := p[ipLen:]
	binary.BigEndian.PutUint16(tc[0:], sport)
	binary.BigEndian.PutUint32(tc[4:], uint32(r2))      // ISN
	binary.BigEndian.PutUint32(tc[28:], uint32(r2>>32)) // TSval
	// Pseudo-header (RFC 9293 §3.1): addresses, protocol, TCP length.
	var pseudo uint32
	pseudo += src>>16 + src&0xffff
	pseudo += uint32(b.dst[0])<<8 | uint32(b.dst[1])
	pseudo += uint32(b.dst[2])<<8 | uint32(b.dst[3])
	pseudo += 6 + tcpLen
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
