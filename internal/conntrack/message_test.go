package conntrack

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
)

func testFlow4() Flow {
	return Flow{
		Client:       netip.MustParseAddrPort("198.18.1.2:40000"),
		Server:       netip.MustParseAddrPort("198.18.3.2:80"),
		ClientWScale: 7,
		ServerWScale: 9,
		Opts:         OptWindowScale | OptSACK | OptTimestamps,
		CookieISN:    0x10000000,
		ServerISN:    0x30000000,
		ITS:          1000,
		ServerTSval:  5000,
	}
}

func testFlow6() Flow {
	f := testFlow4()
	f.Client = netip.MustParseAddrPort("[2001:db8:1::2]:40000")
	f.Server = netip.MustParseAddrPort("[2001:db8:3::2]:443")
	return f
}

// decodeCreate decodes a create message with github.com/ti-mo/conntrack,
// an independent reading of the ctnetlink format.
func decodeCreate(t *testing.T, b []byte) (ct.Flow, netlink.Header) {
	t.Helper()
	var m netlink.Message
	if err := m.UnmarshalBinary(b); err != nil {
		t.Fatalf("netlink.Message.UnmarshalBinary: %v", err)
	}
	var ev ct.Event
	if err := ev.Unmarshal(m); err != nil {
		t.Fatalf("conntrack.Event.Unmarshal: %v", err)
	}
	if ev.Flow == nil {
		t.Fatalf("conntrack.Event.Unmarshal: no flow in %v", ev)
	}
	return *ev.Flow, m.Header
}

func tuple(src, dst netip.AddrPort) ct.Tuple {
	return ct.Tuple{
		IP:    ct.IPTuple{SourceAddress: src.Addr().Unmap(), DestinationAddress: dst.Addr().Unmap()},
		Proto: ct.ProtoTuple{Protocol: 6, SourcePort: src.Port(), DestinationPort: dst.Port()},
	}
}

