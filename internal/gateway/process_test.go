package gateway

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/synwall/synwall/internal/cookies"
	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
	"github.com/synwall/synwall/internal/policy"
)

// TestInvalidFlagsTouchNothing: every invalid flag combination is dropped
// with its reason before the SYN cache or the flow table is looked at.
func TestInvalidFlagsTouchNothing(t *testing.T) {
	const (
		F, S, R, P, A, U = header.FIN, header.SYN, header.RST, header.PSH, header.ACK, header.URG
	)
	cases := []struct {
		flags      uint8
		fromServer bool
		want       header.Reason
	}{
		{S | F, false, header.SynFin},
		{S | F | P, false, header.SynFin},
		{S | R, false, header.SynRst},
		{R | A | S, false, header.SynRst},
		{F, false, header.FinNoAck},
		{0, false, header.NullFlags},
		{F | P | U, false, header.Xmas},
		{P, false, header.NoAck},
		{S | A, false, header.SynAckFromClient},
		{S, true, header.ServerSyn},
		{S | F, true, header.SynFin},
	}
	for _, c := range cases {
		families(t, func(t *testing.T, v6 bool) {
			h := newHarness(t, v6, testAdvertise())
			cookie, _, _ := h.establish(7, "")
			before, _ := h.flowOf()
			cacheBefore := append([]cacheEntry(nil), h.e.cache.entries...)
			tagsBefore := append([]uint64(nil), h.e.cache.tags...)
			statsBefore := h.e.Stats()
			r := h.run(h.craft(seg{fromServer: c.fromServer, flags: c.flags, seq: clientISN + 1, ack: cookie + 1, win: 9}), engine.Meta{})
			if r.Verdict != engine.Drop || r.Event != engine.EventMalformed || r.Reason != c.want {
				t.Errorf("flags %#x server %v: Process = %v %v %v, want drop malformed %v", c.flags, c.fromServer, r.Verdict, r.Event, r.Reason, c.want)
			}
			after, _ := h.flowOf()
			if d := cmpDiff(before, after, cmpAllowUnexported(flow{}, cookies.Tuple{})); d != "" {
				t.Errorf("flags %#x: flow changed:\n%s", c.flags, d)
			}
			if d := cmpDiff(cacheBefore, h.e.cache.entries, cmpAllowUnexported(cacheEntry{}, cookies.Tuple{})); d != "" {
				t.Errorf("flags %#x: cache changed:\n%s", c.flags, d)
			}
			if d := cmpDiff(tagsBefore, h.e.cache.tags); d != "" {
				t.Errorf("flags %#x: cache tags changed:\n%s", c.flags, d)
			}
			st := h.e.Stats()
			if st.Drops[c.want] != statsBefore.Drops[c.want]+1 {
				t.Errorf("flags %#x: Drops[%v] not counted", c.flags, c.want)
			}
		})
	}
}

