package daemon

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/synwall/synwall/internal/conntrack"
	"github.com/synwall/synwall/internal/engine"
)

// fakeCarrier records what the kernel path asks of the hand-off.
type fakeCarrier struct {
	known     map[[2]netip.AddrPort]conntrack.Offsets
	submitted []conntrack.Flow
	stale     []netip.AddrPort // clients of RemoveStaleNow calls
	full      bool
}

func (c *fakeCarrier) Submit(f *conntrack.Flow) bool {
	if c.full {
		return false
	}
	c.submitted = append(c.submitted, *f)
	return true
}

func (c *fakeCarrier) Known(client, server netip.AddrPort) (conntrack.Offsets, bool) {
	o, ok := c.known[[2]netip.AddrPort{client, server}]
	return o, ok
}

func (c *fakeCarrier) RemoveStaleNow(client, server netip.AddrPort) conntrack.Result {
	c.stale = append(c.stale, client)
	return conntrack.Result{Op: conntrack.OpRemoveStale, Found: true, Removed: true, State: conntrack.StateTimeWait}
}

// fakeInner is the engine: it returns a fixed result and counts calls.
type fakeInner struct {
	res   engine.Result
	calls int
}

func (f *fakeInner) Process(pkt []byte, meta engine.Meta, now time.Time, r *engine.Result) {
	f.calls++
	*r = f.res
}

// segment builds an IP/TCP packet with gopacket.
func ktSegment(t *testing.T, src, dst netip.AddrPort, seq, ack uint32, flags string, tsval, tsecr uint32) []byte {
	t.Helper()
	tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()), Seq: seq, Ack: ack, Window: 100}
	for _, c := range flags {
		switch c {
		case 'S':
			tcp.SYN = true
		case 'A':
			tcp.ACK = true
		case 'R':
			tcp.RST = true
		}
	}
	if tsval != 0 {
		d := make([]byte, 8)
		binary.BigEndian.PutUint32(d, tsval)
		binary.BigEndian.PutUint32(d[4:], tsecr)
		tcp.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindNop, OptionLength: 1}, {OptionType: layers.TCPOptionKindNop, OptionLength: 1},
			{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: d}}
	}
	var ip gopacket.SerializableLayer
	if src.Addr().Is4() {
		l := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
		tcp.SetNetworkLayerForChecksum(l)
		ip = l
	} else {
		l := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
		tcp.SetNetworkLayerForChecksum(l)
		ip = l
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, tcp); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decoded is what a test checks of a packet the kernel path built.
type decoded struct {
	Seq, Ack, TSval, TSecr uint32
	RST                    bool
	ChecksumOK             bool
}

func decode(t *testing.T, b []byte) decoded {
	t.Helper()
	first := layers.LayerTypeIPv4
	if b[0]>>4 == 6 {
		first = layers.LayerTypeIPv6
	}
	p := gopacket.NewPacket(b, first, gopacket.Default)
	tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if tcp == nil {
		t.Fatalf("no TCP in %x", b)
	}
	d := decoded{Seq: tcp.Seq, Ack: tcp.Ack, RST: tcp.RST}
	for _, o := range tcp.Options {
		if o.OptionType == layers.TCPOptionKindTimestamps {
			d.TSval, d.TSecr = binary.BigEndian.Uint32(o.OptionData), binary.BigEndian.Uint32(o.OptionData[4:])
		}
	}
	// Recompute with gopacket and compare.
	got := tcp.Checksum
	v, _ := peekTCP(b)
	c := append([]byte(nil), b...)
	setTCPChecksum(c, &v)
	want := binary.BigEndian.Uint16(c[v.tcp+16:])
	re := segmentChecksum(t, p)
	d.ChecksumOK = got == want && got == re
	return d
}

// segmentChecksum is gopacket's checksum of the decoded segment.
func segmentChecksum(t *testing.T, p gopacket.Packet) uint16 {
	t.Helper()
	tcp := *p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	switch ip := p.NetworkLayer().(type) {
	case *layers.IPv4:
		tcp.SetNetworkLayerForChecksum(ip)
	case *layers.IPv6:
		tcp.SetNetworkLayerForChecksum(ip)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, &tcp, gopacket.Payload(tcp.Payload)); err != nil {
		t.Fatal(err)
	}
	return binary.BigEndian.Uint16(buf.Bytes()[16:])
}

