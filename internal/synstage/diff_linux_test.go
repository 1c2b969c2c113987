//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package synstage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/google/go-cmp/cmp"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/synwall/synwall/internal/cookies"
	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway"
	"github.com/synwall/synwall/internal/gateway/header"
	"github.com/synwall/synwall/internal/policy"
)

// Return codes of the two entry points (linux/pkt_cls.h, linux/bpf.h).
const (
	tcOK       = 0
	tcShot     = 2
	tcRedirect = 7
	xdpDrop    = 1
	xdpPass    = 2
	xdpTX      = 3
)

// Addresses and ports of the differential tests (RFC 2544, RFC 3849 ranges).
var (
	client4 = netip.MustParseAddr("198.18.0.5")
	server4 = netip.MustParseAddr("198.18.1.10")
	client6 = netip.MustParseAddr("2001:db8::5")
	server6 = netip.MustParseAddr("2001:db8:1::10")
	// t0 is the fixed clock of both stages; its milliseconds matter for
	// TSval.
	t0 = time.Date(2026, 3, 4, 5, 6, 7, 891_000_000, time.UTC)
)

const (
	portFull  = 80   // proxy, every option advertised
	portBare  = 8080 // proxy, nothing but MSS advertised
	portNoWS  = 8081 // proxy, timestamps and SACK but no window scale, other MSS
	portPass  = 81
	portDrop  = 82
	portOther = 9999 // not guarded
)

func diffPolicy(tb testing.TB) *policy.Policy {
	tb.Helper()
	pfx := []netip.Prefix{netip.MustParsePrefix("198.18.1.0/24"), netip.MustParsePrefix("2001:db8:1::/64")}
	full := policy.Advertise{MSS4: 1460, MSS6: 1440, WScale: 7, SACK: true, Timestamps: true, ECN: true, Window: 65535}
	bare := policy.Advertise{MSS4: 1400, MSS6: 1380, WScale: policy.NoWScale, Window: 29200}
	nows := policy.Advertise{MSS4: 536, MSS6: 1220, WScale: policy.NoWScale, SACK: true, Timestamps: true, Window: 1024}
	wide := policy.Advertise{MSS4: 1460, MSS6: 1440, WScale: 14, Window: 65535}
	p, err := policy.New([]*policy.Service{
		{Name: "full", Mode: policy.ModeProxy, Prefixes: pfx, PortLo: portFull, PortHi: portFull, Advertise: full},
		{Name: "bare", Mode: policy.ModeProxy, Prefixes: pfx, PortLo: portBare, PortHi: portBare, Advertise: bare},
		{Name: "nows", Mode: policy.ModeProxy, Prefixes: pfx, PortLo: portNoWS, PortHi: portNoWS, Advertise: nows},
		{Name: "wide", Mode: policy.ModeProxy, Prefixes: pfx, PortLo: 8082, PortHi: 8082, Advertise: wide},
		{Name: "pass", Mode: policy.ModePass, Prefixes: pfx, PortLo: portPass, PortHi: portPass, Advertise: full},
		{Name: "drop", Mode: policy.ModeDrop, Prefixes: pfx, PortLo: portDrop, PortHi: portDrop, Advertise: full},
	}, policy.Tables{CookiePeriod: 30 * time.Second})
	if err != nil {
		tb.Fatalf("policy.New: %v", err)
	}
	p.Limits = policy.Limits{} // many SYNs at one instant
	return p
}

// pair is the engine and the stage set up alike: same policy, same keys,
// same fixed clock.
type pair struct {
	tb  testing.TB
	s   *Stage
	e   *gateway.Engine
	w   *gateway.Worker
	now time.Time
	// last is the stage's counters after the last drop.
	last Stats
	// tcOnly runs only the tc entry point: with rate limits, two runs of
	// one packet would take two tokens.
	tcOnly bool
}

func newPair(tb testing.TB, pol *policy.Policy) *pair { return newPairCache(tb, pol, false) }

// newPairCache is newPair with the engine's SYN cache and flow tags in the
// stage's maps when shared is set.
func newPairCache(tb testing.TB, pol *policy.Policy, shared bool) *pair {
	tb.Helper()
	return newPairSized(tb, pol, shared, 0, 0)
}

