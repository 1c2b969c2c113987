package observe

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestClassOf(t *testing.T) {
	for _, tc := range []struct {
		res  engine.Result
		want Class
		name string
	}{
		{engine.Result{Verdict: engine.Drop, Event: engine.EventMalformed, Reason: header.SynFin}, Class(header.SynFin), "syn_fin"},
		{engine.Result{Verdict: engine.Drop, Event: engine.EventMalformed, Reason: header.Truncated}, Class(header.Truncated), "truncated"},
		{engine.Result{Verdict: engine.Drop, Event: engine.EventPolicyDrop}, ClassPolicyDrop, "policy_drop"},
		{engine.Result{Verdict: engine.Drop, Event: engine.EventSynLimited}, ClassRateLimited, "rate_limited"},
		{engine.Result{Verdict: engine.Drop, Event: engine.EventBadCookie}, ClassBadCookie, "bad_cookie"},
		{engine.Result{Verdict: engine.Drop, Event: engine.EventExpiredCookie}, ClassExpiredCookie, "expired_cookie"},
		{engine.Result{Verdict: engine.Drop, Event: engine.EventUnknown}, ClassNoFlow, "no_flow"},
		{engine.Result{Verdict: engine.Accept, Event: engine.EventPassed, Reason: header.SynFin}, ClassInvalid, "invalid"},
		{engine.Result{Verdict: engine.Drop, Event: engine.EventSynAnswered}, ClassInvalid, "invalid"},
		{engine.Result{Verdict: engine.Drop, Event: engine.EventMalformed, Reason: header.OK}, ClassInvalid, "invalid"},
	} {
		t.Run(fmt.Sprintf("%v/%v", tc.res.Event, tc.res.Reason), func(t *testing.T) {
			r := tc.res
			if got := ClassOf(&r); got != tc.want {
				t.Errorf("ClassOf(%+v) = %v, want %v", r, got, tc.want)
			}
			if got := tc.want.String(); got != tc.name {
				t.Errorf("Class(%d).String() = %q, want %q", tc.want, got, tc.name)
			}
		})
	}
	seen := map[string]Class{}
	for c := Class(header.OK) + 1; c < NumClasses; c++ {
		n := c.String()
		if n == "invalid" || n == "unknown" {
			t.Errorf("Class(%d).String() = %q, want a name", c, n)
		}
		if o, dup := seen[n]; dup {
			t.Errorf("Class(%d) and Class(%d) are both %q", o, c, n)
		}
		seen[n] = c
	}
}

// TestTopKSkewed: in a Zipf-skewed stream over 2000 prefixes, far more than
// the table holds, the Space-Saving table finds the true top prefixes.
func TestTopKSkewed(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	z := rand.NewZipf(rng, 1.2, 1, 1999)
	tk := newTopK(64)
	truth := map[hhKey]uint64{}
	for range 200_000 {
		k := hhKey{a0: (z.Uint64() + 1) << 40} // prefix i is (i+1)<<8 of a /24
		truth[k]++
		tk.add(k, 1)
	}
	m := hhMerge{}
	m.add(&tk)
	got := m.top(5, 1)
	for i, e := range got {
		want := hhKey{a0: uint64(i+1) << 40}
		if e.key != want {
			t.Errorf("top[%d] = %v, want %v (true count %d)", i, e.key.addr(), want.addr(), truth[want])
		}
		if tc := truth[e.key]; e.count < tc || e.count-e.err > tc {
			t.Errorf("top[%d] %v: count %d ± %d does not bound the true count %d", i, e.key.addr(), e.count, e.err, tc)
		}
	}
}