func TestKernelPathServerRST(t *testing.T) {
	for _, fam := range []struct {
		name           string
		client, server netip.AddrPort
	}{
		{"ipv4", netip.MustParseAddrPort("198.18.1.2:40000"), netip.MustParseAddrPort("198.18.3.2:80")},
		{"ipv6", netip.MustParseAddrPort("[2001:db8:1::2]:40000"), netip.MustParseAddrPort("[2001:db8:3::2]:80")},
	} {
		t.Run(fam.name, func(t *testing.T) {
			off := conntrack.Offsets{Seq: 0x20000000, TS: 500, Timestamps: true}
			c := &fakeCarrier{known: map[[2]netip.AddrPort]conntrack.Offsets{{fam.client, fam.server}: off}}
			inner := &fakeInner{}
			k := newKernelPath(inner, c, &kernelPathStats{})
			rst := ktSegment(t, fam.server, fam.client, 0xf0000000+6, 77, "RA", 1500, 9)
			var r engine.Result
			k.Process(rst, engine.Meta{}, time.Now(), &r)
			if inner.calls != 0 {
				t.Errorf("the engine saw the RST of a handed-off connection")
			}
			if r.Verdict != engine.Drop || len(r.Inject) != 1 || r.Event != engine.EventTranslated || r.Dir != engine.DirToClient {
				t.Fatalf("result = %+v, want drop + one injected packet", r)
			}
			got := decode(t, r.Inject[0])
			want := decoded{Seq: 0x10000000 + 6, Ack: 77, TSval: 1000, TSecr: 9, RST: true, ChecksumOK: true}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("translated RST (-want +got):\n%s", diff)
			}
			// The original is untouched (the kernel drops it).
			if d := decode(t, rst); d.Seq != 0xf0000006 {
				t.Errorf("the original RST was changed: seq %#x", d.Seq)
			}
			// A RST of another connection goes to the engine.
			other := ktSegment(t, fam.server, netip.AddrPortFrom(fam.client.Addr(), 40001), 1, 2, "R", 0, 0)
			r = engine.Result{}
			k.Process(other, engine.Meta{}, time.Now(), &r)
			if inner.calls != 1 {
				t.Errorf("a RST of an unknown connection did not reach the engine")
			}
		})
	}
}

func TestKernelPathSubmitsHandoff(t *testing.T) {
	c := &fakeCarrier{}
	h := engine.Handoff{Valid: true, ClientPort: 40000, ServerPort: 80, WScale: true, Timestamps: true,
		ClientWScale: 7, ServerWScale: 9, CookieISN: 1, ServerISN: 2, ITS: 3, ServerTSval: 4}
	copy(h.Client[:], []byte{198, 18, 1, 2})
	copy(h.Server[:], []byte{198, 18, 3, 2})
	inner := &fakeInner{res: engine.Result{Verdict: engine.Drop, Event: engine.EventServerUp, Handoff: h}}
	st := &kernelPathStats{}
	k := newKernelPath(inner, c, st)
	pkt := ktSegment(t, netip.MustParseAddrPort("198.18.3.2:80"), netip.MustParseAddrPort("198.18.1.2:40000"), 2, 1, "SA", 0, 0)
	var r engine.Result
	k.Process(pkt, engine.Meta{}, time.Now(), &r)
	want := []conntrack.Flow{{
		Client: netip.MustParseAddrPort("198.18.1.2:40000"), Server: netip.MustParseAddrPort("198.18.3.2:80"),
		ClientWScale: 7, ServerWScale: 9, Opts: conntrack.OptWindowScale | conntrack.OptTimestamps,
		CookieISN: 1, ServerISN: 2, ITS: 3, ServerTSval: 4,
	}}
	if diff := cmp.Diff(want, c.submitted, cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
		t.Errorf("submitted (-want +got):\n%s", diff)
	}
	c.full = true
	k.Process(pkt, engine.Meta{}, time.Now(), &r)
	if st.handoffRecords.Load() != 2 || st.submitRefused.Load() != 1 {
		t.Errorf("records %d refused %d, want 2 and 1", st.handoffRecords.Load(), st.submitRefused.Load())
	}
}

