package gateway

import (
	"net/netip"
	"testing"

	"github.com/synwall/synwall/internal/policy"
)

// TestConfigFlowSeed: an engine given the FlowSeed of an earlier one (a
// graceful restart adopting the shared SYN cache) hashes tuples with it;
// without one, the seed is drawn from Rand.
func TestConfigFlowSeed(t *testing.T) {
	a, err := New(Config{Policy: testPolicy(t, testAdvertise()), Rand: seeded(1)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{Policy: testPolicy(t, testAdvertise()), Rand: seeded(2), FlowSeed: a.FlowSeed()})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := b.FlowSeed(), a.FlowSeed(); got != want {
		t.Errorf("FlowSeed() with Config.FlowSeed = %x, want %x", got, want)
	}
	c, err := New(Config{Policy: testPolicy(t, testAdvertise()), Rand: seeded(2)})
	if err != nil {
		t.Fatal(err)
	}
	if c.FlowSeed() == a.FlowSeed() {
		t.Errorf("FlowSeed() without Config.FlowSeed = %x, the seed of another Rand", c.FlowSeed())
	}
}

// fakeBudget is a shared SYN-ACK budget of n SYN-ACKs, in force or not.
type fakeBudget struct {
	n       int
	inForce bool
	calls   int
}

func (b *fakeBudget) AllowSynAck() (bool, bool) {
	b.calls++
	if !b.inForce {
		return true, false
	}
	if b.n == 0 {
		return false, true
	}
	b.n--
	return true, true
}

// TestSharedSynAckLimiter: with Config.SynAckLimiter in force the global
// SYN-ACK limit is the shared budget's, not the engine's own bucket (burst
// 8 in limitedPolicy); not in force, the engine's bucket applies; without
// a global limit in the policy neither is consulted.
func TestSharedSynAckLimiter(t *testing.T) {
	src := netip.MustParseAddr("198.18.7.1")
	tests := []struct {
		name      string
		rate      policy.Rate
		budget    fakeBudget
		want      int
		wantCalls bool
	}{
		{"in force", policy.PerSecond(1), fakeBudget{n: 3, inForce: true}, 3, true},
		{"in force, larger than the engine's bucket", policy.PerSecond(1), fakeBudget{n: 12, inForce: true}, 12, true},
		{"not in force", policy.PerSecond(1), fakeBudget{n: 3}, 8, true},
		{"no global limit", policy.Rate{}, fakeBudget{n: 3, inForce: true}, 20, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.budget
			h := newHarness(t, false, testAdvertise(), func(c *Config) { c.SynAckLimiter = &b })
			if err := h.e.SetPolicy(limitedPolicy(t, false, tc.rate)); err != nil {
				t.Fatal(err)
			}
			if got := h.answered(src, 20); got != tc.want {
				t.Errorf("20 SYNs: %d answered, want %d", got, tc.want)
			}
			if (b.calls > 0) != tc.wantCalls {
				t.Errorf("budget consulted %d times, want consulted: %v", b.calls, tc.wantCalls)
			}
		})
	}
}
