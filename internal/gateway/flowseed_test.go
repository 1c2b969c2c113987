package gateway

import "testing"

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
