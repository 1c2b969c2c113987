package header

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// gopacketView is what gopacket decodes from a packet, in the terms of Parse.
type gopacketView struct {
	v6                     bool
	src, dst               [16]byte
	ipLen                  int // length of the IP header incl. extension headers
	tcp                    *layers.TCP
	opts                   Options
	optReason              Reason // OK or BadOption
	sack                   []byte // data of the last SACK option
	tcpOffset, payloadOffs int
}

// decodeGopacket decodes b with gopacket and derives what Parse should
// report. ok is false when gopacket does not decode b as IP carrying TCP
// without error.
func decodeGopacket(b []byte) (gopacketView, bool) {
	var g gopacketView
	if len(b) == 0 {
		return g, false
	}
	first := layers.LayerTypeIPv4
	if b[0]>>4 == 6 {
		first = layers.LayerTypeIPv6
		g.v6 = true
		// gopacket 1.1.19 trims an IPv6 payload that follows a Hop-by-Hop
		// header to the payload length counted from the end of that header,
		// not of the fixed header (RFC 8200 §3), so it keeps trailing bytes.
		// Give it the packet without them.
		if len(b) >= IPv6FixedSize {
			if n := IPv6FixedSize + int(binary.BigEndian.Uint16(b[4:])); n < len(b) {
				b = b[:n]
			}
		}
	}
	pkt := gopacket.NewPacket(b, first, gopacket.DecodeOptions{NoCopy: true})
	if pkt.ErrorLayer() != nil {
		return g, false
	}
	tl, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if tl == nil {
		return g, false
	}
	g.tcp = tl
	var ipTotal int
	if g.v6 {
		ip := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		copy(g.src[:], ip.SrcIP.To16())
		copy(g.dst[:], ip.DstIP.To16())
		ipTotal = IPv6FixedSize + int(ip.Length)
	} else {
		ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		copy(g.src[:4], ip.SrcIP.To4())
		copy(g.dst[:4], ip.DstIP.To4())
		ipTotal = int(ip.Length)
	}
	g.ipLen = ipTotal - len(tl.Contents) - len(tl.Payload)
	g.tcpOffset = g.ipLen
	g.payloadOffs = g.ipLen + len(tl.Contents)

	// Options as ParseOptions should see them: the last occurrence counts,
	// known kinds with a wrong length make the header bad.
	g.optReason = OK
	pos := TCPMinimumSize
	bad := func() { g.optReason = BadOption }
loop:
	for _, o := range tl.Options {
		switch o.OptionType {
		case layers.TCPOptionKindEndList:
			break loop
		case layers.TCPOptionKindNop:
			pos++
			continue
		case layers.TCPOptionKindMSS:
			if len(o.OptionData) != 2 {
				bad()
				break loop
			}
			g.opts.MSS, g.opts.HasMSS = binary.BigEndian.Uint16(o.OptionData), true
		case layers.TCPOptionKindWindowScale:
			if len(o.OptionData) != 1 {
				bad()
				break loop
			}
			g.opts.WScale, g.opts.HasWScale, g.opts.WScaleClamped = o.OptionData[0], true, false
			if g.opts.WScale > 14 {
				g.opts.WScale, g.opts.WScaleClamped = 14, true
			}
		case layers.TCPOptionKindSACKPermitted:
			if len(o.OptionData) != 0 {
				bad()
				break loop
			}
			g.opts.SACKPermitted = true
		case layers.TCPOptionKindSACK:
			n := len(o.OptionData) / 8
			if len(o.OptionData)%8 != 0 || n < 1 || n > 4 {
				bad()
				break loop
			}
			g.opts.SACKOffset, g.opts.SACKBlocks = pos+2, n
			g.sack = o.OptionData
		case layers.TCPOptionKindTimestamps:
			if len(o.OptionData) != 8 {
				bad()
				break loop
			}
			g.opts.HasTS = true
			g.opts.TSVal = binary.BigEndian.Uint32(o.OptionData)
			g.opts.TSEcr = binary.BigEndian.Uint32(o.OptionData[4:])
			g.opts.TSOffset = pos + 2
		}
		pos += int(o.OptionLength)
	}
	if g.optReason != OK {
		g.opts = Options{}
	}
	return g, true
}