// newPairSized is newPairCache with a SYN cache of buckets×per entries (0:
// the defaults).
func newPairSized(tb testing.TB, pol *policy.Policy, shared bool, buckets, per int) *pair {
	tb.Helper()
	return newPairLoaded(tb, pol, shared, Options{Flows: 1024, CacheBuckets: buckets, CacheEntries: per})
}

// newPairOpts is newPair with the stage loaded with opts.
func newPairOpts(tb testing.TB, pol *policy.Policy, opts Options) *pair {
	tb.Helper()
	return newPairLoaded(tb, pol, false, opts)
}

func newPairLoaded(tb testing.TB, pol *policy.Policy, shared bool, opts Options) *pair {
	tb.Helper()
	buckets, per := opts.CacheBuckets, opts.CacheEntries
	s := loadStage(tb, opts)
	keys := cookies.Keys{Period: 30 * time.Second}
	for i := range keys.Master {
		keys.Master[i] = byte(i*7 + 3)
	}
	jar, err := cookies.NewFromKeys(cookies.Config{Period: keys.Period}, keys, t0)
	if err != nil {
		tb.Fatal(err)
	}
	cfg := gateway.Config{Policy: pol, Cookies: jar, Start: t0, Flows: 1024, PendingSlots: 16, CacheBuckets: buckets, CacheEntries: per}
	if shared {
		if cfg.CacheMemory, err = s.CacheMemory(); err != nil {
			tb.Fatalf("CacheMemory: %v", err)
		}
		if cfg.FlowTagMemory, err = s.FlowTagMemory(); err != nil {
			tb.Fatalf("FlowTagMemory: %v", err)
		}
	}
	e, err := gateway.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if shared {
		if err := s.ShareCache(e.FlowSeed(), e.CachePinMs()); err != nil {
			tb.Fatalf("ShareCache: %v", err)
		}
	}
	if err := s.SetPolicy(pol); err != nil {
		tb.Fatalf("SetPolicy: %v", err)
	}
	if err := s.setFixedClock(true); err != nil {
		tb.Fatal(err)
	}
	if err := s.Rotate(jar, t0); err != nil {
		tb.Fatalf("Rotate: %v", err)
	}
	return &pair{tb: tb, s: s, e: e, w: e.NewWorker(), now: t0}
}

// ethernet frames an IP packet as the stage sees it. The destination MAC
// is the test device's (all zero), so that the frame is for this host.
var (
	macDst = []byte{0, 0, 0, 0, 0, 0}
	macSrc = []byte{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}
)

func ethernet(ip []byte) []byte {
	f := make([]byte, 0, 14+len(ip))
	f = append(f, macDst...)
	f = append(f, macSrc...)
	et := uint16(0x0800)
	if len(ip) > 0 && ip[0]>>4 == 6 {
		et = 0x86dd
	}
	f = binary.BigEndian.AppendUint16(f, et)
	return append(f, ip...)
}

// outcome is what one stage did with a packet.
type outcome struct {
	Kind   string // "answer", "drop", "pass"
	Reason string // drops: the engine's reason or event name
	Packet []byte // answers: the IP packet sent
}

// runBPF runs prog on frame and reports the outcome; drops are named from
// the counter that moved.
func (p *pair) runBPF(prog *ebpf.Program, xdp bool, frame []byte) outcome {
	p.tb.Helper()
	ro := &ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+256)}
	ret, err := prog.Run(ro)
	if err != nil {
		p.tb.Fatalf("Run: %v", err)
	}
	switch {
	case !xdp && ret == tcRedirect, xdp && ret == xdpTX:
		got := ro.DataOut
		if len(got) < 14 {
			p.tb.Fatalf("answer of %d bytes", len(got))
		}
		if !bytes.Equal(got[0:6], frame[6:12]) || !bytes.Equal(got[6:12], frame[0:6]) || !bytes.Equal(got[12:14], frame[12:14]) {
			p.tb.Errorf("answer's Ethernet header % x, want the frame's % x with addresses swapped", got[:14], frame[:14])
		}
		return outcome{Kind: "answer", Packet: bytes.Clone(got[14:])}
	case !xdp && ret == tcShot, xdp && ret == xdpDrop:
		// Drop counters move only on drops: the snapshot of the last
		// drop serves as "before".
		after, err := p.s.Stats()
		if err != nil {
			p.tb.Fatal(err)
		}
		name := dropName(p.last, after)
		p.last = after
		return outcome{Kind: "drop", Reason: name}
	case !xdp && ret == tcOK, xdp && ret == xdpPass:
		return outcome{Kind: "pass"}
	}
	p.tb.Fatalf("program returned %d", ret)
	return outcome{}
}