func TestAppendCreate(t *testing.T) {
	noScale := testFlow4()
	noScale.Opts = OptSACK | OptTimestamps
	noTS := testFlow4()
	noTS.Opts = OptWindowScale
	sameISN := testFlow4()
	sameISN.ServerISN = sameISN.CookieISN
	wrap := testFlow4()
	wrap.CookieISN, wrap.ServerISN = 5, 0xfffffff0 // offset crosses 2^32
	wrap.ITS, wrap.ServerTSval = 0xfffffff0, 16
	zeroISN := testFlow4()
	zeroISN.ServerISN = 0
	mapped := testFlow4()
	mapped.Client = netip.AddrPortFrom(netip.AddrFrom16(mapped.Client.Addr().As16()), mapped.Client.Port())

	const mark, timeout = 0x53570000, 300
	tests := []struct {
		name string
		f    Flow
		want ct.Flow
	}{
		{"ipv4 all options", testFlow4(), ct.Flow{
			Timeout: timeout, Mark: mark, Status: ct.StatusSeenReply | ct.StatusAssured,
			ProtoInfo: ct.ProtoInfo{TCP: &ct.ProtoInfoTCP{State: 3, OriginalWindowScale: 7, ReplyWindowScale: 9,
				OriginalFlags: 0x0bff, ReplyFlags: 0x0bff}},
			SeqAdjReply: ct.SequenceAdjust{Direction: true, Position: 0x30000000, OffsetBefore: 0xe0000000, OffsetAfter: 0xe0000000},
			SynProxy:    ct.SynProxy{ISN: 0x10000000, ITS: 1000, TSOff: 4000},
		}},
		{"ipv6 all options", testFlow6(), ct.Flow{
			Timeout: timeout, Mark: mark, Status: ct.StatusSeenReply | ct.StatusAssured,
			ProtoInfo: ct.ProtoInfo{TCP: &ct.ProtoInfoTCP{State: 3, OriginalWindowScale: 7, ReplyWindowScale: 9,
				OriginalFlags: 0x0bff, ReplyFlags: 0x0bff}},
			SeqAdjReply: ct.SequenceAdjust{Direction: true, Position: 0x30000000, OffsetBefore: 0xe0000000, OffsetAfter: 0xe0000000},
			SynProxy:    ct.SynProxy{ISN: 0x10000000, ITS: 1000, TSOff: 4000},
		}},
		{"no window scaling: scales 0, flag off", noScale, ct.Flow{
			Timeout: timeout, Mark: mark, Status: ct.StatusSeenReply | ct.StatusAssured,
			ProtoInfo:   ct.ProtoInfo{TCP: &ct.ProtoInfoTCP{State: 3, OriginalFlags: 0x0aff, ReplyFlags: 0x0aff}},
			SeqAdjReply: ct.SequenceAdjust{Direction: true, Position: 0x30000000, OffsetBefore: 0xe0000000, OffsetAfter: 0xe0000000},
			SynProxy:    ct.SynProxy{ISN: 0x10000000, ITS: 1000, TSOff: 4000},
		}},
		{"no timestamps: ITS and TSOFF 0", noTS, ct.Flow{
			Timeout: timeout, Mark: mark, Status: ct.StatusSeenReply | ct.StatusAssured,
			ProtoInfo: ct.ProtoInfo{TCP: &ct.ProtoInfoTCP{State: 3, OriginalWindowScale: 7, ReplyWindowScale: 9,
				OriginalFlags: 0x09ff, ReplyFlags: 0x09ff}},
			SeqAdjReply: ct.SequenceAdjust{Direction: true, Position: 0x30000000, OffsetBefore: 0xe0000000, OffsetAfter: 0xe0000000},
			SynProxy:    ct.SynProxy{ISN: 0x10000000},
		}},
		{"equal ISNs: no sequence adjustment", sameISN, ct.Flow{
			Timeout: timeout, Mark: mark, Status: ct.StatusSeenReply | ct.StatusAssured,
			ProtoInfo: ct.ProtoInfo{TCP: &ct.ProtoInfoTCP{State: 3, OriginalWindowScale: 7, ReplyWindowScale: 9,
				OriginalFlags: 0x0bff, ReplyFlags: 0x0bff}},
			SynProxy: ct.SynProxy{ISN: 0x10000000, ITS: 1000, TSOff: 4000},
		}},
		{"offsets wrap", wrap, ct.Flow{
			Timeout: timeout, Mark: mark, Status: ct.StatusSeenReply | ct.StatusAssured,
			ProtoInfo: ct.ProtoInfo{TCP: &ct.ProtoInfoTCP{State: 3, OriginalWindowScale: 7, ReplyWindowScale: 9,
				OriginalFlags: 0x0bff, ReplyFlags: 0x0bff}},
			SeqAdjReply: ct.SequenceAdjust{Direction: true, Position: 0xfffffff0, OffsetBefore: 21, OffsetAfter: 21},
			SynProxy:    ct.SynProxy{ISN: 5, ITS: 0xfffffff0, TSOff: 32},
		}},
		{"server ISN 0: position 1", zeroISN, ct.Flow{
			Timeout: timeout, Mark: mark, Status: ct.StatusSeenReply | ct.StatusAssured,
			ProtoInfo: ct.ProtoInfo{TCP: &ct.ProtoInfoTCP{State: 3, OriginalWindowScale: 7, ReplyWindowScale: 9,
				OriginalFlags: 0x0bff, ReplyFlags: 0x0bff}},
			SeqAdjReply: ct.SequenceAdjust{Direction: true, Position: 1, OffsetBefore: 0x10000000, OffsetAfter: 0x10000000},
			SynProxy:    ct.SynProxy{ISN: 0x10000000, ITS: 1000, TSOff: 4000},
		}},
		{"IPv4-mapped client is IPv4", mapped, ct.Flow{
			Timeout: timeout, Mark: mark, Status: ct.StatusSeenReply | ct.StatusAssured,
			ProtoInfo: ct.ProtoInfo{TCP: &ct.ProtoInfoTCP{State: 3, OriginalWindowScale: 7, ReplyWindowScale: 9,
				OriginalFlags: 0x0bff, ReplyFlags: 0x0bff}},
			SeqAdjReply: ct.SequenceAdjust{Direction: true, Position: 0x30000000, OffsetBefore: 0xe0000000, OffsetAfter: 0xe0000000},
			SynProxy:    ct.SynProxy{ISN: 0x10000000, ITS: 1000, TSOff: 4000},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := appendCreate(nil, 42, &tt.f, createStatusUnconfirmed, timeout, mark)
			got, h := decodeCreate(t, b)
			want := tt.want
			want.TupleOrig = tuple(tt.f.Client, tt.f.Server)
			want.TupleReply = tuple(tt.f.Server, tt.f.Client)
			if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
				t.Errorf("appendCreate(%v) decoded (-want +got):\n%s", &tt.f, diff)
			}
			wantFlags := netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Excl
			if h.Flags != wantFlags || h.Sequence != 42 || int(h.Length) != len(b) {
				t.Errorf("appendCreate header = flags %v seq %d len %d, want flags %v seq 42 len %d",
					h.Flags, h.Sequence, h.Length, wantFlags, len(b))
			}
			wantFam := byte(afInet)
			if tt.f.IPv6() {
				wantFam = afInet6
			}
			if b[nlmsgHdrLen] != wantFam {
				t.Errorf("appendCreate nfgenmsg family = %d, want %d", b[nlmsgHdrLen], wantFam)
			}
		})
	}
}

