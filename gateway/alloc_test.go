package gateway

import (
	"encoding/binary"
	"testing"
	"time"
)

// TestZeroAllocs asserts that the per-packet paths do not allocate.
func TestZeroAllocs(t *testing.T) {
	const n = 64
	fx := newFixture(t, n, func(c *Config) { c.HandshakeTimeout = time.Nanosecond })
	var r Result
	i := 0
	check := func(name string, want Event, f func()) {
		t.Helper()
		if a := testing.AllocsPerRun(200, f); a != 0 {
			t.Errorf("%s: %v allocs per packet, want 0", name, a)
		}
		if r.Event != want {
			t.Errorf("%s: last event %v, want %v", name, r.Event, want)
		}
	}
	check("translate client", EventTranslated, func() { i++; fx.w.Process(fx.c2s[i%n], Meta{}, fx.now, &r) })
	check("translate server", EventTranslated, func() { i++; fx.w.Process(fx.s2c[i%n], Meta{}, fx.now, &r) })
	check("gso translate", EventTranslated, func() { i++; fx.w.Process(fx.s2c[i%n], Meta{CsumNotReady: true}, fx.now, &r) })
	check("invalid flags", EventMalformed, func() { i++; fx.w.Process(fx.bad[i%n], Meta{}, fx.now, &r) })
	check("syn", EventSynAnswered, func() {
		i++
		k := i % n
		binary.BigEndian.PutUint32(fx.syn[k][fx.synSeqOff[k]:], uint32(i))
		fx.w.Process(fx.syn[k], Meta{}, fx.now, &r)
	})
	fx.forgetFlows()
	now := fx.now.Add(time.Second)
	check("ack", EventHandshake, func() {
		i++
		now = now.Add(time.Microsecond)
		fx.w.Process(fx.ack[i%n], Meta{}, now, &r)
	})
	garbage := []byte{0x45, 1, 2, 3}
	check("garbage", EventMalformed, func() { fx.w.Process(garbage, Meta{}, fx.now, &r) })
}
