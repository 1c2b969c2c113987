package gateway

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
)

// icmpError builds an ICMP error (fragmentation needed, or packet too big)
// from router to dst quoting quoted, checksums computed.
func icmpError(t testing.TB, router, dst netip.Addr, quoted []byte) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	var err error
	if dst.Is4() {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: net.IP(router.AsSlice()), DstIP: net.IP(dst.AsSlice())}
		ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded), Seq: 1400}
		err = gopacket.SerializeLayers(buf, opts, ip, ic, gopacket.Payload(quoted))
	} else {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: net.IP(router.AsSlice()), DstIP: net.IP(dst.AsSlice())}
		ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypePacketTooBig, 0)}
		ic.SetNetworkLayerForChecksum(ip)
		err = gopacket.SerializeLayers(buf, opts, ip, ic, gopacket.Payload(append([]byte{0, 0, 0x05, 0x00}, quoted...)))
	}
	if err != nil {
		t.Fatalf("SerializeLayers: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// icmpSumOK checks the ICMP (or ICMPv6, with its pseudo-header) checksum of
// packet b, whose IP header is ipLen bytes.
func icmpSumOK(b []byte, ipLen int) bool {
	m := b[ipLen:]
	if ipLen == 20 {
		return naiveSum(m) == 0xffff
	}
	ph := append(append([]byte{}, b[8:40]...), 0, 0, byte(len(m)>>8), byte(len(m)), 0, 0, 0, 58)
	return naiveSum(append(ph, m...)) == 0xffff
}

// TestICMPErrorTranslated (issue 12, examined): an ICMP error toward a
// server quoting its translated segment (the router saw our cookie's
// sequence space) reaches it with the quoted sequence number moved back
// into the server's space and a valid checksum, so that the server's path
// MTU discovery works; one toward a client passes untouched, as does one
// about a flow the engine does not have.
func TestICMPErrorTranslated(t *testing.T) {
	families(t, func(t *testing.T, v6 bool) {
		h := newHarness(t, v6, testAdvertise())
		cookie, _, _ := h.establish(-1, "")
		router, ipLen := other4, 20
		if v6 {
			router, ipLen = netip.MustParseAddr("2001:db8:99::1"), 40
		}
		// The server's segment as it left the gateway: seq in our space.
		out := h.craft(seg{fromServer: true, flags: header.ACK | header.PSH, seq: cookie + 1, ack: clientISN + 1, win: 500, payload: "big segment"})
		pkt := icmpError(t, router, h.server(), out[:ipLen+20])
		seqOff := len(pkt) - 20 + 4
		r := h.run(pkt, engine.Meta{})
		if r.Verdict != engine.Accept || r.Event != engine.EventTranslated || r.Packet == nil {
			t.Fatalf("ICMP error to the server: %v/%v (reason %v), want accept/translated, rewritten", r.Verdict, r.Event, r.Reason)
		}
		if got := binary.BigEndian.Uint32(r.Packet[seqOff:]); got != serverISN+1 {
			t.Errorf("quoted sequence number %d, want the server's %d", got, serverISN+1)
		}
		if !icmpSumOK(r.Packet, ipLen) {
			t.Errorf("ICMP checksum wrong after the rewrite")
		}
		// Toward the client, quoting its own segment: untouched.
		in := h.craft(seg{flags: header.ACK, seq: clientISN + 1, ack: cookie + 1, win: 500, payload: "x"})
		pkt = icmpError(t, router, h.client(), in[:ipLen+20])
		if r := h.run(pkt, engine.Meta{}); r.Verdict != engine.Accept || r.Packet != nil || r.Event != engine.EventPassed {
			t.Errorf("ICMP error to the client: %v/%v altered %v, want accept/passed untouched", r.Verdict, r.Event, r.Packet != nil)
		}
		// About a tuple without a flow: untouched.
		other := h.craft(seg{fromServer: true, dport: 50000, flags: header.ACK, seq: 5, ack: 6})
		pkt = icmpError(t, router, h.server(), other[:ipLen+20])
		if r := h.run(pkt, engine.Meta{}); r.Verdict != engine.Accept || r.Packet != nil {
			t.Errorf("ICMP error about no flow: %v altered %v, want accept untouched", r.Verdict, r.Packet != nil)
		}
	})
}
