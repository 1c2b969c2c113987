package gateway

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/synwall/synwall/internal/cookies"
	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
	"github.com/synwall/synwall/internal/policy"
)

// Addresses from the benchmarking ranges (RFC 2544, RFC 3849).
var (
	client4 = netip.MustParseAddr("198.18.0.5")
	server4 = netip.MustParseAddr("198.18.1.10")
	client6 = netip.MustParseAddr("2001:db8::5")
	server6 = netip.MustParseAddr("2001:db8:1::10")
	other4  = netip.MustParseAddr("198.19.9.9")
)

const (
	clientPort = 40000
	serverPort = 80
	passPort   = 81
	dropPort   = 82
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func seeded(n uint64) *rand.ChaCha8 {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], n)
	return rand.NewChaCha8(s)
}

func testAdvertise() policy.Advertise {
	return policy.Advertise{MSS4: 1460, MSS6: 1440, WScale: 7, SACK: true, Timestamps: true, ECN: true, Window: 65535}
}

func testPolicy(tb testing.TB, adv policy.Advertise) *policy.Policy {
	tb.Helper()
	pfx := []netip.Prefix{netip.MustParsePrefix("198.18.1.0/24"), netip.MustParsePrefix("2001:db8:1::/64")}
	p, err := policy.New([]*policy.Service{
		{Name: "web", Mode: policy.ModeProxy, Prefixes: pfx, PortLo: serverPort, PortHi: serverPort, Advertise: adv},
		{Name: "pass", Mode: policy.ModePass, Prefixes: pfx, PortLo: passPort, PortHi: passPort, Advertise: adv},
		{Name: "drop", Mode: policy.ModeDrop, Prefixes: pfx, PortLo: dropPort, PortHi: dropPort, Advertise: adv},
	}, policy.Tables{CookiePeriod: 30 * time.Second, Linger: 10 * time.Second, IdleTimeout: time.Minute, HandshakeTimeout: 5 * time.Second})
	if err != nil {
		tb.Fatalf("policy.New: %v", err)
	}
	p.Limits = policy.Limits{} // tests run many SYNs at one instant
	return p
}

type harness struct {
	tb  testing.TB
	e   *Engine
	w   *Worker
	now time.Time
	v6  bool
}