// TestModesAndUnguarded covers pass, drop, unguarded traffic and malformed
// input.
func TestModesAndUnguarded(t *testing.T) {
	h := newHarness(t, false, testAdvertise())
	h.expect(h.craft(seg{flags: header.SYN, seq: 1, dport: passPort}), engine.Accept, engine.EventPassed)
	h.expect(h.craft(seg{flags: header.SYN, seq: 1, dport: dropPort}), engine.Drop, engine.EventPolicyDrop)
	h.expect(h.craft(seg{flags: header.SYN, seq: 1, dst: other4}), engine.Accept, engine.EventUnguarded)
	h.expect(h.craft(seg{flags: 0, seq: 1, dst: other4}), engine.Accept, engine.EventUnguarded)
	r := h.expect([]byte{0x45, 0, 0}, engine.Drop, engine.EventMalformed)
	if r.Reason == header.OK || r.Reason == header.ReasonInvalid {
		t.Errorf("truncated packet reason = %v", r.Reason)
	}
	if got := h.e.Stats().Events[engine.EventPassed]; got != 1 {
		t.Errorf("Events[passed] = %d, want 1", got)
	}
	// SetPolicy: with the proxy service turned to drop, SYNs are dropped.
	adv := testAdvertise()
	p2, err := policy.New([]*policy.Service{{Name: "web", Mode: policy.ModeDrop, Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.1.0/24")}, PortLo: serverPort, PortHi: serverPort, Advertise: adv}}, policy.Tables{})
	if err != nil {
		t.Fatal(err)
	}
	h.e.SetPolicy(p2)
	h.expect(h.craft(fullSyn()), engine.Drop, engine.EventPolicyDrop)
}

// TestDirection checks Result.Dir and the per-direction, per-verdict
// counters for packets of each kind.
func TestDirection(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())
		other := netip.MustParseAddr("198.18.9.9")
		if v6 {
			other = netip.MustParseAddr("2001:db8:9::9")
		}
		cases := []struct {
			name    string
			s       seg
			verdict engine.Verdict
			event   engine.Event
			dir     engine.Direction
		}{
			{"SYN from a client", seg{flags: header.SYN, seq: 1000, win: 1000}, engine.Drop, engine.EventSynAnswered, engine.
				// Invalid flag sets are dropped before the policy is consulted,
				// so their direction is not known.
				DirToServer},

			{"SYN+FIN to the service", seg{flags: header.SYN | header.FIN, seq: 5, win: 1000}, engine.Drop, engine.EventMalformed, engine.DirNone},
			{"server ACK of no flow", seg{fromServer: true, flags: header.ACK, seq: 7, ack: 8, win: 1000}, engine.Drop, engine.EventUnknown, engine.DirToClient},
			{"traffic of no service", seg{src: h.client(), dst: other, flags: header.ACK, seq: 1, ack: 1, win: 1000}, engine.Accept, engine.EventUnguarded, engine.DirNone},
		}
		before := h.e.Stats()
		for _, c := range cases {
			r := h.expect(h.craft(c.s), c.verdict, c.event)
			if r.Dir != c.dir {
				t.Errorf("%s: Dir = %v, want %v", c.name, r.Dir, c.dir)
			}
		}
		after := h.e.Stats()
		var want [engine.NumDirections][engine.NumVerdicts]uint64
		for _, c := range cases {
			want[c.dir][c.verdict]++
		}
		var total, events uint64
		for d := range after.Packets {
			for v := range after.Packets[d] {
				if got := after.Packets[d][v] - before.Packets[d][v]; got != want[d][v] {
					t.Errorf("Stats().Packets[%v][%v] moved by %d, want %d", engine.Direction(d), engine.Verdict(v), got, want[d][v])
				}
				total += after.Packets[d][v]
			}
		}
		for _, n := range after.Events {
			events += n
		}
		if total != events {
			t.Errorf("packets by direction and verdict sum to %d, events to %d; want equal", total, events)
		}
	})
}

// TestWorkerLookupFollowsPolicy: the worker's remembered service never
// outlives the policy it came from, and never answers for another port or
// address.
func TestWorkerLookupFollowsPolicy(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())
		syn := h.craft(fullSyn())
		h.expect(append([]byte(nil), syn...), engine.Drop, engine.EventSynAnswered)
		h.expect(append([]byte(nil), syn...), engine.Drop, engine.EventSynAnswered)
		// Same address, other ports: other services.
		h.expect(h.craft(seg{flags: header.SYN, seq: 1, dport: passPort}), engine.Accept, engine.EventPassed)
		h.expect(h.craft(seg{flags: header.SYN, seq: 1, dport: dropPort}), engine.Drop, engine.EventPolicyDrop)
		h.expect(append([]byte(nil), syn...), engine.Drop, engine.EventSynAnswered)
		// A server packet (looked up by its source) of no flow.
		h.expect(h.craft(seg{fromServer: true, flags: header.ACK, seq: 9, ack: 9}), engine.Drop, engine.EventUnknown)

		// The same service turned to drop in a new policy.
		pfx := []netip.Prefix{netip.MustParsePrefix("198.18.1.0/24"), netip.MustParsePrefix("2001:db8:1::/64")}
		p2, err := policy.New([]*policy.Service{{Name: "web", Mode: policy.ModeDrop, Prefixes: pfx, PortLo: serverPort, PortHi: serverPort, Advertise: testAdvertise()}}, policy.Tables{})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.e.SetPolicy(p2); err != nil {
			t.Fatal(err)
		}
		h.expect(append([]byte(nil), syn...), engine.Drop, engine.EventPolicyDrop)
		// No service at all: unguarded both ways.
		p3, err := policy.New(nil, policy.Tables{})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.e.SetPolicy(p3); err != nil {
			t.Fatal(err)
		}
		h.expect(append([]byte(nil), syn...), engine.Accept, engine.EventUnguarded)
		h.expect(h.craft(seg{fromServer: true, flags: header.ACK, seq: 9, ack: 9}), engine.Accept, engine.EventUnguarded)
	})
}