// dropName names the drop counter that moved between two snapshots.
func dropName(before, after Stats) string {
	for r := range after.Drops {
		if after.Drops[r] != before.Drops[r] {
			return header.Reason(r).String()
		}
	}
	switch {
	case after.Denied != before.Denied, after.PolicyDrops != before.PolicyDrops:
		return engine.EventPolicyDrop.String()
	case after.SynLimited != before.SynLimited, after.SynAckLimited != before.SynAckLimited:
		return engine.EventSynLimited.String()
	}
	return "uncounted"
}

// runEngine runs the engine on ip and reports the outcome in the same terms.
func (p *pair) runEngine(ip []byte) outcome {
	var r engine.Result
	p.w.Process(bytes.Clone(ip), engine.Meta{}, p.now, &r)
	switch {
	case r.Event == engine.EventSynAnswered:
		return outcome{Kind: "answer", Packet: bytes.Clone(r.Inject[0])}
	case r.Verdict == engine.Drop && r.Event == engine.EventMalformed:
		return outcome{Kind: "drop", Reason: r.Reason.String()}
	case r.Verdict == engine.Drop:
		return outcome{Kind: "drop", Reason: r.Event.String()}
	}
	return outcome{Kind: "pass", Reason: r.Event.String()}
}

// compare runs ip through the engine and through both entry points of the
// program. An answer must be the engine's byte for byte and a drop must have
// the engine's reason; a pass defers to the engine, which is always
// allowed. It returns the program's outcome.
func (p *pair) compare(name string, ip []byte) outcome {
	p.tb.Helper()
	want := p.runEngine(ip)
	if len(ip) < 20 || ip[0]>>4 == 6 && len(ip) < 40 {
		// BPF_PROG_TEST_RUN refuses frames without a whole IP header.
		return outcome{Kind: "untestable"}
	}
	frame := ethernet(ip)
	tc := p.runBPF(p.s.objs.SynstageTc, false, frame)
	if !p.tcOnly {
		xdp := p.runBPF(p.s.objs.SynstageXdp, true, frame)
		if diff := cmp.Diff(tc, xdp); diff != "" {
			p.tb.Errorf("%s: tc and XDP disagree (-tc +xdp):\n%s\npacket % x", name, diff, ip)
		}
	}
	if tc.Kind != "pass" {
		if diff := cmp.Diff(want, tc); diff != "" {
			p.tb.Errorf("%s: program and engine disagree (-engine +program):\n%s\npacket % x", name, diff, ip)
		}
	}
	return tc
}

// synSpec describes a client SYN.
type synSpec struct {
	src     netip.Addr // zero: client4 or client6
	v6      bool
	port    uint16
	mss     int // -1: none
	ws      int // -1: none
	sack    bool
	ts      bool
	ecn     bool // ECE and CWR (RFC 3168 §6.1.1)
	ece     bool // ECE alone
	flags   uint8
	shuffle bool // options in another order than Linux's
	isn     uint32
	sport   uint16
	tsval   uint32
}

