package header

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var (
	src4 = [16]byte{198, 18, 0, 1}
	dst4 = [16]byte{198, 19, 0, 2}
	src6 = [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}
	dst6 = [16]byte{0x20, 0x01, 0x0d, 0xb8, 1, 15: 2}
)

// seg builds a TCP segment; opts are padded with EOL to a multiple of 4.
func seg(flags uint8, opts []byte, payload []byte) []byte {
	o := append([]byte(nil), opts...)
	for len(o)%4 != 0 {
		o = append(o, OptEOL)
	}
	t := make([]byte, 20+len(o), 20+len(o)+len(payload))
	binary.BigEndian.PutUint16(t[0:], 40000)
	binary.BigEndian.PutUint16(t[2:], 80)
	binary.BigEndian.PutUint32(t[4:], 1000)
	binary.BigEndian.PutUint32(t[8:], 2000)
	t[12] = uint8(len(t)/4) << 4
	t[13] = flags
	binary.BigEndian.PutUint16(t[14:], 65535)
	copy(t[20:], o)
	return append(t, payload...)
}

// v4 wraps a segment in an IPv4 header with ipOpts (a multiple of 4 bytes).
func v4(ipOpts []byte, s []byte) []byte {
	hl := 20 + len(ipOpts)
	b := make([]byte, hl, hl+len(s))
	b[0] = 4<<4 | uint8(hl/4)
	binary.BigEndian.PutUint16(b[2:], uint16(hl+len(s)))
	b[6] = 0x40 // DF
	b[8] = 64
	b[9] = ProtocolTCP
	copy(b[12:16], src4[:4])
	copy(b[16:20], dst4[:4])
	copy(b[20:], ipOpts)
	SetIPv4Checksum(b)
	b = append(b, s...)
	if len(s) >= TCPMinimumSize {
		SetTCPChecksum(false, &src4, &dst4, b[hl:])
	}
	return b
}

// v6 wraps a segment in an IPv6 header followed by ext, whose first header
// type is nh.
func v6(nh uint8, ext []byte, s []byte) []byte {
	b := make([]byte, 40, 40+len(ext)+len(s))
	b[0] = 6 << 4
	binary.BigEndian.PutUint16(b[4:], uint16(len(ext)+len(s)))
	b[6] = nh
	b[7] = 64
	copy(b[8:24], src6[:])
	copy(b[24:40], dst6[:])
	b = append(b, ext...)
	b = append(b, s...)
	if len(s) >= TCPMinimumSize {
		SetTCPChecksum(true, &src6, &dst6, b[40+len(ext):])
	}
	return b
}

// ext builds an IPv6 extension header of size bytes (a multiple of 8) that
// says next comes next. Its body is a PadN option (RFC 8200 §4.2).
func ext(next uint8, size int) []byte {
	e := make([]byte, size)
	e[0] = next
	e[1] = uint8(size/8 - 1)
	e[2] = 1
	e[3] = uint8(size - 4)
	return e
}

func chain(hs ...[]byte) []byte { return bytes.Join(hs, nil) }

// routing builds an IPv6 routing header (RFC 8200 §4.4) of size bytes, type
// 4 (RFC 8754), with left segments left.
func routing(next uint8, size int, left uint8) []byte {
	e := make([]byte, size)
	e[0], e[1], e[2], e[3] = next, uint8(size/8-1), 4, left
	return e
}

// mod returns a copy of b changed by f.
func mod(b []byte, f func(b []byte)) []byte {
	c := append([]byte(nil), b...)
	f(c)
	return c
}