// compareGopacket checks that Parse's result r and p agree with gopacket's
// decoding of b. It returns false when there was nothing to compare.
func compareGopacket(t testing.TB, b []byte, r Reason, p *Packet) bool {
	t.Helper()
	if r != OK && r != BadOption {
		return false
	}
	g, ok := decodeGopacket(b)
	if !ok {
		return false
	}
	if r != g.optReason {
		t.Fatalf("Parse(%x) = %v, gopacket's options say %v", b, r, g.optReason)
	}
	if p.V6 != g.v6 || p.Src != g.src || p.Dst != g.dst {
		t.Errorf("Parse(%x): v6/src/dst = %v %x %x, want %v %x %x", b, p.V6, p.Src, p.Dst, g.v6, g.src, g.dst)
	}
	checkView(t, "IP", b, p.IP, 0, g.ipLen)
	checkView(t, "TCP", b, p.TCP, g.tcpOffset, len(g.tcp.Contents))
	checkView(t, "Payload", b, p.Payload, g.payloadOffs, len(g.tcp.Payload))
	tc := p.TCP
	got := []uint64{uint64(tc.SourcePort()), uint64(tc.DestinationPort()), uint64(tc.SequenceNumber()),
		uint64(tc.AckNumber()), uint64(tc.DataOffset()), uint64(tc.WindowSize()), uint64(tc.Checksum()),
		uint64(tc.UrgentPointer()), uint64(tc.Flags() & FIN), uint64(tc.Flags() & SYN), uint64(tc.Flags() & RST),
		uint64(tc.Flags() & PSH), uint64(tc.Flags() & ACK), uint64(tc.Flags() & URG), uint64(tc.Flags() & ECE),
		uint64(tc.Flags() & CWR)}
	gt := g.tcp
	want := []uint64{uint64(gt.SrcPort), uint64(gt.DstPort), uint64(gt.Seq), uint64(gt.Ack),
		uint64(gt.DataOffset) * 4, uint64(gt.Window), uint64(gt.Checksum), uint64(gt.Urgent),
		bit(gt.FIN, FIN), bit(gt.SYN, SYN), bit(gt.RST, RST), bit(gt.PSH, PSH), bit(gt.ACK, ACK),
		bit(gt.URG, URG), bit(gt.ECE, ECE), bit(gt.CWR, CWR)}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Parse(%x) TCP fields differ from gopacket (-gopacket +ours):\n%s", b, d)
	}
	if r == OK {
		if d := cmp.Diff(g.opts, p.Opts); d != "" {
			t.Errorf("Parse(%x) options differ from gopacket (-gopacket +ours):\n%s", b, d)
		}
		for k := 0; k < p.Opts.SACKBlocks; k++ {
			l, rr := p.TCP.SACKBlock(&p.Opts, k)
			wl := binary.BigEndian.Uint32(g.sack[8*k:])
			wr := binary.BigEndian.Uint32(g.sack[8*k+4:])
			if l != wl || rr != wr {
				t.Errorf("SACKBlock(%d) of %x = %d, %d, want %d, %d", k, b, l, rr, wl, wr)
			}
		}
	}
	if !p.V6 {
		ip := IPv4(p.IP)
		if ip.HeaderLength() != len(p.IP) {
			t.Errorf("IPv4.HeaderLength() = %d, want %d", ip.HeaderLength(), len(p.IP))
		}
	}
	return true
}

func bit(set bool, f uint8) uint64 {
	if set {
		return uint64(f)
	}
	return 0
}

// checkView checks that v is exactly b[off:off+n], the same memory.
func checkView(t testing.TB, name string, b, v []byte, off, n int) {
	t.Helper()
	if len(v) != n {
		t.Errorf("%s view of %x has length %d, want %d", name, b, len(v), n)
		return
	}
	if n > 0 && off+n <= len(b) && &v[0] != &b[off] {
		t.Errorf("%s view of %x does not start at offset %d of the buffer", name, b, off)
	}
}