// TestDistinctEstimate: linear counting is within the documented error.
func TestDistinctEstimate(t *testing.T) {
	for _, n := range []int{0, 1, 100, 1000, 5000, 16384, 50000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			o, err := New(Config{Rand: fixedRand{}}, t0)
			if err != nil {
				t.Fatal(err)
			}
			p := &fakeProc{res: engine.Result{Verdict: engine.Drop, Event: engine.EventMalformed, Reason: header.SynFin}}
			w, _ := o.Wrap(p)
			var r engine.Result
			dst := netip.MustParseAddr("198.18.3.2")
			for i := range n {
				src := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
				pkt := tcpPacket(src, dst, 1234, 80, header.SYN|header.FIN)
				w.Process(pkt, engine.Meta{}, t0, &r)
				w.Process(pkt, engine.Meta{}, t0, &r) // repeats do not count
			}
			rep := o.Rotate(t0.Add(10 * time.Second))
			if n == 0 {
				if len(rep.Classes) != 0 {
					t.Fatalf("Rotate with no traffic listed %v", rep.Classes)
				}
				return
			}
			c := rep.Classes[0]
			if c.Count != uint64(2*n) {
				t.Errorf("count = %d, want %d", c.Count, 2*n)
			}
			// Three standard errors of linear counting, plus one.
			tt := float64(n) / DistinctBits
			tol := 1 + 3*math.Sqrt(DistinctBits*(math.Exp(tt)-tt-1))
			if d := math.Abs(float64(c.Sources.Value) - float64(n)); d > tol || c.Sources.Saturated {
				t.Errorf("sources = %+v, want %d ± %.0f", c.Sources, n, tol)
			}
		})
	}
}

func TestDistinctSaturated(t *testing.T) {
	var b bitmap
	for i := range uint64(DistinctBits) {
		b.add(i)
	}
	if e := b.estimate(); !e.Saturated || e.Value < DistinctBits*9 {
		t.Errorf("estimate of a full bitmap = %+v, want saturated and >= %d", e, DistinctBits*9)
	}
	if s := (Estimate{Value: 7, Saturated: true}).String(); s != ">7" {
		t.Errorf("Estimate.String() = %q, want \">7\"", s)
	}
}

// TestObserverReport: two workers, a SYN flood from one /24 at one service,
// invalid flags from an IPv6 /48; the snapshot and the window report name
// them, and Rotate starts a new window.
func TestObserverReport(t *testing.T) {
	o, err := New(Config{Rand: fixedRand{}, TopK: 8, TopEvery: 1}, t0)
	if err != nil {
		t.Fatal(err)
	}
	answered := &fakeProc{res: engine.Result{Verdict: engine.Drop, Event: engine.EventSynAnswered}}
	invalid := &fakeProc{res: engine.Result{Verdict: engine.Drop, Event: engine.EventMalformed, Reason: header.Xmas}}
	passed := &fakeProc{res: engine.Result{Verdict: engine.Accept, Event: engine.EventTranslated}}
	w1, _ := o.Wrap(answered)
	w2, _ := o.Wrap(invalid)
	w3, _ := o.Wrap(passed)
	svc := netip.MustParseAddr("198.18.3.2")
	svc6 := netip.MustParseAddr("2001:db8:3::2")
	var r engine.Result
	for i := range 1000 {
		src := netip.AddrFrom4([4]byte{198, 18, 2, byte(i)})
		w1.Process(tcpPacket(src, svc, uint16(i), 80, header.SYN), engine.Meta{}, t0, &r)
		if i%10 == 0 { // a little noise from elsewhere
			w1.Process(tcpPacket(netip.AddrFrom4([4]byte{198, 19, byte(i / 10), 1}), svc, 1, 443, header.SYN), engine.Meta{}, t0, &r)
		}
		a6 := netip.MustParseAddr(fmt.Sprintf("2001:db8:2:%x::%x", i%7, i))
		w2.Process(tcpPacket(a6, svc6, 5, 22, header.FIN|header.PSH|header.URG), engine.Meta{}, t0, &r)
		w3.Process(tcpPacket(src, svc, 5, 80, header.ACK), engine.Meta{}, t0, &r)
	}
	s := o.Snapshot(t0.Add(5 * time.Second))
	cur := s.Current
	if cur.Answered.Count != 1100 || cur.Answered.Total != 1100 {
		t.Errorf("answered = %+v, want count and total 1100", cur.Answered)
	}
	if len(cur.Classes) != 1 || cur.Classes[0].Class != "xmas" || cur.Classes[0].Count != 1000 {
		t.Errorf("classes = %+v, want only xmas with 1000", cur.Classes)
	}
	if got := cur.Top.ServicesAnswered[0]; got.Service != netip.AddrPortFrom(svc, 80) || got.Count < 1000 {
		t.Errorf("top service answered = %+v, want %v:80 with >= 1000", got, svc)
	}
	if got := cur.Top.PrefixesAnswered[0]; got.Prefix != netip.MustParsePrefix("198.18.2.0/24") || got.Count < 1000 {
		t.Errorf("top prefix answered = %+v, want 198.18.2.0/24 with >= 1000", got)
	}
	if got := cur.Top.PrefixesDropped; len(got) != 1 || got[0].Prefix != netip.MustParsePrefix("2001:db8:2::/48") || got[0].Count != 1000 {
		t.Errorf("top prefixes dropped = %+v, want only 2001:db8:2::/48 with 1000", got)
	}
	if got := cur.Top.ServicesDropped; len(got) != 1 || got[0].Service != netip.AddrPortFrom(svc6, 22) {
		t.Errorf("top services dropped = %+v, want only [%v]:22", got, svc6)
	}
	if s.Last != nil {
		t.Errorf("Last before any Rotate = %+v, want nil", s.Last)
	}

	rep := o.Rotate(t0.Add(10 * time.Second))
	if rep.Length != 10*time.Second || rep.Answered.Count != 1100 {
		t.Errorf("Rotate report: length %v answered %d, want 10s and 1100", rep.Length, rep.Answered.Count)
	}
	s = o.Snapshot(t0.Add(11 * time.Second))
	if s.Current.Answered.Count != 0 || s.Current.Answered.Total != 1100 || s.Current.Answered.Sources.Value != 0 {
		t.Errorf("after Rotate answered = %+v, want 0 in the window, 1100 in total, no sources", s.Current.Answered)
	}
	if len(s.Current.Classes) != 1 || s.Current.Classes[0].Count != 0 || s.Current.Classes[0].Total != 1000 {
		t.Errorf("after Rotate classes = %+v, want xmas with 0 now, 1000 in total", s.Current.Classes)
	}
	if got := s.Current.Top.PrefixesAnswered[0]; got.Count != 500 {
		t.Errorf("after Rotate the top prefix count = %d, want halved to 500", got.Count)
	}
	if s.Last == nil || s.Last.Answered.Count != 1100 {
		t.Errorf("Last = %+v, want the rotated window", s.Last)
	}
	if rep := o.Rotate(t0.Add(20 * time.Second)); len(rep.Classes) != 0 || rep.Answered.Count != 0 {
		t.Errorf("Rotate of a quiet window = %+v, want nothing", rep)
	}
}