// synPacket builds the IP packet of s with gopacket, checksums set.
func synPacket(tb testing.TB, s synSpec) []byte {
	tb.Helper()
	var opts []layers.TCPOption
	if s.mss >= 0 {
		opts = append(opts, layers.TCPOption{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: binary.BigEndian.AppendUint16(nil, uint16(s.mss))})
	}
	if s.sack {
		opts = append(opts, layers.TCPOption{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2})
	} else if s.ts {
		opts = append(opts, layers.TCPOption{OptionType: layers.TCPOptionKindNop}, layers.TCPOption{OptionType: layers.TCPOptionKindNop})
	}
	if s.ts {
		d := binary.BigEndian.AppendUint32(nil, s.tsval)
		d = binary.BigEndian.AppendUint32(d, 0)
		opts = append(opts, layers.TCPOption{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: d})
	}
	if s.ws >= 0 {
		opts = append(opts, layers.TCPOption{OptionType: layers.TCPOptionKindNop},
			layers.TCPOption{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{byte(s.ws)}})
	}
	if s.shuffle {
		for i := len(opts) - 1; i > 0; i-- {
			j := int(s.isn>>uint(i%24)) % (i + 1)
			opts[i], opts[j] = opts[j], opts[i]
		}
	}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(s.sport), DstPort: layers.TCPPort(s.port), Seq: s.isn, Window: 64240, Options: opts}
	fl := s.flags
	if fl == 0 {
		fl = header.SYN
	}
	if s.ecn {
		fl |= header.ECE | header.CWR
	}
	if s.ece {
		fl |= header.ECE
	}
	tcp.FIN, tcp.SYN, tcp.RST, tcp.PSH = fl&header.FIN != 0, fl&header.SYN != 0, fl&header.RST != 0, fl&header.PSH != 0
	tcp.ACK, tcp.URG, tcp.ECE, tcp.CWR = fl&header.ACK != 0, fl&header.URG != 0, fl&header.ECE != 0, fl&header.CWR != 0
	buf := gopacket.NewSerializeBuffer()
	o := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	var err error
	src := s.src
	if !src.IsValid() {
		src = client4
		if s.v6 {
			src = client6
		}
	}
	if s.v6 {
		ip := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolTCP, HopLimit: 64, SrcIP: net.IP(src.AsSlice()), DstIP: net.IP(server6.AsSlice())}
		tcp.SetNetworkLayerForChecksum(ip)
		err = gopacket.SerializeLayers(buf, o, ip, tcp)
	} else {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment, Id: 4321,
			SrcIP: net.IP(src.AsSlice()), DstIP: net.IP(server4.AsSlice())}
		tcp.SetNetworkLayerForChecksum(ip)
		err = gopacket.SerializeLayers(buf, o, ip, tcp)
	}
	if err != nil {
		tb.Fatalf("serialize: %v", err)
	}
	return bytes.Clone(buf.Bytes())
}

// TestDifferentialOptions holds the program's SYN-ACKs to the engine's
// across the option matrix: every MSS class (and none), window scales,
// SACK, timestamps, ECN, option order, both families, and services with
// different advertised options.
func TestDifferentialOptions(t *testing.T) {
	p := newPair(t, diffPolicy(t))
	mssList := []int{-1, 0, 100, 535, 536, 1219, 1220, 1299, 1300, 1419, 1420, 1439, 1440, 1459, 1460, 8939, 8940, 9000, 65535}
	wsList := []int{-1, 0, 1, 7, 14, 15, 255}
	n, answered := 0, 0
	for _, v6 := range []bool{false, true} {
		for _, port := range []uint16{portFull, portBare, portNoWS, 8082} {
			for _, mss := range mssList {
				for _, ws := range wsList {
					for bits := range 16 {
						s := synSpec{v6: v6, port: port, mss: mss, ws: ws,
							sack: bits&1 != 0, ts: bits&2 != 0, ecn: bits&4 != 0, ece: bits&12 == 8, shuffle: bits&8 != 0,
							isn: uint32(n) * 2654435761, sport: uint16(20000 + n), tsval: uint32(n) * 40503}
						name := fmt.Sprintf("%+v", s)
						got := p.compare(name, synPacket(t, s))
						if got.Kind != "answer" {
							t.Errorf("%s: program %s (%s), want a SYN-ACK", name, got.Kind, got.Reason)
						} else {
							answered++
						}
						n++
					}
				}
			}
		}
	}
	st, err := p.s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	// Two entry points ran every packet.
	if st.Answered != uint64(2*answered) {
		t.Errorf("Stats().Answered = %d, want %d", st.Answered, 2*answered)
	}
	t.Logf("%d SYNs, %d answered identically", n, answered)
}

// TestDifferentialVerdicts covers the other outcomes of well-formed
// packets: invalid flag combinations, modes, unguarded ports, non-SYN
// segments.
func TestDifferentialVerdicts(t *testing.T) {
	p := newPair(t, diffPolicy(t))
	for _, v6 := range []bool{false, true} {
		for _, port := range []uint16{portFull, portPass, portDrop, portOther} {
			for f := range 256 {
				s := synSpec{v6: v6, port: port, mss: 1460, ws: 7, sack: true, ts: true, flags: uint8(f), isn: uint32(f) << 20, sport: 30000, tsval: 77}
				if f == 0 {
					// synPacket takes 0 for SYN; null flags are tested through a mutation.
					continue
				}
				name := fmt.Sprintf("v6=%v port=%d flags=%#02x", v6, port, f)
				got := p.compare(name, synPacket(t, s))
				want := p.runEngine(synPacket(t, s))
				// SYN answers, flag and policy drops must not be left
				// to the engine: they are the stage's work. Segments
				// without SYN need the engine's flow table.
				stages := want.Kind == "answer" || want.Kind == "drop" && want.Reason != engine.EventUnknown.String() &&
					want.Reason != engine.EventBadCookie.String()
				if got.Kind == "pass" && stages {
					t.Errorf("%s: program passes what the engine does: %+v", name, want)
				}
			}
		}
	}
}