func newHarness(tb testing.TB, v6 bool, adv policy.Advertise, mod ...func(*Config)) *harness {
	tb.Helper()
	pol := testPolicy(tb, adv)
	cfg := Config{Policy: pol, Rand: seeded(1), Start: t0, PendingSlots: 64, Flows: 1024, CacheBuckets: 64, CacheEntries: 4}
	for _, m := range mod {
		m(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return &harness{tb: tb, e: e, w: e.NewWorker(), now: t0, v6: v6}
}

func (h *harness) client() netip.Addr {
	if h.v6 {
		return client6
	}
	return client4
}

func (h *harness) server() netip.Addr {
	if h.v6 {
		return server6
	}
	return server4
}

// tuple is the client-side tuple of the test connection.
func (h *harness) tuple() cookies.Tuple {
	t := cookies.Tuple{SrcPort: clientPort, DstPort: serverPort, V6: h.v6}
	c, s := h.client().As16(), h.server().As16()
	if h.v6 {
		t.Src, t.Dst = c, s
	} else {
		copy(t.Src[:], h.client().AsSlice())
		copy(t.Dst[:], h.server().AsSlice())
	}
	return t
}

// seg describes a segment to craft.
type seg struct {
	fromServer bool
	src, dst   netip.Addr // override the default addresses
	sport      uint16     // override
	dport      uint16     // override
	flags      uint8
	seq, ack   uint32
	win        uint16
	mss        uint16 // 0: none
	ws         int    // -1: none (zero value means scale 0 only with hasWS)
	hasWS      bool
	sackPerm   bool
	ts         bool
	tsVal      uint32
	tsEcr      uint32
	sack       [][2]uint32
	urg        uint16 // urgent pointer
	payload    string
}

func tcpOptions(s seg) []layers.TCPOption {
	var o []layers.TCPOption
	if s.mss != 0 {
		b := make([]byte, 2)
		binary.BigEndian.PutUint16(b, s.mss)
		o = append(o, layers.TCPOption{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: b})
	}
	if s.sackPerm {
		o = append(o, layers.TCPOption{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2})
	}
	if s.ts {
		b := make([]byte, 8)
		binary.BigEndian.PutUint32(b, s.tsVal)
		binary.BigEndian.PutUint32(b[4:], s.tsEcr)
		o = append(o, layers.TCPOption{OptionType: layers.TCPOptionKindNop},
			layers.TCPOption{OptionType: layers.TCPOptionKindNop},
			layers.TCPOption{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: b})
	}
	if len(s.sack) > 0 {
		b := make([]byte, 8*len(s.sack))
		for i, e := range s.sack {
			binary.BigEndian.PutUint32(b[8*i:], e[0])
			binary.BigEndian.PutUint32(b[8*i+4:], e[1])
		}
		o = append(o, layers.TCPOption{OptionType: layers.TCPOptionKindNop},
			layers.TCPOption{OptionType: layers.TCPOptionKindNop},
			layers.TCPOption{OptionType: layers.TCPOptionKindSACK, OptionLength: uint8(2 + len(b)), OptionData: b})
	}
	if s.hasWS {
		o = append(o, layers.TCPOption{OptionType: layers.TCPOptionKindNop},
			layers.TCPOption{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{byte(s.ws)}})
	}
	return o
}

// craft serializes s with gopacket, checksums computed.
func (h *harness) craft(s seg) []byte {
	h.tb.Helper()
	src, dst := h.client(), h.server()
	sport, dport := uint16(clientPort), uint16(serverPort)
	if s.fromServer {
		src, dst, sport, dport = dst, src, dport, sport
	}
	if s.src.IsValid() {
		src = s.src
	}
	if s.dst.IsValid() {
		dst = s.dst
	}
	if s.sport != 0 {
		sport = s.sport
	}
	if s.dport != 0 {
		dport = s.dport
	}
	return craftPacket(h.tb, src, dst, sport, dport, s)
}

func craftPacket(tb testing.TB, src, dst netip.Addr, sport, dport uint16, s seg) []byte {
	tcp := &layers.TCP{
		SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport),
		Seq: s.seq, Ack: s.ack, Window: s.win, Urgent: s.urg,
		FIN: s.flags&header.FIN != 0, SYN: s.flags&header.SYN != 0, RST: s.flags&header.RST != 0,
		PSH: s.flags&header.PSH != 0, ACK: s.flags&header.ACK != 0, URG: s.flags&header.URG != 0,
		ECE: s.flags&header.ECE != 0, CWR: s.flags&header.CWR != 0,
		Options: tcpOptions(s),
	}
	var ip gopacket.SerializableLayer
	if src.Is6() {
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: net.IP(src.AsSlice()), DstIP: net.IP(dst.AsSlice())}
		tcp.SetNetworkLayerForChecksum(ip6)
		ip = ip6
	} else {
		ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment, SrcIP: net.IP(src.AsSlice()), DstIP: net.IP(dst.AsSlice())}
		tcp.SetNetworkLayerForChecksum(ip4)
		ip = ip4
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, tcp, gopacket.Payload(s.payload)); err != nil {
		tb.Fatalf("SerializeLayers: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// out is a decoded packet as the tests compare it.
type out struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	HopLimit         uint8
	Seq, Ack         uint32
	Flags            uint8
	Window           uint16
	Urgent           uint16
	MSS              uint16
	WS               int // -1 none
	SACKPerm         bool
	TS               bool
	TSVal, TSEcr     uint32
	SACK             [][2]uint32
	Payload          string
}

// decode parses b with gopacket, checks its IP and TCP checksums with a
// naive implementation, and returns the fields.
func decode(tb testing.TB, b []byte) out {
	tb.Helper()
	if len(b) == 0 {
		tb.Fatalf("decode: empty packet")
	}
	first := layers.LayerTypeIPv4
	if b[0]>>4 == 6 {
		first = layers.LayerTypeIPv6
	}
	pk := gopacket.NewPacket(b, first, gopacket.Default)
	if el := pk.ErrorLayer(); el != nil {
		tb.Fatalf("decode: %v", el.Error())
	}
	var o out
	var src, dst []byte
	if ip4, ok := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		o.Src, _ = netip.AddrFromSlice(ip4.SrcIP.To4())
		o.Dst, _ = netip.AddrFromSlice(ip4.DstIP.To4())
		o.HopLimit = ip4.TTL
		if ip4.Flags != layers.IPv4DontFragment || ip4.Id != 0 {
			tb.Errorf("IPv4 flags %v id %d, want DF and 0", ip4.Flags, ip4.Id)
		}
		if int(ip4.Length) != len(b) {
			tb.Errorf("IPv4 total length %d, want %d", ip4.Length, len(b))
		}
		if naiveSum(b[:20]) != 0xffff {
			tb.Errorf("IPv4 header checksum wrong")
		}
		src, dst = b[12:16], b[16:20]
	} else if ip6, ok := pk.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
		o.Src, _ = netip.AddrFromSlice(ip6.SrcIP)
		o.Dst, _ = netip.AddrFromSlice(ip6.DstIP)
		o.HopLimit = ip6.HopLimit
		if int(ip6.Length)+40 != len(b) {
			tb.Errorf("IPv6 payload length %d, want %d", ip6.Length, len(b)-40)
		}
		src, dst = b[8:24], b[24:40]
	}
	tcp, ok := pk.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !ok {
		tb.Fatalf("decode: no TCP layer")
	}
	seg := b[len(b)-len(tcp.Contents)-len(tcp.Payload):]
	if !tcpSumOK(src, dst, seg) {
		tb.Errorf("TCP checksum wrong")
	}
	o.SrcPort, o.DstPort = uint16(tcp.SrcPort), uint16(tcp.DstPort)
	o.Seq, o.Ack, o.Window, o.Urgent = tcp.Seq, tcp.Ack, tcp.Window, tcp.Urgent
	o.Flags = seg[13]
	o.WS = -1
	for _, op := range tcp.Options {
		switch op.OptionType {
		case layers.TCPOptionKindMSS:
			o.MSS = binary.BigEndian.Uint16(op.OptionData)
		case layers.TCPOptionKindWindowScale:
			o.WS = int(op.OptionData[0])
		case layers.TCPOptionKindSACKPermitted:
			o.SACKPerm = true
		case layers.TCPOptionKindTimestamps:
			o.TS = true
			o.TSVal = binary.BigEndian.Uint32(op.OptionData)
			o.TSEcr = binary.BigEndian.Uint32(op.OptionData[4:])
		case layers.TCPOptionKindSACK:
			for i := 0; i+8 <= len(op.OptionData); i += 8 {
				o.SACK = append(o.SACK, [2]uint32{binary.BigEndian.Uint32(op.OptionData[i:]), binary.BigEndian.Uint32(op.OptionData[i+4:])})
			}
		}
	}
	o.Payload = string(tcp.Payload)
	return o
}