// TestTopEvery: with 1 in 4 fed to the tables, counts are scaled back.
func TestTopEvery(t *testing.T) {
	o, _ := New(Config{Rand: fixedRand{}, TopEvery: 4}, t0)
	w, _ := o.Wrap(&fakeProc{res: engine.Result{Verdict: engine.Drop, Event: engine.EventBadCookie}})
	var r engine.Result
	for range 400 {
		w.Process(tcpPacket(netip.MustParseAddr("198.18.2.9"), netip.MustParseAddr("198.18.3.2"), 1, 80, header.ACK), engine.Meta{}, t0, &r)
	}
	s := o.Snapshot(t0)
	// 1 in 4 of 400 at random positions, scaled by 4: 400 ± 35 (one sigma).
	if got := s.Current.Top.PrefixesDropped[0].Count; got < 280 || got > 520 {
		t.Errorf("scaled count = %d, want 400 ± 120", got)
	}
	if got := s.Current.Classes[0]; got.Class != "bad_cookie" || got.Count != 400 {
		t.Errorf("class = %+v, want bad_cookie 400 (classes are counted exactly)", got)
	}
}

// TestSummaryLines: one line per class with traffic and one for SYNs
// answered, however many packets.
func TestSummaryLines(t *testing.T) {
	o, _ := New(Config{Rand: fixedRand{}}, t0)
	procs := []*fakeProc{
		{res: engine.Result{Verdict: engine.Drop, Event: engine.EventMalformed, Reason: header.SynFin}},
		{res: engine.Result{Verdict: engine.Drop, Event: engine.EventSynLimited}},
		{res: engine.Result{Verdict: engine.Drop, Event: engine.EventSynAnswered}},
	}
	var r engine.Result
	for _, p := range procs {
		w, _ := o.Wrap(p)
		for i := range 3000 {
			w.Process(tcpPacket(netip.AddrFrom4([4]byte{198, 18, 2, byte(i % 2)}), netip.MustParseAddr("198.18.3.2"), 1, 80, header.SYN), engine.Meta{}, t0, &r)
		}
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	o.Rotate(t0.Add(10 * time.Second)).Log(log)
	want := []string{
		`level=INFO msg="syns answered" count=3000 sources=2 window=10s top_service=198.18.3.2:80 top_prefix=198.18.2.0/24`,
		`level=INFO msg="dropped packets" reason=syn_fin count=3000 sources=2 window=10s`,
		`level=INFO msg="dropped packets" reason=rate_limited count=3000 sources=2 window=10s`,
	}
	got := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log lines (-want +got):\n%s", diff)
	}
	buf.Reset()
	o.Rotate(t0.Add(20 * time.Second)).Log(log)
	if buf.Len() != 0 {
		t.Errorf("a quiet window logged %q, want nothing", buf.String())
	}
}