// TestAppendCreateBatch checks that messages appended one after the other
// split back into the same flows, each with its own sequence number.
func TestAppendCreateBatch(t *testing.T) {
	var b []byte
	var flows []Flow
	for i := range 5 {
		f := testFlow4()
		if i%2 == 1 {
			f = testFlow6()
		}
		f.Client = netip.AddrPortFrom(f.Client.Addr(), uint16(40000+i))
		f.CookieISN += uint32(i)
		flows = append(flows, f)
		b = appendCreate(b, uint32(100+i), &f, createStatus, 60, 1)
	}
	for i := 0; len(b) > 0; i++ {
		m, rest, err := nextMessage(b)
		if err != nil {
			t.Fatalf("nextMessage #%d: %v", i, err)
		}
		got, h := decodeCreate(t, b[:nlmsgHdrLen+len(m.data)])
		if h.Sequence != uint32(100+i) {
			t.Errorf("message %d: seq = %d, want %d", i, h.Sequence, 100+i)
		}
		if got.TupleOrig.Proto.SourcePort != flows[i].Client.Port() || got.SynProxy.ISN != flows[i].CookieISN {
			t.Errorf("message %d: port %d ISN %#x, want %d %#x", i, got.TupleOrig.Proto.SourcePort, got.SynProxy.ISN,
				flows[i].Client.Port(), flows[i].CookieISN)
		}
		b = rest
	}
}

func TestAppendCreateNoAllocs(t *testing.T) {
	f := testFlow6()
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		buf = appendCreate(buf[:0], 1, &f, createStatus, 60, 1)
	})
	if allocs != 0 {
		t.Errorf("appendCreate allocates %v times per message, want 0", allocs)
	}
}

func TestAppendDeleteGetDump(t *testing.T) {
	c := netip.MustParseAddrPort("198.18.1.2:40000")
	s := netip.MustParseAddrPort("198.18.3.2:80")
	tests := []struct {
		name      string
		b         []byte
		wantType  uint16
		wantFlags netlink.HeaderFlags
		wantAttrs []uint16
	}{
		{"get", appendGet(nil, 7, c, s), ipctnlMsgCtGet, netlink.Request | netlink.Acknowledge, []uint16{ctaTupleOrig}},
		{"delete", appendDelete(nil, 7, c, s, 99), ipctnlMsgCtDelete, netlink.Request | netlink.Acknowledge, []uint16{ctaTupleOrig, ctaID}},
		{"dump by mark", appendDumpMark(nil, 7, 5, 0xff), ipctnlMsgCtGet, netlink.Request | netlink.Dump, []uint16{ctaMark, ctaMarkMask}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m netlink.Message
			if err := m.UnmarshalBinary(tt.b); err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			if got := uint16(m.Header.Type); got != nfnlSubsysCTNetlink<<8|tt.wantType {
				t.Errorf("type = %#x, want %#x", got, nfnlSubsysCTNetlink<<8|tt.wantType)
			}
			if m.Header.Flags != tt.wantFlags || m.Header.Sequence != 7 {
				t.Errorf("flags %v seq %d, want %v 7", m.Header.Flags, m.Header.Sequence, tt.wantFlags)
			}
			var got []uint16
			if err := walkAttrs(m.Data[nfgenLen:], func(typ uint16, _ []byte) error {
				got = append(got, typ)
				return nil
			}); err != nil {
				t.Fatalf("walkAttrs: %v", err)
			}
			if diff := cmp.Diff(tt.wantAttrs, got); diff != "" {
				t.Errorf("attributes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseEntry(t *testing.T) {
	// A kernel answer is a NEW message with the entry's attributes; build
	// one with the encoder plus the attributes only the kernel sends.
	f := testFlow4()
	b := appendCreate(nil, 1, &f, createStatusUnconfirmed, 60, 0x53570000)
	e := encoder{b}
	e.be32(ctaID, 0xabcdef)
	binary.NativeEndian.PutUint32(e.b, uint32(len(e.b)))
	m, _, err := nextMessage(e.b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseEntry(m.data)
	if err != nil {
		t.Fatalf("parseEntry: %v", err)
	}
	want := entry{ID: 0xabcdef, Mark: 0x53570000, Status: ipsSeenReply | ipsAssured, State: StateEstablished}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseEntry (-want +got):\n%s", diff)
	}
}

func TestParseMalformed(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"short header", []byte{1, 2, 3}, errShortMessage},
		{"length below header", []byte{4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, errMessageLength},
		{"length past buffer", []byte{200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, errMessageLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := nextMessage(tt.b); !errors.Is(err, tt.want) {
				t.Errorf("nextMessage(%v) = %v, want %v", tt.b, err, tt.want)
			}
		})
	}
	bad := []struct {
		name string
		data []byte
	}{
		{"attribute past end", []byte{2, 0, 0, 0, 40, 0, 12, 0}},
		{"attribute length 2", []byte{2, 0, 0, 0, 2, 0, 12, 0}},
		{"id of 2 bytes", []byte{2, 0, 0, 0, 6, 0, 12, 0, 1, 2, 0, 0}},
		{"nfgenmsg only half", []byte{2, 0}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseEntry(tt.data); err == nil {
				t.Errorf("parseEntry(%v) = nil error, want one", tt.data)
			}
		})
	}
}

func FuzzParseEntry(f *testing.F) {
	fl := testFlow6()
	b := appendCreate(nil, 1, &fl, createStatus, 60, 1)
	f.Add(b[nlmsgHdrLen:])
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = parseEntry(data)
		_, _, _ = nextMessage(data)
	})
}
