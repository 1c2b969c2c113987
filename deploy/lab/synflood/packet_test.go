package synflood

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func TestValidateSources(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"198.19.0.0/16", true},
		{"198.18.0.0/15", true},
		{"198.18.7.0/24", true},
		{"198.19.255.254/32", true},
		{"198.18.0.0/14", false}, // wider than the benchmarking range
		{"198.16.0.0/12", false},
		{"198.20.0.0/16", false},
		{"198.17.255.0/24", false},
		{"10.0.0.0/8", false},
		{"0.0.0.0/0", false},
		{"198.19.1.0/16", false}, // host bits
		{"::ffff:198.19.0.0/112", false},
		{"2001:db8::/32", true},
		{"2001:db8:ff::/48", true},
		{"2001:db8:ff::7/128", true},
		{"2001:db8::/31", false}, // wider than the documentation prefix
		{"2001:db9::/48", false},
		{"2001:db8:ff::1/48", false}, // host bits
		{"fe80::/64", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p := netip.MustParsePrefix(tt.in)
			err := ValidateSources(p)
			if (err == nil) != tt.ok {
				t.Errorf("ValidateSources(%v) = %v, want ok %v", p, err, tt.ok)
			}
		})
	}
	if err := ValidateSources(netip.Prefix{}); err == nil {
		t.Errorf("ValidateSources(zero prefix) = nil, want an error")
	}
}

func TestValidateDestination(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"198.18.3.2:80", true},
		{"198.19.0.1:65535", true},
		{"198.18.3.2:0", false},
		{"198.20.0.1:80", false},
		{"127.0.0.1:80", false},
		{"192.0.2.1:80", false},
		{"[2001:db8:3::2]:80", true},
		{"[2001:db8:3::2]:0", false},
		{"[2001:db9::2]:80", false},
		{"[::1]:80", false},
		{"[::ffff:198.18.3.2]:80", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			d := netip.MustParseAddrPort(tt.in)
			err := ValidateDestination(d)
			if (err == nil) != tt.ok {
				t.Errorf("ValidateDestination(%v) = %v, want ok %v", d, err, tt.ok)
			}
		})
	}
}

// decode parses p as IPv4+TCP with gopacket, failing the test when it
// cannot.
func decode(t *testing.T, p []byte) (*layers.IPv4, *layers.TCP) {
	t.Helper()
	pkt := gopacket.NewPacket(p, layers.LayerTypeIPv4, gopacket.Default)
	if el := pkt.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	tcp, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if ip == nil || tcp == nil {
		t.Fatalf("gopacket found layers %v, want IPv4 and TCP", pkt.Layers())
	}
	return ip, tcp
}

// reserialize writes ip and tcp again with gopacket computing both
// checksums: a reference independent of Builder.
func reserialize(t *testing.T, ip *layers.IPv4, tcp *layers.TCP) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	ip2, tcp2 := *ip, *tcp
	ip2.Checksum, tcp2.Checksum = 0, 0
	opts := gopacket.SerializeOptions{ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, &ip2, &tcp2); err != nil {
		t.Fatalf("SerializeLayers: %v", err)
	}
	return buf.Bytes()
}

