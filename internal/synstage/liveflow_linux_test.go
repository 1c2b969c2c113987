//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package synstage

import (
	"bytes"
	"fmt"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
)

// serverSynAck builds the server's SYN-ACK to the client of s (MSS 1400,
// no other option), checksums set.
func serverSynAck(tb testing.TB, s synSpec, seq, ack uint32) []byte {
	tb.Helper()
	tcp := &layers.TCP{SrcPort: layers.TCPPort(s.port), DstPort: layers.TCPPort(s.sport), Seq: seq, Ack: ack, SYN: true, ACK: true, Window: 65535,
		Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0x78}}}}
	buf := gopacket.NewSerializeBuffer()
	o := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	var err error
	if s.v6 {
		ip := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolTCP, HopLimit: 64, SrcIP: net.IP(server6.AsSlice()), DstIP: net.IP(client6.AsSlice())}
		tcp.SetNetworkLayerForChecksum(ip)
		err = gopacket.SerializeLayers(buf, o, ip, tcp)
	} else {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment,
			SrcIP: net.IP(server4.AsSlice()), DstIP: net.IP(client4.AsSlice())}
		tcp.SetNetworkLayerForChecksum(ip)
		err = gopacket.SerializeLayers(buf, o, ip, tcp)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return bytes.Clone(buf.Bytes())
}

// TestSynOnLiveFlow: a SYN on the tuple of a flow the engine holds (the
// client lost an established connection and reuses its port) is passed
// on to the engine instead of answered by the program, so that the
// engine's rule applies: it answers, and replaces the flow only when a
// valid ACK for the new ISN arrives. The program finds the flow in the
// engine's slot tags (gateway Config.FlowTagMemory); a SYN on another
// tuple is still answered.
func TestSynOnLiveFlow(t *testing.T) {
	p := newPairCache(t, diffPolicy(t), true)
	p.tcOnly = true
	for i, v6 := range []bool{false, true} {
		t.Run(fmt.Sprintf("v6=%v", v6), func(t *testing.T) {
			s := synSpec{v6: v6, port: portFull, mss: 1460, ws: 7, sack: true, isn: 0x10000 * uint32(i+1), sport: uint16(43000 + 10*i)}
			// The flow, established through the engine.
			o := p.runEngine(synPacket(t, s))
			if o.Kind != "answer" {
				t.Fatalf("engine on the first SYN: %+v", o)
			}
			var sa header.Packet
			if r := header.Parse(o.Packet, &sa); r != header.OK {
				t.Fatal(r)
			}
			a := s
			a.flags, a.isn, a.mss, a.ws, a.sack = header.ACK, s.isn+1, -1, -1, false
			ack := synPacket(t, a)
			var ap header.Packet
			header.Parse(ack, &ap)
			ap.TCP.SetAckNumber(sa.TCP.SequenceNumber() + 1)
			ap.SetTCPChecksum()
			var r engine.Result
			p.w.Process(ack, engine.Meta{}, p.now, &r)
			if r.Event != engine.EventHandshake {
				t.Fatalf("handshake ACK: %v", r.Event)
			}
			p.w.Process(serverSynAck(t, s, 0x7777, s.isn+1), engine.Meta{}, p.now, &r)
			if r.Event != engine.EventServerUp {
				t.Fatalf("server SYN-ACK: %v, want %v", r.Event, engine.EventServerUp)
			}

			before, err := p.s.Stats()
			if err != nil {
				t.Fatal(err)
			}
			again := s
			again.isn = s.isn + 0x5000
			if o := p.runBPF(p.s.objs.SynstageTc, false, ethernet(synPacket(t, again))); o.Kind != "pass" {
				t.Errorf("program on a SYN on the established flow's tuple: %+v, want pass (the engine's)", o)
			}
			after, err := p.s.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if after.LiveFlow != before.LiveFlow+1 || after.Answered != before.Answered {
				t.Errorf("Stats() LiveFlow %d -> %d, Answered %d -> %d; want LiveFlow one more, Answered unchanged",
					before.LiveFlow, after.LiveFlow, before.Answered, after.Answered)
			}
			// The engine takes it by its own rule.
			if o := p.runEngine(synPacket(t, again)); o.Kind != "answer" {
				t.Errorf("engine on the SYN the program passed: %+v, want an answer", o)
			}
			other := s
			other.sport++
			if o := p.runBPF(p.s.objs.SynstageTc, false, ethernet(synPacket(t, other))); o.Kind != "answer" {
				t.Errorf("program on a SYN on another tuple: %+v, want an answer", o)
			}
		})
	}
}