// genPacket builds a random but valid IPv4 or IPv6 TCP packet with gopacket:
// addresses from 198.18.0.0/15 and 2001:db8::/32, random ports, numbers,
// flags, options (SACK blocks, timestamps, unknown kinds, window scales
// above 14), IPv4 options, IPv6 hop-by-hop and destination options headers,
// payloads, and sometimes trailing bytes past the IP length.
func genPacket(rng *rand.Rand) []byte {
	tcp := &layers.TCP{
		SrcPort: layers.TCPPort(rng.Uint32()),
		DstPort: layers.TCPPort(rng.Uint32()),
		Seq:     rng.Uint32(),
		Ack:     rng.Uint32(),
		Window:  uint16(rng.Uint32()),
		Urgent:  uint16(rng.Uint32()),
	}
	f := uint8(rng.Uint32())
	tcp.FIN, tcp.SYN, tcp.RST, tcp.PSH = f&FIN != 0, f&SYN != 0, f&RST != 0, f&PSH != 0
	tcp.ACK, tcp.URG, tcp.ECE, tcp.CWR = f&ACK != 0, f&URG != 0, f&ECE != 0, f&CWR != 0
	tcp.Options = genTCPOptions(rng)

	payload := make([]byte, rng.IntN(200))
	if rng.IntN(8) == 0 {
		payload = make([]byte, 1460)
	}
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}

	buf := gopacket.NewSerializeBuffer()
	so := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	var ls []gopacket.SerializableLayer
	if rng.IntN(2) == 0 {
		ip := &layers.IPv4{
			Version:  4,
			TOS:      uint8(rng.Uint32()),
			Id:       uint16(rng.Uint32()),
			TTL:      uint8(rng.Uint32()),
			Protocol: layers.IPProtocolTCP,
			SrcIP:    net.IP{198, 18 + byte(rng.IntN(2)), byte(rng.Uint32()), byte(rng.Uint32())},
			DstIP:    net.IP{198, 18 + byte(rng.IntN(2)), byte(rng.Uint32()), byte(rng.Uint32())},
		}
		if rng.IntN(2) == 0 {
			ip.Flags = layers.IPv4DontFragment
		}
		for range rng.IntN(3) {
			if rng.IntN(2) == 0 {
				ip.Options = append(ip.Options, layers.IPv4Option{OptionType: 1})
				continue
			}
			d := make([]byte, 2*(1+rng.IntN(3))) // gopacket rejects length 2
			ip.Options = append(ip.Options, layers.IPv4Option{OptionType: 0x94, OptionLength: uint8(2 + len(d)), OptionData: d})
		}
		tcp.SetNetworkLayerForChecksum(ip)
		ls = append(ls, ip)
	} else {
		src := net.IP{0x20, 0x01, 0x0d, 0xb8, 15: 0}
		dst := net.IP{0x20, 0x01, 0x0d, 0xb8, 15: 0}
		for i := 4; i < 16; i++ {
			src[i], dst[i] = byte(rng.Uint32()), byte(rng.Uint32())
		}
		ip := &layers.IPv6{
			Version:      6,
			TrafficClass: uint8(rng.Uint32()),
			FlowLabel:    rng.Uint32() & 0xfffff,
			NextHeader:   layers.IPProtocolTCP,
			HopLimit:     uint8(rng.Uint32()),
			SrcIP:        src,
			DstIP:        dst,
		}
		ls = append(ls, ip)
		next := &ip.NextHeader
		if rng.IntN(3) == 0 {
			// gopacket pads TLV options to 8 only when the options are 6+8k
			// bytes long; use one option of 4+8k data bytes.
			hbh := &layers.IPv6HopByHop{}
			hbh.NextHeader = layers.IPProtocolTCP
			hbh.Options = []*layers.IPv6HopByHopOption{{OptionType: 0x1e, OptionData: make([]byte, 4+8*rng.IntN(3))}}
			ip.HopByHop = hbh
			next = &hbh.NextHeader
		}
		for range rng.IntN(3) {
			d := &layers.IPv6Destination{}
			d.NextHeader = layers.IPProtocolTCP
			d.Options = []*layers.IPv6DestinationOption{{OptionType: 0x1e, OptionData: make([]byte, 4+8*rng.IntN(3))}}
			*next = layers.IPProtocolIPv6Destination
			next = &d.NextHeader
			ls = append(ls, d)
		}
		tcp.SetNetworkLayerForChecksum(ip)
	}
	ls = append(ls, tcp, gopacket.Payload(payload))
	if err := gopacket.SerializeLayers(buf, so, ls...); err != nil {
		panic(err)
	}
	b := buf.Bytes()
	if rng.IntN(8) == 0 {
		b = append(b, make([]byte, 1+rng.IntN(20))...) // link-layer padding
	}
	return b
}