func TestFill(t *testing.T) {
	dst := netip.MustParseAddrPort("198.18.3.2:80")
	wantOpts := []layers.TCPOption{
		{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
		{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
		{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10},
		{OptionType: layers.TCPOptionKindNop, OptionLength: 1},
		{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
	}
	for _, src := range []string{"198.19.0.0/16", "198.18.0.0/15", "198.18.200.64/27", "198.19.4.5/32"} {
		t.Run(src, func(t *testing.T) {
			prefix := netip.MustParsePrefix(src)
			b, err := NewBuilder(prefix, dst, 42)
			if err != nil {
				t.Fatalf("NewBuilder(%v, %v) = %v", prefix, dst, err)
			}
			sources := map[netip.Addr]bool{}
			p := make([]byte, PacketLen)
			for i := range 500 {
				b.Fill(p)
				ip, tcp := decode(t, p)
				if i < 20 {
					if re := reserialize(t, ip, tcp); !bytes.Equal(re, p) {
						t.Fatalf("packet %d differs from gopacket's with computed checksums:\n got %x\nwant %x", i, p, re)
					}
				}
				if checksum(p[:ipLen], 0) != 0 {
					t.Errorf("packet %d: IPv4 header does not sum to 0xffff", i)
				}
				srcAddr, _ := netip.AddrFromSlice(ip.SrcIP)
				if !prefix.Contains(srcAddr) {
					t.Fatalf("packet %d: source %v outside %v", i, srcAddr, prefix)
				}
				sources[srcAddr] = true
				dstAddr, _ := netip.AddrFromSlice(ip.DstIP)
				if got := netip.AddrPortFrom(dstAddr, uint16(tcp.DstPort)); got != dst {
					t.Errorf("packet %d: destination %v, want %v", i, got, dst)
				}
				if ip.Version != 4 || ip.IHL != 5 || ip.Length != PacketLen || ip.TTL != 64 ||
					ip.Protocol != layers.IPProtocolTCP || ip.Flags != layers.IPv4DontFragment || ip.FragOffset != 0 {
					t.Errorf("packet %d: IPv4 header %+v", i, ip)
				}
				if !tcp.SYN || tcp.ACK || tcp.RST || tcp.FIN || tcp.PSH || tcp.URG || tcp.Ack != 0 || tcp.DataOffset != 10 ||
					tcp.Window != 64240 || len(tcp.Payload) != 0 {
					t.Errorf("packet %d: TCP header %+v", i, tcp)
				}
				if tcp.SrcPort < 1024 {
					t.Errorf("packet %d: source port %d < 1024", i, tcp.SrcPort)
				}
				if len(tcp.Options) != len(wantOpts) {
					t.Fatalf("packet %d: options %v, want %v", i, tcp.Options, wantOpts)
				}
				got := append([]layers.TCPOption(nil), tcp.Options...)
				got[2].OptionData = nil // TSval is random; TSecr checked below
				if d := cmp.Diff(wantOpts, got, cmpopts.EquateEmpty()); d != "" {
					t.Errorf("packet %d: options (-want +got):\n%s", i, d)
				}
				if ecr := binary.BigEndian.Uint32(tcp.Options[2].OptionData[4:]); ecr != 0 {
					t.Errorf("packet %d: TSecr %d, want 0 in a SYN", i, ecr)
				}
			}
			// 500 draws from the prefix: a /27 (32 addresses) is nearly
			// covered, a /16 gives almost every draw a new address.
			hosts := 1 << (32 - prefix.Bits())
			if want := min(hosts, 400) * 3 / 4; len(sources) < want {
				t.Errorf("%d distinct sources in 500 packets from %v, want at least %d", len(sources), prefix, want)
			}
		})
	}
}

func TestFillSeed(t *testing.T) {
	src, dst := netip.MustParsePrefix("198.19.0.0/16"), netip.MustParseAddrPort("198.18.3.2:80")
	run := func(seed uint64) [][]byte {
		b, err := NewBuilder(src, dst, seed)
		if err != nil {
			t.Fatal(err)
		}
		var out [][]byte
		for range 10 {
			p := make([]byte, PacketLen)
			b.Fill(p)
			out = append(out, p)
		}
		return out
	}
	a, a2, c := run(1), run(1), run(2)
	if d := cmp.Diff(a, a2); d != "" {
		t.Errorf("same seed, different packets (-first +second):\n%s", d)
	}
	if cmp.Equal(a, c) {
		t.Errorf("seeds 1 and 2 gave the same packets")
	}
}

// TestFillDistinct sends n packets of SetDistinct(n) and wants n different
// (address, port) sources, all inside the prefix with ports from MinPort,
// then the same sequence again.
func TestFillDistinct(t *testing.T) {
	dst := netip.MustParseAddrPort("198.18.3.2:80")
	type source struct {
		addr netip.Addr
		port uint16
	}
	tests := []struct {
		prefix    string
		n         uint64
		wantAddrs int // distinct addresses among the n sources
	}{
		{"198.19.0.0/16", 1, 1},
		{"198.19.0.0/16", 1000, 1000},
		{"198.19.0.0/16", 65536, 65536},
		{"198.19.0.0/16", 200_000, 65536},
		{"198.18.0.0/15", 150_000, 131072},
		{"198.18.200.64/27", 100, 32},
		{"198.19.4.5/32", 500, 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.prefix, tt.n), func(t *testing.T) {
			prefix := netip.MustParsePrefix(tt.prefix)
			b, err := NewBuilder(prefix, dst, 3)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.SetDistinct(tt.n); err != nil {
				t.Fatalf("SetDistinct(%d) = %v", tt.n, err)
			}
			p := make([]byte, PacketLen)
			read := func() source {
				b.Fill(p)
				a, _ := netip.AddrFromSlice(p[12:16])
				return source{a, binary.BigEndian.Uint16(p[ipLen:])}
			}
			seen := make(map[source]bool, tt.n)
			addrs := map[netip.Addr]bool{}
			first := make([]source, 0, 10)
			for i := range tt.n {
				s := read()
				if !prefix.Contains(s.addr) || s.port < MinPort {
					t.Fatalf("packet %d: source %v:%d outside %v or below port %d", i, s.addr, s.port, prefix, MinPort)
				}
				if seen[s] {
					t.Fatalf("packet %d: source %v:%d repeats before %d sources were used", i, s.addr, s.port, tt.n)
				}
				seen[s], addrs[s.addr] = true, true
				if len(first) < cap(first) {
					first = append(first, s)
				}
			}
			if len(addrs) != tt.wantAddrs {
				t.Errorf("%d sources have %d addresses, want %d", tt.n, len(addrs), tt.wantAddrs)
			}
			for i, want := range first {
				if got := read(); got != want {
					t.Errorf("second round, packet %d: source %v, want %v", i, got, want)
				}
			}
		})
	}
}

func TestSetDistinctRefuses(t *testing.T) {
	prefix := netip.MustParsePrefix("198.19.4.0/30")
	b, err := NewBuilder(prefix, netip.MustParseAddrPort("198.18.3.2:80"), 1)
	if err != nil {
		t.Fatal(err)
	}
	if max := MaxDistinct(prefix); max != 4*NumPorts {
		t.Errorf("MaxDistinct(%v) = %d, want %d", prefix, max, 4*NumPorts)
	}
	if err := b.SetDistinct(4*NumPorts + 1); !errors.Is(err, errDistinct) {
		t.Errorf("SetDistinct(%d) = %v, want %v", 4*NumPorts+1, err, errDistinct)
	}
	if err := b.SetDistinct(4 * NumPorts); err != nil {
		t.Errorf("SetDistinct(%d) = %v, want nil", 4*NumPorts, err)
	}
}

func TestFillAllocs(t *testing.T) {
	b, err := NewBuilder(netip.MustParsePrefix("198.19.0.0/16"), netip.MustParseAddrPort("198.18.3.2:80"), 7)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, PacketLen)
	if n := testing.AllocsPerRun(1000, func() { b.Fill(p) }); n != 0 {
		t.Errorf("Fill allocates %v times per packet, want 0", n)
	}
	if err := b.SetDistinct(1000); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() { b.Fill(p) }); n != 0 {
		t.Errorf("Fill with distinct sources allocates %v times per packet, want 0", n)
	}
}