func TestLatency(t *testing.T) {
	now := t0
	clock := func() time.Time { now = now.Add(300 * time.Nanosecond); return now }
	o, _ := New(Config{Rand: fixedRand{}, LatencyEvery: 2, Clock: clock}, t0)
	w, _ := o.Wrap(&fakeProc{res: engine.Result{Verdict: engine.Accept, Event: engine.EventTranslated}})
	var r engine.Result
	for range 10 {
		w.Process(nil, engine.Meta{}, t0, &r)
	}
	l := o.Snapshot(t0).Latency
	if l.Count() != 5 || l.Counts[3] != 5 || l.Sum != 1500*time.Nanosecond {
		t.Errorf("latency = %+v, want 5 calls of 300ns in bucket 3 (<= %v)", l, LatencyBound(3))
	}
}

// TestMalformedInput: packets too short for addresses are counted, never
// a panic.
func TestMalformedInput(t *testing.T) {
	o, _ := New(Config{Rand: fixedRand{}}, t0)
	w, _ := o.Wrap(&fakeProc{res: engine.Result{Verdict: engine.Drop, Event: engine.EventMalformed, Reason: header.Truncated}})
	var r engine.Result
	for _, p := range [][]byte{nil, {0x45}, {0x60, 0, 0}, make([]byte, 20), tcpPacket(netip.MustParseAddr("198.18.2.1"), netip.MustParseAddr("198.18.3.2"), 1, 2, 0)[:22]} {
		w.Process(p, engine.Meta{}, t0, &r)
	}
	if got := o.Snapshot(t0).Current.Classes; len(got) != 1 || got[0].Count != 5 {
		t.Errorf("classes = %+v, want truncated with 5", got)
	}
}

func TestWrapNil(t *testing.T) {
	o, _ := New(Config{}, t0)
	if _, err := o.Wrap(nil); err != ErrNilProcessor {
		t.Errorf("Wrap(nil) error = %v, want ErrNilProcessor", err)
	}
	if _, err := New(Config{TopK: -1}, t0); err == nil {
		t.Error("New(TopK: -1) = nil error, want one")
	}
}

// TestZeroAllocs: recording and sampling allocate nothing per packet.
func TestZeroAllocs(t *testing.T) {
	s, err := NewSampler(SamplerConfig{Path: t.TempDir() + "/x.pcapng", Slots: 4, Rate: 1e6})
	if err != nil {
		t.Fatal(err)
	}
	o, _ := New(Config{Rand: fixedRand{}, Sampler: s, LatencyEvery: 3, ServiceOf: func(a []byte, port uint16) int { return int(a[len(a)-1]) }}, t0)
	drop := &fakeProc{res: engine.Result{Verdict: engine.Drop, Event: engine.EventMalformed, Reason: header.SynRst}}
	w, _ := o.Wrap(drop)
	pkts := [][]byte{
		tcpPacket(netip.MustParseAddr("198.18.2.1"), netip.MustParseAddr("198.18.3.2"), 1, 80, header.SYN|header.RST),
		tcpPacket(netip.MustParseAddr("2001:db8:2::1"), netip.MustParseAddr("2001:db8:3::2"), 1, 80, header.SYN|header.RST),
	}
	var r engine.Result
	i := 0
	now := t0
	for _, res := range []engine.Result{drop.res, {Verdict: engine.Drop, Event: engine.EventSynLimited}, {Verdict: engine.Drop, Event: engine.EventSynAnswered}, {Verdict: engine.Accept, Event: engine.EventTranslated}} {
		drop.res = res
		if n := testing.AllocsPerRun(1000, func() {
			i++
			now = now.Add(time.Microsecond)
			w.Process(pkts[i%2], engine.Meta{}, now, &r)
		}); n != 0 {
			t.Errorf("Process (%v) allocates %v times per packet, want 0", res.Event, n)
		}
	}
	if st := s.Stats(); st.RingFull == 0 {
		t.Errorf("sampler stats %+v: want the ring full path exercised", st)
	}
}