// withIPv4Options returns an IPv4 packet with n bytes of NOP options
// inserted after the fixed header, lengths and header checksum fixed.
func withIPv4Options(b []byte, n int) []byte {
	out := append(append(append([]byte(nil), b[:20]...), make([]byte, n)...), b[20:]...)
	for i := 20; i < 20+n; i++ {
		out[i] = 1 // NOP (RFC 791 §3.1)
	}
	out[0] = 0x40 | byte((20+n)/4)
	binary.BigEndian.PutUint16(out[2:], uint16(len(out)))
	header.SetIPv4Checksum(header.IPv4(out))
	return out
}

// TestEarlyDropIPv4Options: packets with invalid flags are dropped with the
// reason of their direction, and unguarded ones pass, whatever the length
// of the IPv4 header (a 40-byte one is as long as an IPv6 header).
func TestEarlyDropIPv4Options(t *testing.T) {
	h := newHarness(t, false, testAdvertise())
	tests := []struct {
		name    string
		s       seg
		verdict engine.Verdict
		event   engine.Event
		reason  header.Reason
	}{
		{"client SYN+FIN", seg{flags: header.SYN | header.FIN}, engine.Drop, engine.EventMalformed, header.SynFin},
		{"client SYN+ACK", seg{flags: header.SYN | header.ACK}, engine.Drop, engine.EventMalformed, header.SynAckFromClient},
		{"client null", seg{flags: 0}, engine.Drop, engine.EventMalformed, header.NullFlags},
		{"unguarded SYN+FIN", seg{flags: header.SYN | header.FIN, dport: 9}, engine.Accept, engine.EventUnguarded, 0}, // no reason set
	}
	for _, tt := range tests {
		for _, n := range []int{0, 4, 20, 40} {
			t.Run(fmt.Sprintf("%s/options=%d", tt.name, n), func(t *testing.T) {
				pkt := withIPv4Options(h.craft(tt.s), n)
				r := h.run(pkt, engine.Meta{})
				if r.Verdict != tt.verdict || r.Event != tt.event || r.Reason != tt.reason {
					t.Errorf("Process = %v/%v/%v, want %v/%v/%v", r.Verdict, r.Event, r.Reason, tt.verdict, tt.event, tt.reason)
				}
			})
		}
	}
}

// TestZeroAllocs asserts that the per-packet paths do not allocate.
func TestZeroAllocs(t *testing.T) {
	const n = 64
	fx := newFixture(t, n, func(c *Config) { c.HandshakeTimeout = time.Nanosecond })
	var r engine.Result
	i := 0
	check := func(name string, want engine.Event, f func()) {
		t.Helper()
		if a := testing.AllocsPerRun(200, f); a != 0 {
			t.Errorf("%s: %v allocs per packet, want 0", name, a)
		}
		if r.Event != want {
			t.Errorf("%s: last event %v, want %v", name, r.Event, want)
		}
	}
	check("translate client", engine.EventTranslated, func() { i++; fx.w.Process(fx.c2s[i%n], engine.Meta{}, fx.now, &r) })
	check("translate server", engine.EventTranslated, func() { i++; fx.w.Process(fx.s2c[i%n], engine.Meta{}, fx.now, &r) })
	check("gso translate", engine.EventTranslated, func() { i++; fx.w.Process(fx.s2c[i%n], engine.Meta{CsumNotReady: true}, fx.now, &r) })
	check("invalid flags", engine.EventMalformed, func() { i++; fx.w.Process(fx.bad[i%n], engine.Meta{}, fx.now, &r) })
	check("syn", engine.EventSynAnswered, func() {
		i++
		k := i % n
		binary.BigEndian.PutUint32(fx.syn[k][fx.synSeqOff[k]:], uint32(i))
		fx.w.Process(fx.syn[k], engine.Meta{}, fx.now, &r)
	})
	fx.forgetFlows()
	now := fx.now.Add(time.Second)
	check("ack", engine.EventHandshake, func() {
		i++
		now = now.Add(time.Microsecond)
		fx.w.Process(fx.ack[i%n], engine.Meta{}, now, &r)
	})
	garbage := []byte{0x45, 1, 2, 3}
	check("garbage", engine.EventMalformed, func() { fx.w.Process(garbage, engine.Meta{}, fx.now, &r) })
}

