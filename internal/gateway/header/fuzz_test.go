package header

import (
	"math/rand/v2"
	"testing"
	"unsafe"
)

// within reports whether v is empty or lies inside b.
func within(b, v []byte) bool {
	if len(v) == 0 {
		return true
	}
	if len(b) == 0 {
		return false
	}
	start := uintptr(unsafe.Pointer(&b[0]))
	vs := uintptr(unsafe.Pointer(&v[0]))
	return vs >= start && vs+uintptr(len(v)) <= start+uintptr(len(b))
}

func addSeeds(f *testing.F) {
	rng := rand.New(rand.NewPCG(13, 14))
	for range 32 {
		f.Add(genPacket(rng))
	}
	f.Add(good4)
	f.Add(good6)
	f.Add(v4(nil, seg(SYN, synOpts, nil)))
	f.Add(v6(IPv6HopByHop, chain(ext(IPv6Routing, 8), routing(IPv6DestOptions, 16, 0), ext(ProtocolTCP, 24)), seg(ACK, sackOpts, payload)))
	f.Add(v6(IPv6Fragment, ext(ProtocolTCP, 8), seg(ACK, nil, nil)))
	f.Add([]byte{})
}

func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Packet
		r := Parse(b, &p)
		if r <= ReasonInvalid || r >= SynFin {
			t.Fatalf("Parse(%x) = %v, not a header reason", b, r)
		}
		if r == OK || r == BadOption {
			for name, v := range map[string][]byte{"IP": p.IP, "TCP": p.TCP, "Payload": p.Payload, "Bytes": p.Bytes()} {
				if !within(b, v) {
					t.Fatalf("Parse(%x): %s view is not inside the buffer", b, name)
				}
			}
			if len(p.TCP) != p.TCP.DataOffset() || len(p.TCP) < TCPMinimumSize {
				t.Fatalf("Parse(%x): TCP view of %d bytes, data offset %d", b, len(p.TCP), p.TCP.DataOffset())
			}
			if p.V6 != (b[0]>>4 == 6) {
				t.Fatalf("Parse(%x): V6 = %v for version %d", b, p.V6, b[0]>>4)
			}
			ipLen := len(p.IP) + len(p.TCP) + len(p.Payload)
			if p.V6 {
				if want := IPv6FixedSize + int(IPv6(b).PayloadLength()); ipLen != want {
					t.Fatalf("Parse(%x): views cover %d bytes, IPv6 length says %d", b, ipLen, want)
				}
			} else if want := int(IPv4(b).TotalLength()); ipLen != want || len(p.IP) != IPv4(b).HeaderLength() {
				t.Fatalf("Parse(%x): views cover %d bytes, IPv4 total length says %d", b, ipLen, want)
			}
			// The checksum functions accept anything Parse accepts.
			p.VerifyTCPChecksum()
		}
		if r == OK {
			o := p.Opts
			if o.HasTS && (o.TSOffset < 22 || o.TSOffset+8 > len(p.TCP)) {
				t.Fatalf("Parse(%x): TSOffset %d outside the %d-byte header", b, o.TSOffset, len(p.TCP))
			}
			if o.SACKBlocks > 0 && (o.SACKOffset < 22 || o.SACKOffset+8*o.SACKBlocks > len(p.TCP) || o.SACKBlocks > MaxSACKBlocks) {
				t.Fatalf("Parse(%x): %d SACK blocks at %d outside the %d-byte header", b, o.SACKBlocks, o.SACKOffset, len(p.TCP))
			}
			if o.WScale > MaxWScale {
				t.Fatalf("Parse(%x): WScale %d", b, o.WScale)
			}
		}
		compareGopacket(t, b, r, &p)
		var ie ICMPError
		if ParseICMPError(b, &ie) == OK && (ie.SeqOffset+4 > len(b) || ie.ICMPOffset+ICMPHeaderSize > ie.SeqOffset) {
			t.Fatalf("ParseICMPError(%x): sequence number at %d, ICMP at %d, in %d bytes", b, ie.SeqOffset, ie.ICMPOffset, len(b))
		}
		var fx, slow Fixed
		okf, oks := Peek(b, &fx), peek(b, &slow)
		if okf != oks || okf && fx != slow {
			t.Fatalf("Peek(%x) = %+v, %v, general path %+v, %v", b, fx, okf, slow, oks)
		}
		if okf && (!within(b, fx.Src(b)) || !within(b, fx.Dst(b))) {
			t.Fatalf("Peek(%x): address views are not inside the buffer", b)
		}
		if r == OK && fx.Whole && (fx.SrcPort != p.TCP.SourcePort() || fx.DstPort != p.TCP.DestinationPort() || fx.Flags != p.TCP.Flags()) {
			t.Fatalf("Peek(%x) = %+v, Parse read ports %d, %d and flags %#x", b, fx, p.TCP.SourcePort(), p.TCP.DestinationPort(), p.TCP.Flags())
		}
	})
}

func FuzzOptions(f *testing.F) {
	f.Add(synOpts)
	f.Add(sackOpts)
	f.Add([]byte{OptNOP, OptWindowScale, 3, 200})
	f.Add([]byte{99, 1})
	f.Add([]byte{OptMSS})
	f.Fuzz(func(t *testing.T, opts []byte) {
		if len(opts) > 40 {
			opts = opts[:40]
		}
		s := seg(ACK, opts, nil)
		var o Options
		r := ParseOptions(s, &o)
		// ParseOptions must agree with Parse on the same segment, and with
		// gopacket's reading of the options.
		b := v4(nil, s)
		var p Packet
		if pr := Parse(b, &p); pr != r {
			t.Fatalf("ParseOptions(%x) = %v, but Parse = %v", opts, r, pr)
		}
		if r != OK && r != BadOption {
			t.Fatalf("ParseOptions(%x) = %v, want ok or bad_option", opts, r)
		}
		if r == OK && p.Opts != o {
			t.Fatalf("ParseOptions(%x) = %+v, Parse gives %+v", opts, o, p.Opts)
		}
		compareGopacket(t, b, r, &p)
		// A view shorter than its data offset is an error, not a panic.
		if r2 := ParseOptions(s[:len(s)-1], &o); len(s) > 20 && r2 != BadDataOffset {
			t.Fatalf("ParseOptions on a cut header = %v, want bad_data_offset", r2)
		}
	})
}

// TestParseCutAndMutated runs every prefix and many one-byte mutations of
// generated packets through Parse: nothing may panic, a cut packet is never
// OK, and whatever Parse accepts agrees with gopacket.
func TestParseCutAndMutated(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	var p Packet
	compared := 0
	for range 200 {
		b := genPacket(rng)
		if Parse(b, &p) != OK {
			t.Fatalf("Parse(%x) != ok", b)
		}
		full := len(p.Bytes())
		for n := range full {
			if r := Parse(b[:n], &p); r == OK {
				t.Fatalf("Parse of the first %d of %d bytes = ok", n, full)
			}
		}
		for range 50 {
			c := append([]byte(nil), b...)
			c[rng.IntN(len(c))] = byte(rng.Uint32())
			r := Parse(c, &p)
			if compareGopacket(t, c, r, &p) {
				compared++
			}
		}
	}
	if compared < 1000 {
		t.Errorf("only %d mutated packets compared with gopacket", compared)
	}
}