func naiveSum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

func tcpSumOK(src, dst, seg []byte) bool {
	ph := append(append([]byte{}, src...), dst...)
	if len(src) == 4 {
		ph = append(ph, 0, 6, byte(len(seg)>>8), byte(len(seg)))
	} else {
		ph = append(ph, 0, 0, byte(len(seg)>>8), byte(len(seg)), 0, 0, 0, 6)
	}
	return naiveSum(append(ph, seg...)) == 0xffff
}

// run processes pkt (a copy) and returns the result.
func (h *harness) run(pkt []byte, meta engine.Meta) engine.Result {
	var r engine.Result
	h.w.Process(pkt, meta, h.now, &r)
	return r
}

// expectOne checks verdict and event and returns the result.
func (h *harness) expect(pkt []byte, verdict engine.Verdict, ev engine.Event) engine.Result {
	h.tb.Helper()
	r := h.run(pkt, engine.Meta{})
	if r.Verdict != verdict || r.Event != ev {
		h.tb.Fatalf("Process = %v/%v (reason %v), want %v/%v", r.Verdict, r.Event, r.Reason, verdict, ev)
	}
	return r
}

// flowOf returns a copy of the live flow of the test tuple, if any.
func (h *harness) flowOf() (flow, bool) { return h.flowAt(clientPort) }

// flowAt returns a copy of the live flow of the test tuple with client
// port port, if any.
func (h *harness) flowAt(port uint16) (flow, bool) {
	t := h.tuple()
	t.SrcPort = port
	var k flowKey
	k.set(&t.Src, &t.Dst, t.SrcPort, t.DstPort, t.V6)
	i, tag := h.e.flows.bucketKey(&k)
	mu := h.e.flows.lock(i)
	mu.Lock()
	defer mu.Unlock()
	f := h.e.flows.find(i, tag, &k, h.now.UnixNano())
	if f == nil {
		return flow{}, false
	}
	return *f, true
}