func TestNewBuilderRefuses(t *testing.T) {
	ok4, okDst := netip.MustParsePrefix("198.19.0.0/16"), netip.MustParseAddrPort("198.18.3.2:80")
	if _, err := NewBuilder(netip.MustParsePrefix("203.0.113.0/24"), okDst, 1); err == nil {
		t.Errorf("NewBuilder(203.0.113.0/24, ...) = nil error, want refusal")
	}
	if _, err := NewBuilder(ok4, netip.MustParseAddrPort("192.0.2.1:80"), 1); err == nil {
		t.Errorf("NewBuilder(..., 192.0.2.1:80) = nil error, want refusal")
	}
	if _, err := NewBuilder(ok4, netip.MustParseAddrPort("[2001:db8:3::2]:80"), 1); !errors.Is(err, errFamily) {
		t.Errorf("NewBuilder(%v, [2001:db8:3::2]:80) = %v, want %v", ok4, err, errFamily)
	}
	if _, err := NewBuilder(netip.MustParsePrefix("2001:db8:ff::/48"), okDst, 1); !errors.Is(err, errFamily) {
		t.Errorf("NewBuilder(2001:db8:ff::/48, %v) = %v, want %v", okDst, err, errFamily)
	}
}

func TestConfigValidate(t *testing.T) {
	base := Config{
		Dst:      netip.MustParseAddrPort("198.18.3.2:80"),
		Sources:  netip.MustParsePrefix("198.19.0.0/16"),
		Rate:     100_000,
		Duration: 10 * time.Second,
	}
	tests := []struct {
		name      string
		mod       func(*Config)
		wantCount int // 0: want an error
	}{
		{"defaults count to rate × duration", func(*Config) {}, 1_000_000},
		{"explicit count", func(c *Config) { c.Count = 5 }, 5},
		{"count capped", func(c *Config) { c.Rate, c.Duration = MaxRate, MaxDuration }, MaxCount},
		{"max count", func(c *Config) { c.Count = MaxCount }, MaxCount},
		{"count too large", func(c *Config) { c.Count = MaxCount + 1 }, 0},
		{"negative count", func(c *Config) { c.Count = -1 }, 0},
		{"no duration", func(c *Config) { c.Duration = 0 }, 0},
		{"duration too long", func(c *Config) { c.Duration = MaxDuration + time.Millisecond }, 0},
		{"no rate", func(c *Config) { c.Rate = 0 }, 0},
		{"rate too high", func(c *Config) { c.Rate = MaxRate + 1 }, 0},
		{"bad sources", func(c *Config) { c.Sources = netip.MustParsePrefix("10.0.0.0/8") }, 0},
		{"bad destination", func(c *Config) { c.Dst = netip.MustParseAddrPort("192.0.2.1:80") }, 0},
		{"distinct sources", func(c *Config) { c.Distinct = 1_000_000 }, 1_000_000},
		{"all distinct sources", func(c *Config) { c.Distinct = 65536 * NumPorts }, 1_000_000},
		{"too many distinct sources", func(c *Config) { c.Distinct = 65536*NumPorts + 1 }, 0},
		{"IPv6", func(c *Config) {
			c.Dst, c.Sources = netip.MustParseAddrPort("[2001:db8:3::2]:80"), netip.MustParsePrefix("2001:db8:ff::/48")
		}, 1_000_000},
		{"IPv6 distinct capped at 2^32 addresses", func(c *Config) {
			c.Dst, c.Sources = netip.MustParseAddrPort("[2001:db8:3::2]:80"), netip.MustParsePrefix("2001:db8:ff::/48")
			c.Distinct = 1<<32*NumPorts + 1
		}, 0},
		{"mixed families", func(c *Config) { c.Dst = netip.MustParseAddrPort("[2001:db8:3::2]:80") }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.mod(&c)
			got, err := c.Validate()
			switch {
			case tt.wantCount == 0 && err == nil:
				t.Errorf("Validate(%+v) = nil error, want an error", c)
			case tt.wantCount != 0 && err != nil:
				t.Errorf("Validate(%+v) = %v, want count %d", c, err, tt.wantCount)
			case tt.wantCount != 0 && got.Count != tt.wantCount:
				t.Errorf("Validate(%+v).Count = %d, want %d", c, got.Count, tt.wantCount)
			}
		})
	}
}

