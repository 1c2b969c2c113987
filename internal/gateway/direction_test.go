package gateway

import (
	"net/netip"
	"testing"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
)

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