// genTCPOptions returns a random valid option list of at most 40 bytes.
func genTCPOptions(rng *rand.Rand) []layers.TCPOption {
	var opts []layers.TCPOption
	room := 40
	add := func(kind layers.TCPOptionKind, data []byte) {
		n := 2 + len(data)
		if kind <= 1 {
			n = 1
		}
		if n > room {
			return
		}
		room -= n
		opts = append(opts, layers.TCPOption{OptionType: kind, OptionLength: uint8(n), OptionData: data})
	}
	rnd := func(n int) []byte {
		d := make([]byte, n)
		for i := range d {
			d[i] = byte(rng.Uint32())
		}
		return d
	}
	for range rng.IntN(8) {
		switch rng.IntN(8) {
		case 0:
			add(layers.TCPOptionKindNop, nil)
		case 1:
			add(layers.TCPOptionKindMSS, rnd(2))
		case 2:
			add(layers.TCPOptionKindWindowScale, []byte{byte(rng.IntN(20))})
		case 3:
			add(layers.TCPOptionKindSACKPermitted, nil)
		case 4:
			add(layers.TCPOptionKindSACK, rnd(8*(1+rng.IntN(4))))
		case 5:
			add(layers.TCPOptionKindTimestamps, rnd(8))
		case 6:
			add(layers.TCPOptionKind(30+rng.IntN(200)), rnd(rng.IntN(7)))
		case 7:
			if rng.IntN(4) == 0 {
				add(layers.TCPOptionKindEndList, nil)
				return opts
			}
		}
	}
	return opts
}

func TestParseMatchesGopacket(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var p Packet
	var n4, n6, ext, sack, ts int
	for i := range 5000 {
		b := genPacket(rng)
		if r := Parse(b, &p); r != OK {
			t.Fatalf("packet %d: Parse(%x) = %v, want ok", i, b, r)
		}
		if !compareGopacket(t, b, OK, &p) {
			t.Fatalf("packet %d: gopacket does not decode %x", i, b)
		}
		if !p.VerifyTCPChecksum() {
			t.Errorf("packet %d: VerifyTCPChecksum(%x) = false, want true (gopacket's checksum)", i, b)
		}
		want := p.TCP.Checksum()
		p.SetTCPChecksum()
		if got := p.TCP.Checksum(); got != want {
			t.Errorf("packet %d: SetTCPChecksum gives %#04x, gopacket %#04x", i, got, want)
		}
		if p.V6 {
			n6++
			if len(p.IP) > IPv6FixedSize {
				ext++
			}
		} else {
			n4++
			if !VerifyIPv4Checksum(p.IP) {
				t.Errorf("packet %d: VerifyIPv4Checksum(%x) = false, want true", i, p.IP)
			}
			want := IPv4(p.IP).Checksum()
			SetIPv4Checksum(p.IP)
			if got := IPv4(p.IP).Checksum(); got != want {
				t.Errorf("packet %d: SetIPv4Checksum gives %#04x, gopacket %#04x", i, got, want)
			}
		}
		if p.Opts.SACKBlocks > 0 {
			sack++
		}
		if p.Opts.HasTS {
			ts++
		}
		if !bytes.Equal(p.Bytes(), b[:len(p.IP)+len(p.TCP)+len(p.Payload)]) {
			t.Fatalf("packet %d: Bytes() is not the start of the buffer", i)
		}
	}
	// The generator must actually cover the interesting shapes.
	for name, n := range map[string]int{"ipv4": n4, "ipv6": n6, "ipv6 ext": ext, "sack": sack, "ts": ts} {
		if n < 100 {
			t.Errorf("only %d packets with %s", n, name)
		}
	}
}