// clearCache forgets every SYN cache entry, as a flood would.
func (h *harness) clearCache() {
	clear(h.e.cache.tags)
}

func families(t *testing.T, f func(t *testing.T, v6 bool)) {
	t.Run("ipv4", func(t *testing.T) { f(t, false) })
	t.Run("ipv6", func(t *testing.T) { f(t, true) })
}

// cmpDiff is cmp.Diff that compares netip.Addr values by ==.
func cmpDiff(want, got any, opts ...cmp.Option) string {
	return cmp.Diff(want, got, append(opts, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }))...)
}

var cmpAllowUnexported = cmp.AllowUnexported

const (
	clientISN = 1000
	serverISN = 7000000
	clientTS  = 111
	serverTS  = 9000
)

// mssFor is the MSS the test policy advertises to the family.
func (h *harness) mssFor() uint16 {
	if h.v6 {
		return 1440
	}
	return 1460
}

// synOut is the SYN-ACK the engine should send for a SYN with full options
// under testAdvertise; seq and TSval are filled from got.
func (h *harness) wantSynAck(got out, ws int, sack, ts bool, tsEcr uint32) out {
	w := out{Src: h.server(), Dst: h.client(), SrcPort: serverPort, DstPort: clientPort, HopLimit: 64,
		Seq: got.Seq, Ack: clientISN + 1, Flags: header.SYN | header.ACK, Window: 65535,
		MSS: h.mssFor(), WS: ws, SACKPerm: sack}
	if ts {
		w.TS, w.TSVal, w.TSEcr = true, got.TSVal, tsEcr
	}
	return w
}

func fullSyn() seg {
	return seg{flags: header.SYN, seq: clientISN, win: 64240, mss: 1460, sackPerm: true, ts: true, tsVal: clientTS, hasWS: true, ws: 7}
}

// establish runs the handshake with full options and returns cookie and
// our TSval. serverWS is the server's window scale (-1 none).
func (h *harness) establish(serverWS int, thirdAckPayload string) (cookie, ourTS uint32, injected []out) {
	h.tb.Helper()
	r := h.expect(h.craft(fullSyn()), engine.Drop, engine.EventSynAnswered)
	sa := decode(h.tb, r.Inject[0])
	ack := seg{flags: header.ACK, seq: clientISN + 1, ack: sa.Seq + 1, win: 502, ts: true, tsVal: clientTS + 1, tsEcr: sa.TSVal, payload: thirdAckPayload}
	if thirdAckPayload != "" {
		ack.flags |= header.PSH
	}
	h.expect(h.craft(ack), engine.Accept, engine.EventHandshake)
	ssa := seg{fromServer: true, flags: header.SYN | header.ACK, seq: serverISN, ack: clientISN + 1, win: 65160,
		mss: 1400, sackPerm: true, ts: true, tsVal: serverTS, tsEcr: clientTS + 1}
	if serverWS >= 0 {
		ssa.hasWS, ssa.ws = true, serverWS
	}
	r = h.expect(h.craft(ssa), engine.Drop, engine.EventServerUp)
	for _, p := range r.Inject {
		injected = append(injected, decode(h.tb, p))
	}
	return sa.Seq, sa.TSVal, injected
}

// handshakeFrom runs SYN and ACK for a client and returns the event of the
// ACK.
func (h *harness) handshakeFrom(cl netip.Addr, port uint16, isn uint32) engine.Event {
	var r engine.Result
	h.w.Process(craftPacket(h.tb, cl, h.server(), port, serverPort, seg{flags: header.SYN, seq: isn, win: 1000, mss: 1460}), engine.Meta{}, h.now, &r)
	if r.Event != engine.EventSynAnswered {
		h.tb.Fatalf("SYN: %v", r.Event)
	}
	sa := decode(h.tb, r.Inject[0])
	h.w.Process(craftPacket(h.tb, cl, h.server(), port, serverPort, seg{flags: header.ACK, seq: isn + 1, ack: sa.Seq + 1, win: 1000}), engine.Meta{}, h.now, &r)
	return r.Event
}
