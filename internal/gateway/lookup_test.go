package gateway

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
	"github.com/synwall/synwall/internal/policy"
)

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
		{"server SYN alone", seg{fromServer: true, flags: header.SYN}, engine.Drop, engine.EventMalformed, header.ServerSyn},
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