// TestBucket paces a simulated second and checks the number of packets let
// through against the rate.
func TestBucket(t *testing.T) {
	for _, rate := range []int{1, 50, 1000, 100_000, 2_000_000} {
		t.Run("", func(t *testing.T) {
			start := time.Unix(1000, 0)
			batch := batchFor(rate)
			b := newBucket(float64(rate), batch, start)
			now, sent, sleeps := start, 0, 0
			for now.Before(start.Add(time.Second)) {
				if w := b.take(batch, now); w > 0 {
					now = now.Add(w + 10*time.Microsecond) // sleeps overshoot a little
					sleeps++
					continue
				}
				sent += batch
			}
			if lo, hi := rate*97/100, rate+2*batch; sent < lo || sent > hi {
				t.Errorf("rate %d: %d packets in a simulated second, want %d..%d", rate, sent, lo, hi)
			}
			if sleeps == 0 {
				t.Errorf("rate %d: never waited", rate)
			}
		})
	}
}

func BenchmarkFill(b *testing.B) {
	for _, distinct := range []uint64{0, 1_000_000} {
		b.Run(fmt.Sprintf("distinct=%d", distinct), func(b *testing.B) {
			bd, err := NewBuilder(netip.MustParsePrefix("198.19.0.0/16"), netip.MustParseAddrPort("198.18.3.2:80"), 7)
			if err != nil {
				b.Fatal(err)
			}
			if err := bd.SetDistinct(distinct); err != nil {
				b.Fatal(err)
			}
			p := make([]byte, PacketLen)
			b.ReportAllocs()
			for b.Loop() {
				bd.Fill(p)
			}
		})
	}
}

