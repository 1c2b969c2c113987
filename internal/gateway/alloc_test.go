package gateway

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/synwall/synwall/internal/engine"
)

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