func BenchmarkProcess(b *testing.B) {
	o, _ := New(Config{Rand: fixedRand{}}, t0)
	drop := &fakeProc{res: engine.Result{Verdict: engine.Drop, Event: engine.EventMalformed, Reason: header.SynRst}}
	w, _ := o.Wrap(drop)
	pkts := make([][]byte, 256)
	for i := range pkts {
		pkts[i] = tcpPacket(netip.AddrFrom4([4]byte{198, 18, byte(i % 3), byte(i)}), netip.MustParseAddr("198.18.3.2"), 1, uint16(80+i%5), header.SYN|header.RST)
	}
	var r engine.Result
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		w.Process(pkts[i&255], engine.Meta{}, t0, &r)
	}
}

func TestLimitedByService(t *testing.T) {
	svc := netip.MustParseAddr("198.18.3.2")
	o, _ := New(Config{Rand: fixedRand{}, ServiceOf: func(a []byte, port uint16) int {
		if addr, _ := netip.AddrFromSlice(a); addr == svc && port == 80 {
			return 3
		}
		if port == 9999 {
			return 1000 // past MaxServices
		}
		return -1
	}}, t0)
	p := &fakeProc{res: engine.Result{Verdict: engine.Drop, Event: engine.EventSynLimited}}
	w, _ := o.Wrap(p)
	var r engine.Result
	src := netip.MustParseAddr("198.18.2.1")
	for _, port := range []uint16{80, 80, 443, 9999} {
		w.Process(tcpPacket(src, svc, 1, port, header.SYN), engine.Meta{}, t0, &r)
	}
	p.res = engine.Result{Verdict: engine.Drop, Event: engine.EventBadCookie}
	w.Process(tcpPacket(src, svc, 1, 80, header.ACK), engine.Meta{}, t0, &r)
	got := o.Snapshot(t0).Limited
	want := make([]uint64, MaxServices+1)
	want[3], want[MaxServices] = 2, 1
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Limited (-want +got):\n%s", diff)
	}
}

// BenchmarkProcessSpread: every packet from another /24 to another service,
// so that the heavy-hitter tables miss and replace on every packet (their
// worst case).
func BenchmarkProcessSpread(b *testing.B) {
	o, _ := New(Config{Rand: fixedRand{}}, t0)
	w, _ := o.Wrap(&fakeProc{res: engine.Result{Verdict: engine.Drop, Event: engine.EventSynAnswered}})
	pkts := make([][]byte, 4096)
	for i := range pkts {
		pkts[i] = tcpPacket(netip.AddrFrom4([4]byte{198, 19, byte(i >> 4), byte(i)}), netip.AddrFrom4([4]byte{198, 18, 3, byte(i)}), 1, uint16(i), header.SYN)
	}
	var r engine.Result
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		w.Process(pkts[i&4095], engine.Meta{}, t0, &r)
	}
}

// TestTopKMerge: merged over workers, a count still bounds the true count
// from above, by at most its error, also for a key one worker's full table
// evicted.
func TestTopKMerge(t *testing.T) {
	x, y, z := hhKey{a0: 1 << 40}, hhKey{a0: 2 << 40}, hhKey{a0: 3 << 40}
	a, b := newTopK(2), newTopK(2)
	for k, n := range map[hhKey]int{x: 5, y: 10} {
		for range n {
			a.add(k, 1)
		}
	}
	a.add(z, 1) // evicts x (5): z counts 6 ± 5
	for range 3 {
		b.add(x, 1)
	}
	m := hhMerge{}
	m.add(&a)
	m.add(&b)
	truth := map[hhKey]uint64{x: 8, y: 10, z: 1}
	for _, e := range m.top(5, 1) {
		if tc := truth[e.key]; e.count < tc || e.count-e.err > tc {
			t.Errorf("%v: count %d ± %d does not bound the true count %d", e.key.addr(), e.count, e.err, tc)
		}
	}
}

