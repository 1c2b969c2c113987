package gateway

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
	"github.com/synwall/synwall/internal/policy"
)

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