// decode6 parses p as IPv6+TCP with gopacket, failing the test when it
// cannot.
func decode6(t *testing.T, p []byte) (*layers.IPv6, *layers.TCP) {
	t.Helper()
	pkt := gopacket.NewPacket(p, layers.LayerTypeIPv6, gopacket.Default)
	if el := pkt.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	ip, _ := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	tcp, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if ip == nil || tcp == nil {
		t.Fatalf("gopacket found layers %v, want IPv6 and TCP", pkt.Layers())
	}
	return ip, tcp
}

func TestFill6(t *testing.T) {
	dst := netip.MustParseAddrPort("[2001:db8:3::2]:80")
	for _, src := range []string{"2001:db8:ff::/48", "2001:db8::/32", "2001:db8:ff:1::/120", "2001:db8:ff::9/128"} {
		t.Run(src, func(t *testing.T) {
			prefix := netip.MustParsePrefix(src)
			b, err := NewBuilder(prefix, dst, 42)
			if err != nil {
				t.Fatalf("NewBuilder(%v, %v) = %v", prefix, dst, err)
			}
			if b.Len() != PacketLen6 || !b.IPv6() {
				t.Fatalf("Len() = %d, IPv6() = %v, want %d, true", b.Len(), b.IPv6(), PacketLen6)
			}
			sources, labels := map[netip.Addr]bool{}, map[uint32]bool{}
			p := make([]byte, MaxPacketLen)
			for i := range 500 {
				b.Fill(p)
				ip, tcp := decode6(t, p[:PacketLen6])
				if i < 20 {
					buf := gopacket.NewSerializeBuffer()
					ip2, tcp2 := *ip, *tcp
					tcp2.Checksum = 0
					if err := tcp2.SetNetworkLayerForChecksum(&ip2); err != nil {
						t.Fatal(err)
					}
					if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, &ip2, &tcp2); err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(buf.Bytes(), p[:PacketLen6]) {
						t.Fatalf("packet %d differs from gopacket's with computed checksums:\n got %x\nwant %x", i, p[:PacketLen6], buf.Bytes())
					}
				}
				srcAddr, _ := netip.AddrFromSlice(ip.SrcIP)
				if !prefix.Contains(srcAddr) {
					t.Fatalf("packet %d: source %v outside %v", i, srcAddr, prefix)
				}
				sources[srcAddr], labels[ip.FlowLabel] = true, true
				dstAddr, _ := netip.AddrFromSlice(ip.DstIP)
				if got := netip.AddrPortFrom(dstAddr, uint16(tcp.DstPort)); got != dst {
					t.Errorf("packet %d: destination %v, want %v", i, got, dst)
				}
				if ip.Version != 6 || ip.Length != tcpLen || ip.HopLimit != 64 || ip.NextHeader != layers.IPProtocolTCP || ip.TrafficClass != 0 {
					t.Errorf("packet %d: IPv6 header %+v", i, ip)
				}
				if !tcp.SYN || tcp.ACK || tcp.RST || tcp.FIN || tcp.Ack != 0 || tcp.DataOffset != 10 || tcp.SrcPort < MinPort {
					t.Errorf("packet %d: TCP header %+v", i, tcp)
				}
				if len(tcp.Options) != 5 || tcp.Options[0].OptionType != layers.TCPOptionKindMSS ||
					binary.BigEndian.Uint16(tcp.Options[0].OptionData) != 1440 {
					t.Errorf("packet %d: options %v, want MSS 1440 first of 5", i, tcp.Options)
				}
			}
			hosts := 1 << min(128-prefix.Bits(), 20)
			if want := min(hosts, 400) * 3 / 4; len(sources) < want {
				t.Errorf("%d distinct sources in 500 packets from %v, want at least %d", len(sources), prefix, want)
			}
			if len(labels) < 400 {
				t.Errorf("%d distinct flow labels in 500 packets, want at least 400", len(labels))
			}
		})
	}
}

