package gateway

import (
	"net/netip"
	"testing"

	"github.com/synwall/synwall/gateway/header"
	"github.com/synwall/synwall/policy"
)

// TestWorkerLookupFollowsPolicy: the worker's remembered service never
// outlives the policy it came from, and never answers for another port or
// address.
func TestWorkerLookupFollowsPolicy(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())
		syn := h.craft(fullSyn())
		h.expect(append([]byte(nil), syn...), Drop, EventSynAnswered)
		h.expect(append([]byte(nil), syn...), Drop, EventSynAnswered)
		// Same address, other ports: other services.
		h.expect(h.craft(seg{flags: header.SYN, seq: 1, dport: passPort}), Accept, EventPassed)
		h.expect(h.craft(seg{flags: header.SYN, seq: 1, dport: dropPort}), Drop, EventPolicyDrop)
		h.expect(append([]byte(nil), syn...), Drop, EventSynAnswered)
		// A server packet (looked up by its source) of no flow.
		h.expect(h.craft(seg{fromServer: true, flags: header.ACK, seq: 9, ack: 9}), Drop, EventUnknown)

		// The same service turned to drop in a new policy.
		pfx := []netip.Prefix{netip.MustParsePrefix("198.18.1.0/24"), netip.MustParsePrefix("2001:db8:1::/64")}
		p2, err := policy.New([]*policy.Service{{Name: "web", Mode: policy.ModeDrop, Prefixes: pfx, PortLo: serverPort, PortHi: serverPort, Advertise: testAdvertise()}}, policy.Tables{})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.e.SetPolicy(p2); err != nil {
			t.Fatal(err)
		}
		h.expect(append([]byte(nil), syn...), Drop, EventPolicyDrop)
		// No service at all: unguarded both ways.
		p3, err := policy.New(nil, policy.Tables{})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.e.SetPolicy(p3); err != nil {
			t.Fatal(err)
		}
		h.expect(append([]byte(nil), syn...), Accept, EventUnguarded)
		h.expect(h.craft(seg{fromServer: true, flags: header.ACK, seq: 9, ack: 9}), Accept, EventUnguarded)
	})
}