// TestDifferentialMutations mutates valid SYNs at random (truncations,
// bad lengths and offsets, random option bytes, flags, any byte) and
// holds every answer and drop of the program to the engine's.
func TestDifferentialMutations(t *testing.T) {
	p := newPair(t, diffPolicy(t))
	rng := rand.New(rand.NewPCG(1, 2))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	kinds := map[string]int{}
	for i := range n {
		s := synSpec{v6: rng.IntN(2) == 1, port: []uint16{portFull, portBare, portPass, portDrop}[rng.IntN(4)],
			mss: rng.IntN(9000) - 1, ws: rng.IntN(16) - 1, sack: rng.IntN(2) == 1, ts: rng.IntN(2) == 1, ecn: rng.IntN(2) == 1,
			shuffle: rng.IntN(2) == 1, isn: rng.Uint32(), sport: uint16(1024 + rng.IntN(60000)), tsval: rng.Uint32()}
		pkt := synPacket(t, s)
		pkt = mutate(rng, pkt)
		got := p.compare(fmt.Sprintf("mutation %d", i), pkt)
		kinds[got.Kind+" "+got.Reason]++
	}
	t.Logf("program outcomes: %v", kinds)
	answers, drops := 0, 0
	for k, v := range kinds {
		switch {
		case strings.HasPrefix(k, "answer"):
			answers += v
		case strings.HasPrefix(k, "drop"):
			drops += v
		}
	}
	if answers == 0 || drops < n/10 {
		t.Errorf("the program answered %d and dropped %d of %d mutated SYNs: the mutations test too little", answers, drops, n)
	}
}

// mutate applies one to three random changes to a valid IP packet and,
// half the time, fixes the IPv4 header checksum so that the program (which
// leaves a bad one to the stack) parses on.
func mutate(rng *rand.Rand, pkt []byte) []byte {
	v6 := pkt[0]>>4 == 6
	l3 := 20
	if v6 {
		l3 = 40
	}
	for range 1 + rng.IntN(3) {
		switch rng.IntN(9) {
		case 0: // truncate
			pkt = pkt[:rng.IntN(len(pkt)+1)]
		case 1: // any byte
			if len(pkt) > 0 {
				pkt[rng.IntN(len(pkt))] = byte(rng.Uint32())
			}
		case 2: // flags
			if len(pkt) > l3+13 {
				pkt[l3+13] = byte(rng.Uint32())
			}
		case 3: // data offset
			if len(pkt) > l3+12 {
				pkt[l3+12] = byte(rng.IntN(16)) << 4
			}
		case 4: // IP length
			if len(pkt) >= l3 {
				off := 2
				if v6 {
					off = 4
				}
				binary.BigEndian.PutUint16(pkt[off:], uint16(int(binary.BigEndian.Uint16(pkt[off:]))+rng.IntN(41)-20))
			}
		case 5: // trailing bytes: payload to an IP length that says so, or padding
			extra := make([]byte, 1+rng.IntN(30))
			for i := range extra {
				extra[i] = byte(rng.Uint32())
			}
			pkt = append(pkt, extra...)
		case 6, 7: // option bytes
			if len(pkt) > l3+20 {
				for j := l3 + 20; j < len(pkt); j++ {
					if rng.IntN(3) == 0 {
						pkt[j] = []byte{0, 1, 2, 3, 4, 5, 8, 10, 2, 4, 40, 255}[rng.IntN(12)]
					}
				}
			}
		case 8: // options region grows into random bytes
			if len(pkt) > l3+12 {
				pkt[l3+12] = byte(5+rng.IntN(11)) << 4
				for len(pkt) < l3+60 {
					pkt = append(pkt, byte(rng.IntN(12)))
				}
			}
		}
	}
	if !v6 && len(pkt) >= 20 && rng.IntN(2) == 0 {
		pkt[10], pkt[11] = 0, 0
		binary.BigEndian.PutUint16(pkt[10:], ^header.Checksum(pkt[:20], 0))
	}
	return pkt
}