var (
	synOpts = []byte{
		OptMSS, 4, 0x05, 0xb4,
		OptSACKPermitted, 2,
		OptTimestamps, 10, 0, 0, 0, 1, 0, 0, 0, 2,
		OptNOP,
		OptWindowScale, 3, 7,
	}
	synWant = Options{MSS: 1460, HasMSS: true, WScale: 7, HasWScale: true, SACKPermitted: true,
		HasTS: true, TSVal: 1, TSEcr: 2, TSOffset: 28}
	sackOpts = []byte{OptNOP, OptNOP, OptSACK, 18, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4}
	payload  = []byte("GET / HTTP/1.1\r\n\r\n")
	good4    = v4(nil, seg(ACK|PSH, nil, payload))
	good6    = v6(ProtocolTCP, nil, seg(ACK|PSH, nil, payload))
)

func TestParse(t *testing.T) {
	type want struct {
		r       Reason
		ipLen   int
		payLen  int
		opts    Options
		v6      bool
		checkOp bool
	}
	tests := []struct {
		name string
		b    []byte
		want want
	}{
		// Good packets.
		{"ipv4 plain", good4, want{r: OK, ipLen: 20, payLen: len(payload)}},
		{"ipv4 syn options", v4(nil, seg(SYN, synOpts, nil)), want{r: OK, ipLen: 20, opts: synWant, checkOp: true}},
		{"ipv4 ip options", v4([]byte{1, 1, 1, 0}, seg(ACK, sackOpts, payload)),
			want{r: OK, ipLen: 24, payLen: len(payload), opts: Options{SACKOffset: 24, SACKBlocks: 2}, checkOp: true}},
		{"ipv4 trailing bytes trimmed", append(v4(nil, seg(ACK, nil, payload)), 0, 0, 0, 0, 0, 0),
			want{r: OK, ipLen: 20, payLen: len(payload)}},
		{"ipv4 DF is not a fragment", good4, want{r: OK, ipLen: 20, payLen: len(payload)}},
		{"ipv6 plain", good6, want{r: OK, ipLen: 40, payLen: len(payload), v6: true}},
		{"ipv6 syn options", v6(ProtocolTCP, nil, seg(SYN, synOpts, nil)), want{r: OK, ipLen: 40, v6: true, opts: synWant, checkOp: true}},
		{"ipv6 hop-by-hop, routing, dest options",
			v6(IPv6HopByHop, chain(ext(IPv6Routing, 8), routing(IPv6DestOptions, 16, 0), ext(ProtocolTCP, 24)), seg(ACK, nil, payload)),
			want{r: OK, ipLen: 88, payLen: len(payload), v6: true}},
		// The fixed header names a waypoint, not the final destination.
		{"ipv6 routing header with segments left",
			v6(IPv6Routing, routing(ProtocolTCP, 24, 1), seg(ACK, nil, payload)),
			want{r: BadExtHeader}},
		{"ipv6 eight extension headers",
			v6(IPv6DestOptions, chain(ext(60, 8), ext(60, 8), ext(60, 8), ext(60, 8), ext(60, 8), ext(60, 8), ext(60, 8), ext(6, 8)), seg(ACK, nil, nil)),
			want{r: OK, ipLen: 104, v6: true}},
		{"ipv6 trailing bytes trimmed", append(v6(IPv6DestOptions, ext(ProtocolTCP, 8), seg(ACK, nil, payload)), 1, 2, 3),
			want{r: OK, ipLen: 48, payLen: len(payload), v6: true}},
		{"window scale above 14 clamped", v4(nil, seg(SYN, []byte{OptWindowScale, 3, 15}, nil)),
			want{r: OK, ipLen: 20, opts: Options{WScale: 14, HasWScale: true, WScaleClamped: true}, checkOp: true}},
		{"unknown option skipped", v4(nil, seg(SYN, []byte{253, 6, 1, 2, 3, 4, OptMSS, 4, 1, 0}, nil)),
			want{r: OK, ipLen: 20, opts: Options{MSS: 256, HasMSS: true}, checkOp: true}},
		{"nothing read after EOL", v4(nil, seg(SYN, []byte{OptMSS, 4, 1, 0, OptEOL, OptMSS, 9, 9}, nil)),
			want{r: OK, ipLen: 20, opts: Options{MSS: 256, HasMSS: true}, checkOp: true}},
		{"four SACK blocks", v4(nil, seg(ACK, append([]byte{OptNOP, OptNOP, OptSACK, 34}, make([]byte, 32)...), nil)),
			want{r: OK, ipLen: 20, opts: Options{SACKOffset: 24, SACKBlocks: 4}, checkOp: true}},

		// One case per malformation.
		{"empty", nil, want{r: Truncated}},
		{"ipv4 shorter than 20", good4[:19], want{r: Truncated}},
		{"ipv6 shorter than 40", good6[:39], want{r: Truncated}},
		{"version 5", mod(good4, func(b []byte) { b[0] = 5<<4 | 5 }), want{r: BadVersion}},
		{"version 0", mod(good4, func(b []byte) { b[0] = 5 }), want{r: BadVersion}},
		{"ihl 4", mod(good4, func(b []byte) { b[0] = 4<<4 | 4 }), want{r: BadIHL}},
		{"ihl past packet", mod(good4[:40], func(b []byte) { b[0] = 4<<4 | 15 }), want{r: BadIHL}},
		{"total length below ihl", mod(good4, func(b []byte) { binary.BigEndian.PutUint16(b[2:], 19) }), want{r: BadTotalLength}},
		{"total length past packet", mod(good4, func(b []byte) { binary.BigEndian.PutUint16(b[2:], uint16(len(good4)+1)) }), want{r: BadTotalLength}},
		{"ipv6 payload length past packet", mod(good6, func(b []byte) { binary.BigEndian.PutUint16(b[4:], uint16(len(good6)-39)) }), want{r: BadTotalLength}},
		{"ipv4 more fragments", mod(good4, func(b []byte) { b[6] = 0x20 }), want{r: Fragment}},
		{"ipv4 fragment offset", mod(good4, func(b []byte) { b[6], b[7] = 0, 1 }), want{r: Fragment}},
		{"ipv6 fragment header", v6(IPv6Fragment, ext(ProtocolTCP, 8), seg(ACK, nil, nil)), want{r: Fragment}},
		{"ipv6 fragment after dest options", v6(IPv6DestOptions, chain(ext(IPv6Fragment, 8), ext(6, 8)), seg(ACK, nil, nil)), want{r: Fragment}},
		{"ipv4 udp", mod(good4, func(b []byte) { b[9] = 17 }), want{r: NotTCP}},
		{"ipv6 udp", v6(17, nil, seg(ACK, nil, nil)), want{r: NotTCP}},
		{"ipv6 no next header", v6(IPv6NoNextHeader, nil, seg(ACK, nil, nil)), want{r: NotTCP}},
		{"ipv6 esp", v6(IPv6ESP, nil, seg(ACK, nil, nil)), want{r: NotTCP}},
		{"ipv6 ah", v6(IPv6AH, ext(ProtocolTCP, 16), seg(ACK, nil, nil)), want{r: NotTCP}},
		{"ipv6 hop-by-hop not first", v6(IPv6DestOptions, chain(ext(IPv6HopByHop, 8), ext(6, 8)), seg(ACK, nil, nil)), want{r: BadExtHeader}},
		{"ipv6 ext header length past packet", mod(v6(IPv6DestOptions, ext(ProtocolTCP, 8), seg(ACK, nil, nil)), func(b []byte) { b[41] = 5 }), want{r: BadExtHeader}},
		{"ipv6 ext header cut short", v6(IPv6DestOptions, []byte{6, 0, 1, 2}, nil), want{r: BadExtHeader}},
		{"ipv6 nine extension headers",
			v6(IPv6DestOptions, chain(ext(60, 8), ext(60, 8), ext(60, 8), ext(60, 8), ext(60, 8), ext(60, 8), ext(60, 8), ext(60, 8), ext(6, 8)), seg(ACK, nil, nil)),
			want{r: BadExtHeader}},
		{"tcp shorter than 20", v4(nil, seg(ACK, nil, nil)[:19]), want{r: Truncated}},
		{"ipv6 tcp shorter than 20", v6(ProtocolTCP, nil, seg(ACK, nil, nil)[:19]), want{r: Truncated}},
		{"data offset 4", v4(nil, mod(seg(ACK, nil, payload), func(b []byte) { b[12] = 4 << 4 })), want{r: BadDataOffset}},
		{"data offset past packet", v4(nil, mod(seg(ACK, nil, nil), func(b []byte) { b[12] = 6 << 4 })), want{r: BadDataOffset}},
		{"option length 0", v4(nil, seg(SYN, []byte{OptMSS, 0, 0, 0}, nil)), want{r: BadOption}},
		{"option length 1", v4(nil, seg(SYN, []byte{99, 1, 0, 0}, nil)), want{r: BadOption}},
		{"option kind in last byte", v4(nil, seg(SYN, []byte{OptNOP, OptNOP, OptNOP, OptMSS}, nil)), want{r: BadOption}},
		{"option past header", v4(nil, seg(SYN, []byte{99, 5, 0, 0}, nil)), want{r: BadOption}},
		{"mss length 3", v4(nil, seg(SYN, []byte{OptMSS, 3, 0, 0}, nil)), want{r: BadOption}},
		{"window scale length 4", v4(nil, seg(SYN, []byte{OptWindowScale, 4, 0, 0}, nil)), want{r: BadOption}},
		{"sack-permitted length 4", v4(nil, seg(SYN, []byte{OptSACKPermitted, 4, 0, 0}, nil)), want{r: BadOption}},
		{"sack without blocks", v4(nil, seg(ACK, []byte{OptSACK, 2, 0, 0}, nil)), want{r: BadOption}},
		{"sack length 11", v4(nil, seg(ACK, []byte{OptSACK, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, nil)), want{r: BadOption}},
		{"timestamps length 8", v4(nil, seg(ACK, []byte{OptTimestamps, 8, 0, 0, 0, 0, 0, 0}, nil)), want{r: BadOption}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Packet
			r := Parse(tt.b, &p)
			if r != tt.want.r {
				t.Fatalf("Parse(%x) = %v, want %v", tt.b, r, tt.want.r)
			}
			if r != OK {
				return
			}
			if p.V6 != tt.want.v6 || len(p.IP) != tt.want.ipLen || len(p.Payload) != tt.want.payLen {
				t.Errorf("Parse(%x): v6, IP, payload = %v, %d, %d bytes, want %v, %d, %d",
					tt.b, p.V6, len(p.IP), len(p.Payload), tt.want.v6, tt.want.ipLen, tt.want.payLen)
			}
			if tt.want.checkOp {
				if d := cmp.Diff(tt.want.opts, p.Opts); d != "" {
					t.Errorf("Parse(%x) options (-want +got):\n%s", tt.b, d)
				}
			}
			wantSrc, wantDst := src4, dst4
			if p.V6 {
				wantSrc, wantDst = src6, dst6
			}
			if p.Src != wantSrc || p.Dst != wantDst {
				t.Errorf("Parse(%x): Src, Dst = %x, %x, want %x, %x", tt.b, p.Src, p.Dst, wantSrc, wantDst)
			}
			if !p.VerifyTCPChecksum() {
				t.Errorf("Parse(%x): VerifyTCPChecksum() = false, want true", tt.b)
			}
			if tt.want.payLen > 0 && !bytes.Equal(p.Payload, payload) {
				t.Errorf("Parse(%x): Payload = %q, want %q", tt.b, p.Payload, payload)
			}
		})
	}
}

