package gateway

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
)

// TestOutbound (issue 12, 8): a guarded server opening a connection of its
// own (from a guarded port, as with every port guarded) to a host outside
// gets its SYN through, and the connection's packets both ways pass
// untouched; a SYN-ACK from outside without such a connection is still
// dropped, and so is a server's SYN in a drop-mode service.
func TestOutbound(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())
		remote := other4
		if v6 {
			remote = netip.MustParseAddr("2001:db8:99::9")
		}
		const rport = 443
		// A SYN-ACK from outside before any outbound SYN: dropped.
		h.expect(h.craft(seg{src: remote, sport: rport, flags: header.SYN | header.ACK, seq: 1, ack: 2}), engine.Drop, engine.EventMalformed)

		steps := []struct {
			name string
			seg  seg
		}{
			{"server SYN", seg{fromServer: true, dst: remote, dport: rport, flags: header.SYN, seq: 1000, win: 64240, mss: 1460}},
			{"remote SYN-ACK", seg{src: remote, sport: rport, flags: header.SYN | header.ACK, seq: 5000, ack: 1001, win: 65160, mss: 1400}},
			{"server ACK", seg{fromServer: true, dst: remote, dport: rport, flags: header.ACK, seq: 1001, ack: 5001, win: 502}},
			{"server data", seg{fromServer: true, dst: remote, dport: rport, flags: header.ACK | header.PSH, seq: 1001, ack: 5001, win: 502, payload: "GET /"}},
			{"remote data", seg{src: remote, sport: rport, flags: header.ACK | header.PSH, seq: 5001, ack: 1006, win: 500, payload: "200 OK"}},
			{"server FIN", seg{fromServer: true, dst: remote, dport: rport, flags: header.ACK | header.FIN, seq: 1006, ack: 5007, win: 502}},
		}
		for _, st := range steps {
			pkt := h.craft(st.seg)
			orig := append([]byte(nil), pkt...)
			r := h.run(pkt, engine.Meta{})
			if r.Verdict != engine.Accept || r.Event != engine.EventOutbound || r.Packet != nil {
				t.Fatalf("%s: Process = %v/%v (reason %v, altered %v), want accept/outbound untouched", st.name, r.Verdict, r.Event, r.Reason, r.Packet != nil)
			}
			if !bytes.Equal(pkt, orig) {
				t.Fatalf("%s: packet rewritten", st.name)
			}
		}
		if got := h.e.Stats().OutboundFlows; got != 1 {
			t.Errorf("Stats().OutboundFlows = %d, want 1", got)
		}
		// A drop-mode service's server stays silent.
		h.expect(h.craft(seg{fromServer: true, sport: dropPort, dst: remote, dport: rport, flags: header.SYN, seq: 1}), engine.Drop, engine.EventMalformed)
		// The proxied service still works beside it.
		h.establish(7, "")
	})
}