// TestTopEveryAlternating: two sources that alternate packet by packet are
// both seen; sampling at fixed positions would take only one of them.
func TestTopEveryAlternating(t *testing.T) {
	o, _ := New(Config{Rand: fixedRand{}, TopEvery: 2}, t0)
	w, _ := o.Wrap(&fakeProc{res: engine.Result{Verdict: engine.Drop, Event: engine.EventBadCookie}})
	a, b := netip.MustParseAddr("198.18.2.9"), netip.MustParseAddr("198.18.7.9")
	var r engine.Result
	for i := range 800 {
		src := a
		if i%2 == 1 {
			src = b
		}
		w.Process(tcpPacket(src, netip.MustParseAddr("198.18.3.2"), 1, 80, header.ACK), engine.Meta{}, t0, &r)
	}
	top := o.Snapshot(t0).Current.Top.PrefixesDropped
	if len(top) != 2 {
		t.Fatalf("top prefixes = %+v, want both 198.18.2.0/24 and 198.18.7.0/24", top)
	}
	for _, p := range top {
		// 400 packets each, half of them sampled and scaled by 2: 400 ± 20.
		if p.Count < 300 || p.Count > 500 {
			t.Errorf("prefix %s counted %d, want about 400", p.Prefix, p.Count)
		}
	}
}

// TestAddrs: the addresses always, the destination port only when TCP
// follows the fixed header and the packet is not a later fragment.
func TestAddrs(t *testing.T) {
	c4, s4 := netip.MustParseAddr("198.18.0.5"), netip.MustParseAddr("198.18.1.10")
	c6, s6 := netip.MustParseAddr("2001:db8::5"), netip.MustParseAddr("2001:db8:1::10")
	v4 := tcpPacket(c4, s4, 40000, 80, 0x02)
	v6 := tcpPacket(c6, s6, 40000, 443, 0x02)
	k4 := func(a netip.Addr, port uint16) hhKey {
		b := a.As4()
		return hhKey{a0: uint64(binary.BigEndian.Uint32(b[:])) << 32, port: port}
	}
	k6 := func(a netip.Addr, port uint16) hhKey {
		b := a.As16()
		return hhKey{a0: binary.BigEndian.Uint64(b[:8]), a1: binary.BigEndian.Uint64(b[8:]), port: port, v6: true}
	}
	mod := func(b []byte, f func([]byte)) []byte {
		c := append([]byte(nil), b...)
		f(c)
		return c
	}
	tests := []struct {
		name     string
		pkt      []byte
		src, dst hhKey
		ok       bool
	}{
		{"ipv4", v4, k4(c4, 0), k4(s4, 80), true},
		{"ipv6", v6, k6(c6, 0), k6(s6, 443), true},
		{"ipv4 first fragment", mod(v4, func(b []byte) { b[6] = 0x20 }), k4(c4, 0), k4(s4, 80), true},
		{"ipv4 later fragment", mod(v4, func(b []byte) { b[7] = 1 }), k4(c4, 0), k4(s4, 0), true},
		{"ipv4 udp", mod(v4, func(b []byte) { b[9] = 17 }), k4(c4, 0), k4(s4, 0), true},
		{"ipv4 no ports", v4[:23], k4(c4, 0), k4(s4, 0), true},
		{"ipv6 extension header", mod(v6, func(b []byte) { b[6] = 60 }), k6(c6, 0), k6(s6, 0), true},
		{"ipv4 short", v4[:19], hhKey{}, hhKey{}, false},
		{"ipv6 short", v6[:39], hhKey{}, hhKey{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, dst, ok := addrs(tt.pkt)
			if src != tt.src || dst != tt.dst || ok != tt.ok {
				t.Errorf("addrs(% x) = %+v, %+v, %v, want %+v, %+v, %v", tt.pkt, src, dst, ok, tt.src, tt.dst, tt.ok)
			}
		})
	}
}