// TestZeroAllocsNewPaths: the paths of issue 12 allocate nothing either: a
// reset out of window, a SYN whose checksum the engine verifies, a
// server's outbound connection, a resync after a challenge ACK.
func TestZeroAllocsNewPaths(t *testing.T) {
	h := newHarness(t, false, testAdvertise())
	h.establish(7, "")
	remote := other4
	var r engine.Result
	check := func(name string, want engine.Event, pkt []byte, meta engine.Meta) {
		t.Helper()
		if a := testing.AllocsPerRun(200, func() { h.w.Process(pkt, meta, h.now, &r) }); a != 0 {
			t.Errorf("%s: %v allocs per packet, want 0", name, a)
		}
		if r.Event != want {
			t.Errorf("%s: last event %v, want %v", name, r.Event, want)
		}
	}
	check("reset out of window", engine.EventBadReset, h.craft(seg{flags: header.RST, seq: clientISN + 1 + 1<<31}), engine.Meta{})
	check("verified SYN", engine.EventSynAnswered, h.craft(seg{sport: 46000, flags: header.SYN, seq: 1, win: 1}), engine.Meta{CsumNotVerified: true})
	check("outbound SYN", engine.EventOutbound, h.craft(seg{fromServer: true, dst: remote, dport: 443, flags: header.SYN, seq: 1}), engine.Meta{})
	check("outbound data", engine.EventOutbound, h.craft(seg{src: remote, sport: 443, flags: header.ACK, seq: 9, ack: 2, payload: "x"}), engine.Meta{})
	sa := decode(t, h.expect(h.craft(seg{sport: 46001, flags: header.SYN, seq: clientISN, win: 1}), engine.Drop, engine.EventSynAnswered).Inject[0])
	h.expect(h.craft(seg{sport: 46001, flags: header.ACK, seq: clientISN + 1, ack: sa.Seq + 1, win: 1}), engine.Accept, engine.EventHandshake)
	check("resync", engine.EventResync, h.craft(seg{fromServer: true, dport: 46001, flags: header.ACK, seq: 5, ack: 99}), engine.Meta{})
}