func TestKernelPathStaleCheck(t *testing.T) {
	client, server := netip.MustParseAddrPort("198.18.1.2:40000"), netip.MustParseAddrPort("198.18.3.2:80")
	c := &fakeCarrier{known: map[[2]netip.AddrPort]conntrack.Offsets{{client, server}: {}}}
	inner := &fakeInner{res: engine.Result{Verdict: engine.Drop, Event: engine.EventSynAnswered}}
	st := &kernelPathStats{}
	k := newKernelPath(inner, c, st)
	syn := ktSegment(t, client, server, 100, 0, "S", 0, 0)
	other := ktSegment(t, netip.AddrPortFrom(client.Addr(), 40001), server, 100, 0, "S", 0, 0)
	now := time.Unix(100, 0)
	var r engine.Result
	k.Process(other, engine.Meta{}, now, &r)
	if len(c.stale) != 0 {
		t.Fatalf("a SYN on a tuple never handed off was checked: %v", c.stale)
	}
	for range staleChecksPerSecond + 5 {
		k.Process(syn, engine.Meta{}, now, &r)
	}
	if len(c.stale) != staleChecksPerSecond || st.staleSkipped.Load() != 5 || st.staleRemoved.Load() != staleChecksPerSecond {
		t.Errorf("checks %d skipped %d removed %d; want %d, 5, %d", len(c.stale), st.staleSkipped.Load(), st.staleRemoved.Load(),
			staleChecksPerSecond, staleChecksPerSecond)
	}
	k.Process(syn, engine.Meta{}, now.Add(time.Second), &r)
	if len(c.stale) != staleChecksPerSecond+1 {
		t.Errorf("no check in the next second")
	}
}

func TestKernelPathNoAllocs(t *testing.T) {
	c := &fakeCarrier{}
	k := newKernelPath(&fakeInner{res: engine.Result{Verdict: engine.Accept, Event: engine.EventTranslated}}, c, &kernelPathStats{})
	pkt := ktSegment(t, netip.MustParseAddrPort("198.18.1.2:40000"), netip.MustParseAddrPort("198.18.3.2:80"), 1, 2, "A", 5, 6)
	var r engine.Result
	now := time.Now()
	if n := testing.AllocsPerRun(1000, func() { k.Process(pkt, engine.Meta{}, now, &r) }); n != 0 {
		t.Errorf("Process allocates %v times per packet, want 0", n)
	}
	// A translated ICMP error and a translated RST allocate nothing either.
	client, server := netip.MustParseAddrPort("[2001:db8:1::2]:40000"), netip.MustParseAddrPort("[2001:db8:3::2]:80")
	c.known = map[[2]netip.AddrPort]conntrack.Offsets{{client, server}: {Seq: 7, TS: 3, Timestamps: true}}
	icmp := icmpQuoting(t, netip.MustParseAddrPort("[2001:db8:1::1]:0"), server, client, 99)
	rst := ktSegment(t, server, client, 5, 6, "RA", 10, 11)
	for name, p := range map[string][]byte{"icmp": icmp, "rst": rst} {
		if n := testing.AllocsPerRun(1000, func() { k.Process(p, engine.Meta{}, now, &r) }); n != 0 || r.Event != engine.EventTranslated {
			t.Errorf("%s: %v allocs, event %v; want 0 and translated", name, n, r.Event)
		}
	}
}

func TestPeekTCPRefuses(t *testing.T) {
	good := ktSegment(t, netip.MustParseAddrPort("198.18.1.2:40000"), netip.MustParseAddrPort("198.18.3.2:80"), 1, 2, "A", 0, 0)
	frag := append([]byte(nil), good...)
	frag[6] |= 0x20 // more fragments
	short := good[:30]
	badOff := append([]byte(nil), good...)
	badOff[20+12] = 0xf0 // data offset 60 past the end
	udp := append([]byte(nil), good...)
	udp[9] = 17
	for name, b := range map[string][]byte{"fragment": frag, "truncated": short, "data offset": badOff, "udp": udp, "empty": nil} {
		if _, ok := peekTCP(b); ok {
			t.Errorf("peekTCP(%s) = ok, want refused", name)
		}
	}
	if _, ok := peekTCP(good); !ok {
		t.Error("peekTCP(good) refused")
	}
}