// TestFillDistinct6 checks distinct sources of IPv6 prefixes, which lend
// at most their 2^32 lowest addresses.
func TestFillDistinct6(t *testing.T) {
	dst := netip.MustParseAddrPort("[2001:db8:3::2]:80")
	for _, tt := range []struct {
		prefix    string
		n         uint64
		wantAddrs int
	}{
		{"2001:db8:ff::/48", 5000, 5000},
		{"2001:db8:ff:1::/120", 1000, 256},
	} {
		t.Run(fmt.Sprintf("%s/%d", tt.prefix, tt.n), func(t *testing.T) {
			prefix := netip.MustParsePrefix(tt.prefix)
			b, err := NewBuilder(prefix, dst, 5)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.SetDistinct(tt.n); err != nil {
				t.Fatalf("SetDistinct(%d) = %v", tt.n, err)
			}
			p := make([]byte, MaxPacketLen)
			type source struct {
				addr netip.Addr
				port uint16
			}
			seen, addrs := map[source]bool{}, map[netip.Addr]bool{}
			for i := range tt.n {
				b.Fill(p)
				a, _ := netip.AddrFromSlice(p[8:24])
				s := source{a, binary.BigEndian.Uint16(p[ip6Len:])}
				if !prefix.Contains(a) || seen[s] {
					t.Fatalf("packet %d: source %v:%d outside %v or repeated", i, a, s.port, prefix)
				}
				seen[s], addrs[a] = true, true
			}
			if len(addrs) != tt.wantAddrs {
				t.Errorf("%d sources have %d addresses, want %d", tt.n, len(addrs), tt.wantAddrs)
			}
		})
	}
	if got, want := MaxDistinct(netip.MustParsePrefix("2001:db8::/32")), uint64(1)<<32*NumPorts; got != want {
		t.Errorf("MaxDistinct(2001:db8::/32) = %d, want %d", got, want)
	}
}

func TestFill6Allocs(t *testing.T) {
	b, err := NewBuilder(netip.MustParsePrefix("2001:db8:ff::/48"), netip.MustParseAddrPort("[2001:db8:3::2]:80"), 7)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, MaxPacketLen)
	if n := testing.AllocsPerRun(1000, func() { b.Fill(p) }); n != 0 {
		t.Errorf("Fill (IPv6) allocates %v times per packet, want 0", n)
	}
}