// FuzzProcess feeds arbitrary bytes to one engine. With mode&1 the bytes are
// a TCP segment behind a valid IPv4 or IPv6 header (mode&2), sent by the
// server when mode&4, so that the fuzzer reaches the stateful paths; mode&8
// marks the checksum as not ready, mode&16 as not verified by the kernel.
// Nothing may panic, and every result must be consistent.
func FuzzProcess(f *testing.F) {
	h := newHarness(f, false, testAdvertise())
	h6 := &harness{tb: f, e: h.e, w: h.w, now: h.now, v6: true}
	for _, hh := range []*harness{h, h6} {
		remote := other4
		if hh.v6 {
			remote = netip.MustParseAddr("2001:db8:99::9")
		}
		for _, s := range []seg{
			fullSyn(),
			{flags: header.ACK, seq: clientISN + 1, ack: 5, win: 3, ts: true, tsVal: 1, tsEcr: 2},
			{flags: header.ACK | header.PSH, seq: clientISN + 1, ack: 5, win: 3, payload: "data", sack: [][2]uint32{{1, 2}}},
			{fromServer: true, flags: header.SYN | header.ACK, seq: 9, ack: clientISN + 1, mss: 1400, hasWS: true, ws: 3, ts: true},
			{fromServer: true, flags: header.RST},
			{flags: header.SYN | header.FIN},
			// The paths of issue 12: resets in and out of window, a bare
			// server reset and a challenge ACK in SYN-SENT, a server's own
			// connection and its reply, a SYN without timestamps asking
			// for window scaling and SACK.
			{flags: header.RST, seq: clientISN + 1},
			{flags: header.RST | header.ACK, seq: clientISN + 1 + 1<<31, ack: 5},
			{fromServer: true, flags: header.RST, seq: serverISN + 1 + 100},
			{fromServer: true, flags: header.ACK, seq: 77, ack: 123456, win: 9},
			{fromServer: true, dst: remote, dport: 443, flags: header.SYN, seq: 1, mss: 1460},
			{src: remote, sport: 443, flags: header.SYN | header.ACK, seq: 2, ack: 2, mss: 1400},
			{flags: header.SYN, seq: clientISN, win: 64240, mss: 1460, sackPerm: true, hasWS: true, ws: 8},
		} {
			pkt := hh.craft(s)
			f.Add(pkt, uint8(0))
			ipl := 20
			if hh.v6 {
				ipl = 40
			}
			mode := uint8(1)
			if hh.v6 {
				mode |= 2
			}
			if s.fromServer {
				mode |= 4
			}
			f.Add(pkt[ipl:], mode)
			f.Add(pkt, uint8(16)) // checksum not verified by the kernel
		}
	}
	// Establish a flow so that translation is reachable, and seed ICMP
	// errors quoting its server's segments.
	for _, hh := range []*harness{h, h6} {
		cookie, _, _ := hh.establish(7, "")
		router, ipl := other4, 20
		if hh.v6 {
			router, ipl = netip.MustParseAddr("2001:db8:99::1"), 40
		}
		q := hh.craft(seg{fromServer: true, flags: header.ACK, seq: cookie + 1, ack: clientISN + 1, win: 5})
		f.Add(icmpError(f, router, hh.server(), q[:ipl+20]), uint8(0))
	}
	ip4 := h.craft(seg{flags: header.ACK})[:20]
	ip4s := h.craft(seg{fromServer: true, flags: header.ACK})[:20]
	ip6 := h6.craft(seg{flags: header.ACK})[:40]
	ip6s := h6.craft(seg{fromServer: true, flags: header.ACK})[:40]
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		pkt := data
		if mode&1 != 0 {
			var ip []byte
			switch mode & 6 {
			case 0:
				ip = ip4
			case 4:
				ip = ip4s
			case 2:
				ip = ip6
			default:
				ip = ip6s
			}
			pkt = append(append([]byte(nil), ip...), data...)
			if len(ip) == 20 {
				binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
				pkt[10], pkt[11] = 0, 0
			} else {
				binary.BigEndian.PutUint16(pkt[4:], uint16(len(data)))
			}
		}
		var r engine.Result
		h.w.Process(pkt, engine.Meta{CsumNotReady: mode&8 != 0, CsumNotVerified: mode&16 != 0}, h.now, &r)
		if r.Verdict != engine.Accept && r.Verdict != engine.Drop || r.Event == engine.EventInvalid || r.Event >= engine.NumEvents {
			t.Fatalf("Process = %v %v", r.Verdict, r.Event)
		}
		if r.Event == engine.EventMalformed && (r.Reason == header.OK || r.Reason == header.ReasonInvalid) {
			t.Fatalf("malformed without a reason: %v", r.Reason)
		}
		for _, p := range r.Inject {
			var q header.Packet
			if reason := header.Parse(p, &q); reason != header.OK {
				t.Fatalf("injected packet does not parse: %v", reason)
			}
			if !header.VerifyTCPChecksum(q.V6, &q.Src, &q.Dst, q.TCP) {
				t.Fatalf("injected packet with a bad checksum")
			}
		}
	})
}

// filePolicy parses a policy file guarding 198.18.1.0/24 port 80 with the
// given top-level lines added.
func filePolicy(t *testing.T, extra ...string) *policy.Policy {
	t.Helper()
	y := `version: 1
services:
  - name: web
    addresses: [198.18.1.0/24]
    ports: ["80"]
    mode: proxy
    advertise: {discover: false, mss: 1460, mss6: 1440, wscale: 7, sack: true, timestamps: true, ecn: false, window: 65535}
    limits:
      syn_per_source: {rate: 10/s, burst: 2, prefix4: 24, prefix6: 64}
limits:
  synack_rate: 200k/s
  synack_burst: 50k
` + strings.Join(extra, "\n") + "\n"
	p, err := policy.Parse("test.yaml", []byte(y))
	if err != nil {
		t.Fatalf("policy.Parse: %v", err)
	}
	return p
}