// icmpQuoting builds an ICMP error (IPv4 fragmentation needed, IPv6
// packet too big) from router to the server that quotes the server's
// segment to the client with sequence number seq (the quote: the IP header
// and the first 8 bytes of TCP, RFC 792).
func icmpQuoting(t *testing.T, router, server, client netip.AddrPort, seq uint32) []byte {
	t.Helper()
	inner := ktSegment(t, server, client, seq, 1, "A", 0, 0)
	hl := 20
	if server.Addr().Is6() {
		hl = 40
	}
	quote := inner[:hl+8]
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	var err error
	if server.Addr().Is4() {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: router.Addr().AsSlice(), DstIP: server.Addr().AsSlice()}
		icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 4), Seq: 1400} // next-hop MTU 1400
		err = gopacket.SerializeLayers(buf, opts, ip, icmp, gopacket.Payload(quote))
	} else {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: router.Addr().AsSlice(), DstIP: server.Addr().AsSlice()}
		icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(2, 0)}
		icmp.SetNetworkLayerForChecksum(ip)
		mtu := []byte{0, 0, 0x05, 0x00} // 1280
		err = gopacket.SerializeLayers(buf, opts, ip, icmp, gopacket.Payload(append(mtu, quote...)))
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// icmpChecks decodes an ICMP error with gopacket: the quoted sequence
// number, and whether the checksum gopacket computes for it agrees.
func icmpChecks(t *testing.T, b []byte) (seq uint32, checksumOK bool) {
	t.Helper()
	if b[0]>>4 == 4 {
		p := gopacket.NewPacket(b, layers.LayerTypeIPv4, gopacket.Default)
		ic := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		seq = binary.BigEndian.Uint32(ic.Payload[20+4:])
		re := *ic
		buf := gopacket.NewSerializeBuffer()
		gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, &re, gopacket.Payload(ic.Payload))
		return seq, binary.BigEndian.Uint16(buf.Bytes()[2:]) == ic.Checksum
	}
	p := gopacket.NewPacket(b, layers.LayerTypeIPv6, gopacket.Default)
	ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	ic := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
	seq = binary.BigEndian.Uint32(ic.Payload[4+40+4:])
	re := *ic
	re.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, &re, gopacket.Payload(ic.Payload))
	return seq, binary.BigEndian.Uint16(buf.Bytes()[2:]) == ic.Checksum
}

func TestKernelPathICMPError(t *testing.T) {
	for _, fam := range []struct {
		name                   string
		client, server, router netip.AddrPort
	}{
		{"ipv4", netip.MustParseAddrPort("198.18.1.2:40000"), netip.MustParseAddrPort("198.18.3.2:80"), netip.MustParseAddrPort("198.18.1.1:0")},
		{"ipv6", netip.MustParseAddrPort("[2001:db8:1::2]:40000"), netip.MustParseAddrPort("[2001:db8:3::2]:80"), netip.MustParseAddrPort("[2001:db8:1::1]:0")},
	} {
		t.Run(fam.name, func(t *testing.T) {
			off := conntrack.Offsets{Seq: 0x20000000}
			c := &fakeCarrier{known: map[[2]netip.AddrPort]conntrack.Offsets{{fam.client, fam.server}: off}}
			inner := &fakeInner{}
			st := &kernelPathStats{}
			k := newKernelPath(inner, c, st)
			const cookieSeq = 0x10000005 // as the router saw it: in the cookie's space
			pkt := icmpQuoting(t, fam.router, fam.server, fam.client, cookieSeq)
			if seq, ok := icmpChecks(t, pkt); seq != cookieSeq || !ok {
				t.Fatalf("crafted error: seq %#x checksum ok %v", seq, ok)
			}
			var r engine.Result
			k.Process(pkt, engine.Meta{}, time.Now(), &r)
			if inner.calls != 0 || r.Verdict != engine.Drop || len(r.Inject) != 1 || r.Dir != engine.DirToServer {
				t.Fatalf("result %+v (engine called %d times), want the error dropped and a translated copy injected", r, inner.calls)
			}
			seq, ok := icmpChecks(t, r.Inject[0])
			if want := uint32(cookieSeq) - off.Seq; seq != want || !ok {
				t.Errorf("translated error: quoted seq %#x checksum ok %v; want %#x and a valid checksum", seq, ok, want)
			}
			if st.icmpTranslated.Load() != 1 {
				t.Errorf("icmpTranslated = %d, want 1", st.icmpTranslated.Load())
			}
			// An error about a connection synwall does not know goes to
			// the engine.
			other := icmpQuoting(t, fam.router, fam.server, netip.AddrPortFrom(fam.client.Addr(), 40001), cookieSeq)
			k.Process(other, engine.Meta{}, time.Now(), &r)
			if inner.calls != 1 {
				t.Errorf("an error about an unknown connection did not reach the engine")
			}
		})
	}
}