// TestParseResetsPacket checks that nothing of an earlier packet survives.
func TestParseResetsPacket(t *testing.T) {
	var p Packet
	if r := Parse(v6(ProtocolTCP, nil, seg(SYN, synOpts, nil)), &p); r != OK {
		t.Fatalf("Parse = %v, want ok", r)
	}
	if r := Parse(good4, &p); r != OK {
		t.Fatalf("Parse = %v, want ok", r)
	}
	if p.V6 || p.Opts != (Options{}) || p.Src != src4 {
		t.Errorf("Parse(good4) after an IPv6 SYN left V6=%v Opts=%+v Src=%x", p.V6, p.Opts, p.Src)
	}
}

func TestSACKBlock(t *testing.T) {
	b := v4(nil, seg(ACK, sackOpts, nil))
	var p Packet
	if r := Parse(b, &p); r != OK {
		t.Fatalf("Parse = %v, want ok", r)
	}
	for k := range p.Opts.SACKBlocks {
		l, r := p.TCP.SACKBlock(&p.Opts, k)
		if want := uint32(2*k + 1); l != want || r != want+1 {
			t.Errorf("SACKBlock(%d) = %d, %d, want %d, %d", k, l, r, want, want+1)
		}
	}
}

// TestViews reads every accessor from headers laid out by hand, byte by
// byte as the RFCs draw them.
func TestViews(t *testing.T) {
	ip := IPv4{0x45, 0xb8, 0, 60, 0xbe, 0xef, 0x3a, 0xbc, 63, ProtocolTCP, 0, 0,
		198, 18, 0, 1, 198, 18, 1, 2}
	SetIPv4Checksum(ip)
	got4 := []any{ip.Version(), ip.IHL(), ip.HeaderLength(), ip.TOS(), ip.TotalLength(), ip.Identification(),
		ip.Flags(), ip.FragmentOffset(), ip.IsFragment(), ip.TTL(), ip.Protocol(), ip.SourceAddress(), ip.DestinationAddress(),
		VerifyIPv4Checksum(ip)}
	want4 := []any{uint8(4), uint8(5), 20, uint8(0xb8), uint16(60), uint16(0xbeef),
		uint8(IPv4MoreFragments), uint16(0x1abc), true, uint8(63), uint8(ProtocolTCP), [4]byte{198, 18, 0, 1}, [4]byte{198, 18, 1, 2},
		true}
	if d := cmp.Diff(want4, got4); d != "" {
		t.Errorf("IPv4 accessors (-want +got):\n%s", d)
	}

	h := IPv6(make([]byte, 40))
	copy(h, []byte{0x6b, 0x8a, 0xbc, 0xde, 0x04, 0xd2, IPv6DestOptions, 7})
	copy(h[IPv6SrcOffset:], src6[:])
	copy(h[IPv6DstOffset:], dst6[:])
	got6 := []any{h.Version(), h.TrafficClass(), h.FlowLabel(), h.PayloadLength(), h.NextHeader(), h.HopLimit(),
		h.SourceAddress(), h.DestinationAddress()}
	want6 := []any{uint8(6), uint8(0xb8), uint32(0xabcde), uint16(1234), uint8(IPv6DestOptions), uint8(7), src6, dst6}
	if d := cmp.Diff(want6, got6); d != "" {
		t.Errorf("IPv6 accessors (-want +got):\n%s", d)
	}

	tc := TCP{0, 1, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 6 << 4, SYN | ECE | CWR, 0, 5, 0, 0, 0, 7, 1, 1, 1, 1}
	tc.SetChecksum(6)
	gotT := []any{tc.SourcePort(), tc.DestinationPort(), tc.SequenceNumber(), tc.AckNumber(), tc.DataOffset(),
		tc.Flags(), tc.WindowSize(), tc.Checksum(), tc.UrgentPointer(), len(tc.Options())}
	wantT := []any{uint16(1), uint16(2), uint32(3), uint32(4), 24, SYN | ECE | CWR, uint16(5), uint16(6), uint16(7), 4}
	if d := cmp.Diff(wantT, gotT); d != "" {
		t.Errorf("TCP accessors (-want +got):\n%s", d)
	}
}