// TestPolicyFileLists: deny drops a source's packets, allow exempts it from
// the per-source SYN limit, and invalid_flags: count lets bad flags through
// while counting them.
func TestPolicyFileLists(t *testing.T) {
	h := newHarness(t, false, testAdvertise())
	if err := h.e.SetPolicy(filePolicy(t, "allow: [198.18.0.0/24]", "deny: [198.18.66.0/24]")); err != nil {
		t.Fatal(err)
	}
	if got := h.answered(client4, 10); got != 10 {
		t.Errorf("allowed source: %d of 10 SYNs answered, want 10", got)
	}
	if got := h.answered(netip.MustParseAddr("198.18.9.1"), 10); got != 2 {
		t.Errorf("limited source: %d of 10 SYNs answered, want 2 (burst)", got)
	}
	h.expect(h.craft(seg{src: netip.MustParseAddr("198.18.66.7"), flags: header.SYN, seq: 1}), engine.Drop, engine.EventPolicyDrop)

	if err := h.e.SetPolicy(filePolicy(t, "invalid_flags: count")); err != nil {
		t.Fatal(err)
	}
	before := h.e.Stats().Drops[header.SynFin]
	r := h.expect(h.craft(seg{flags: header.SYN | header.FIN, seq: 1}), engine.Accept, engine.EventPassed)
	if r.Reason != header.SynFin || h.e.Stats().Drops[header.SynFin] != before+1 {
		t.Errorf("counted invalid flags: reason %v, count +%d, want SynFin +1", r.Reason, h.e.Stats().Drops[header.SynFin]-before)
	}
}

// TestChecksumVerified (issue 12, 5): where the kernel has not verified a
// segment's TCP checksum (Meta.CsumNotVerified), a corrupt one is dropped
// and counted before the engine answers, holds or re-emits anything; where
// the kernel has, or the checksum is not ready, it is not checked again.
func TestChecksumVerified(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		corrupt := func(b []byte) []byte {
			b = append([]byte(nil), b...)
			b[len(b)-1] ^= 0x40 // the last payload byte
			return b
		}
		h := newHarness(t, v6, testAdvertise())
		syn := fullSyn()
		syn.payload = "z" // a SYN may carry data; it gives a byte to corrupt
		tests := []struct {
			name  string
			pkt   []byte
			meta  engine.Meta
			event engine.Event
		}{
			{"corrupt, not verified", corrupt(h.craft(syn)), engine.Meta{CsumNotVerified: true}, engine.EventBadChecksum},
			{"good, not verified", h.craft(syn), engine.Meta{CsumNotVerified: true}, engine.EventSynAnswered},
			{"corrupt, verified by the kernel", corrupt(h.craft(syn)), engine.Meta{}, engine.EventSynAnswered},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := h.run(tt.pkt, tt.meta)
				if r.Event != tt.event {
					t.Fatalf("Process = %v (reason %v), want %v", r.Event, r.Reason, tt.event)
				}
				if tt.event == engine.EventBadChecksum && (r.Verdict != engine.Drop || len(r.Inject) != 0) {
					t.Errorf("%v, %d injected, want dropped and nothing sent", r.Verdict, len(r.Inject))
				}
			})
		}
		// Held data: a corrupt segment is not kept to be re-emitted with a
		// fresh checksum.
		h.synSent()
		data := seg{flags: header.ACK | header.PSH, seq: clientISN + 1, ack: 1, win: 500, payload: "GET /"}
		r := h.run(corrupt(h.craft(data)), engine.Meta{CsumNotVerified: true})
		if r.Event != engine.EventBadChecksum {
			t.Errorf("corrupt held data: %v, want bad_checksum", r.Event)
		}
		if st := h.e.Stats(); st.PendingHeld != 0 || st.Events[engine.EventBadChecksum] != 2 {
			t.Errorf("PendingHeld %d, bad_checksum events %d, want 0, 2", st.PendingHeld, st.Events[engine.EventBadChecksum])
		}
	})
}
