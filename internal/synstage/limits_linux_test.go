//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package synstage

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/policy"
)

// limitsYAML guards the differential tests' prefixes with a per-source
// limit of 5 SYNs per /24 (and /64) and a global SYN-ACK limit of 30, both
// refilled too slowly to matter while a test runs, with an allow list and
// a deny list.
const limitsYAML = `version: 1
services:
  - name: full
    addresses: [198.18.1.0/24, "2001:db8:1::/64"]
    ports: ["80"]
    mode: proxy
    advertise: {mss: 1460, mss6: 1440, wscale: 7, sack: true, timestamps: true, ecn: true, window: 65535}
    limits:
      syn_per_source: {rate: 1/h, burst: 5, prefix4: 24, prefix6: 64}
  - name: pass
    addresses: [198.18.1.0/24, "2001:db8:1::/64"]
    ports: ["81"]
    mode: pass
cookies:
  period: 30s
limits:
  synack_rate: 1/h
  synack_burst: 30
allow: [198.18.0.77/32, "2001:db8::77/128"]
deny: [198.18.0.66/32, "2001:db8::66/128"]
invalid_flags: %s
`

func limitsPolicy(t *testing.T, invalidFlags string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse("limits.yaml", fmt.Appendf(nil, limitsYAML, invalidFlags))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDifferentialLimits sends SYNs from several sources through the
// engine and the tc program alike, and holds every outcome of the program
// to the engine's: the per-source limit by /24 and /64 (a new prefix starts
// with a full bucket), the allow list's exemption, the deny list, the
// global SYN-ACK limit.
func TestDifferentialLimits(t *testing.T) {
	p := newPair(t, limitsPolicy(t, "drop"))
	p.tcOnly = true
	a := netip.MustParseAddr
	sources := []netip.Addr{
		a("198.18.0.5"), a("198.18.0.6"), // one /24: five answers between them
		a("198.18.0.77"), // allowed: answered past its /24's limit
		a("198.18.0.66"), // denied
		a("198.18.7.1"),  // a new /24: a full bucket
		a("2001:db8::5"), a("2001:db8::6"), a("2001:db8::77"), a("2001:db8::66"),
		a("2001:db8:0:1::5"),
	}
	got := map[string]int{}
	n := 0
	for round := range 8 {
		for _, src := range sources {
			s := synSpec{src: src, v6: src.Is6(), port: portFull, mss: 1460, ws: 7, sack: true, ts: true,
				isn: uint32(n) * 7919, sport: uint16(1024 + n), tsval: uint32(n)}
			o := p.compare(fmt.Sprintf("round %d from %v", round, src), synPacket(t, s))
			if o.Kind == "pass" {
				t.Errorf("round %d from %v: the program passed a SYN to a proxied service", round, src)
			}
			got[o.Kind+" "+o.Reason]++
			n++
		}
	}
	t.Logf("outcomes: %v", got)
	// 30 SYN-ACKs in all (the global burst), 8 from each denied source,
	// the rest refused by a limit.
	want := map[string]int{
		"answer ":          30,
		"drop policy_drop": 16,
		"drop " + engine.EventSynLimited.String(): n - 30 - 16,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%q: %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
	st, err := p.s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Denied != 16 || st.SynLimited+st.SynAckLimited != uint64(n-30-16) || st.SynAckLimited == 0 || st.SynLimited == 0 {
		t.Errorf("Stats() = %+v: want 16 denied and %d limited, per source and globally", st, n-30-16)
	}
}

// TestInvalidFlagsCount checks that under invalid_flags: count the program
// lets invalid segments through for the engine to count, instead of
// dropping them.
func TestInvalidFlagsCount(t *testing.T) {
	p := newPair(t, limitsPolicy(t, "count"))
	for _, fl := range []uint8{0x03, 0x06, 0x01, 0x29, 0x12} { // SYN+FIN, SYN+RST, FIN, xmas, SYN+ACK
		s := synSpec{port: portFull, mss: 1460, ws: -1, flags: fl, isn: 5, sport: 4000}
		if o := p.compare(fmt.Sprintf("flags %#x", fl), synPacket(t, s)); o.Kind != "pass" {
			t.Errorf("flags %#x: %+v, want pass", fl, o)
		}
	}
	st, err := p.s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.DroppedMalformed() != 0 || st.InvalidCounted != 10 {
		t.Errorf("Stats() = %+v, want nothing dropped and 10 passed as counted", st)
	}
}

// TestSetPolicySwap replaces the policy under the program: ports the new
// policy guards are answered, ports it no longer guards pass, and a
// service's per-source buckets survive a reload that keeps its name and
// prefix lengths, as the engine's limiters do.
func TestSetPolicySwap(t *testing.T) {
	p := newPair(t, limitsPolicy(t, "drop"))
	p.tcOnly = true
	syn := func(port uint16, n int) synSpec {
		return synSpec{src: netip.MustParseAddr("198.18.9.9"), port: port, mss: 1460, ws: -1, isn: uint32(n), sport: uint16(5000 + n)}
	}
	for i := range 5 { // the whole burst of 198.18.9.0/24
		if o := p.compare("before", synPacket(t, syn(portFull, i))); o.Kind != "answer" {
			t.Fatalf("SYN %d before the reload: %+v", i, o)
		}
	}
	if o := p.runBPF(p.s.objs.SynstageTc, false, ethernet(synPacket(t, syn(portBare, 9)))); o.Kind != "pass" {
		t.Errorf("port %d before the reload: %+v, want pass (unguarded)", portBare, o)
	}
	// Same service and limit, one more port; the pass service goes.
	next, err := policy.Parse("next.yaml", []byte(`version: 1
services:
  - name: full
    addresses: [198.18.1.0/24, "2001:db8:1::/64"]
    ports: ["80", "8080"]
    mode: proxy
    advertise: {mss: 1460, mss6: 1440, wscale: 7, sack: true, timestamps: true, ecn: true, window: 65535}
    limits:
      syn_per_source: {rate: 1/h, burst: 5, prefix4: 24, prefix6: 64}
cookies:
  period: 30s
limits:
  synack_rate: none
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.s.SetPolicy(next); err != nil {
		t.Fatal(err)
	}
	if o := p.runBPF(p.s.objs.SynstageTc, false, ethernet(synPacket(t, syn(portBare, 10)))); o.Kind != "drop" || o.Reason != engine.EventSynLimited.String() {
		t.Errorf("port %d after the reload from a source past its burst: %+v, want a drop by the kept per-source limit", portBare, o)
	}
	other := syn(portBare, 11)
	other.src = netip.MustParseAddr("198.18.10.1")
	if o := p.runBPF(p.s.objs.SynstageTc, false, ethernet(synPacket(t, other))); o.Kind != "answer" {
		t.Errorf("port %d after the reload: %+v, want an answer", portBare, o)
	}
	if o := p.runBPF(p.s.objs.SynstageTc, false, ethernet(synPacket(t, syn(portPass, 12)))); o.Kind != "pass" {
		t.Errorf("port %d after the reload: %+v, want pass (no longer guarded)", portPass, o)
	}
	// A reload that changes the prefix length starts the buckets afresh.
	third, err := policy.Parse("third.yaml", []byte(`version: 1
services:
  - name: full
    addresses: [198.18.1.0/24, "2001:db8:1::/64"]
    ports: ["80", "8080"]
    mode: proxy
    limits:
      syn_per_source: {rate: 1/h, burst: 5, prefix4: 32, prefix6: 64}
cookies:
  period: 30s
limits:
  synack_rate: none
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.s.SetPolicy(third); err != nil {
		t.Fatal(err)
	}
	if o := p.runBPF(p.s.objs.SynstageTc, false, ethernet(synPacket(t, syn(portFull, 13)))); o.Kind != "answer" {
		t.Errorf("after a reload to /32 buckets: %+v, want an answer", o)
	}
}

// takeoverYAML limits each /32 to a burst of 3 SYNs, refilled once an hour
// (limited) or every 10 µs (fast).
const takeoverYAML = `version: 1
services:
  - name: full
    addresses: [198.18.1.0/24]
    ports: ["80"]
    mode: proxy
    limits:
      syn_per_source: {rate: %s, burst: 3, prefix4: 32}
limits:
  synack_rate: none
`

// TestLimiterTakeover holds the limiter table's slot ownership to its
// rule with a table of one slot, where every prefix shares it: a source
// over its limit keeps the slot (another prefix is charged to its bucket
// and cannot hand it a fresh one), and a prefix takes the slot over, with
// a full bucket, once the owner's bucket is full again.
func TestLimiterTakeover(t *testing.T) {
	run := func(p *pair, src string, n int) (answered int) {
		for i := range n {
			s := synSpec{src: netip.MustParseAddr(src), port: portFull, mss: 1460, ws: -1, isn: uint32(1000 + i), sport: uint16(2000 + i)}
			if o := p.runBPF(p.s.objs.SynstageTc, false, ethernet(synPacket(t, s))); o.Kind == "answer" {
				answered++
			}
		}
		return answered
	}
	pol, err := policy.Parse("takeover.yaml", fmt.Appendf(nil, takeoverYAML, "1/h"))
	if err != nil {
		t.Fatal(err)
	}
	p := newPairOpts(t, pol, Options{Flows: 1024, SourceLimitSlots: 1})
	if got := run(p, "198.18.0.5", 5); got != 3 {
		t.Fatalf("source A: %d of 5 answered, want its burst of 3", got)
	}
	// B shares the slot; A's bucket is empty, so B is charged to it.
	if got := run(p, "198.18.0.6", 3); got != 0 {
		t.Errorf("source B on A's exhausted slot: %d answered, want 0", got)
	}
	if got := run(p, "198.18.0.5", 2); got != 0 {
		t.Errorf("source A after B: %d answered, want 0 (B must not have handed the slot a full bucket)", got)
	}

	// Refilled every 10 µs: after a pause A's bucket is full again, and B
	// takes the slot over with a full bucket of its own.
	if pol, err = policy.Parse("takeover.yaml", fmt.Appendf(nil, takeoverYAML, "100k/s")); err != nil {
		t.Fatal(err)
	}
	p = newPairOpts(t, pol, Options{Flows: 1024, SourceLimitSlots: 1})
	if got := run(p, "198.18.0.5", 1); got != 1 {
		t.Fatalf("fast: source A: %d answered, want 1", got)
	}
	time.Sleep(5 * time.Millisecond)
	if got := run(p, "198.18.0.6", 1); got != 1 {
		t.Errorf("fast: source B after A's bucket refilled: %d answered, want 1", got)
	}
}
