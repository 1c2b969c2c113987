package reference

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/synwall/synwall/internal/cookies"
	"github.com/synwall/synwall/internal/policy"
)

var now = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type zeroReader struct{}

func (zeroReader) Read(b []byte) (int, error) { clear(b); return len(b), nil }

func syns(tb testing.TB, n int) [][]byte {
	var out [][]byte
	for i := 0; i < n; i++ {
		tcp := &layers.TCP{SrcPort: layers.TCPPort(1024 + i), DstPort: 80, Seq: uint32(i) * 7919, SYN: true, Window: 64240}
		mss := make([]byte, 2)
		binary.BigEndian.PutUint16(mss, 1460)
		ts := make([]byte, 8)
		binary.BigEndian.PutUint32(ts, uint32(i))
		tcp.Options = []layers.TCPOption{
			{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: mss},
			{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
			{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: ts},
			{OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
		}
		var ip gopacket.SerializableLayer
		if i%2 == 1 {
			l := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: net.ParseIP("2001:db8::5"), DstIP: net.ParseIP("2001:db8:1::10")}
			binary.BigEndian.PutUint16(l.SrcIP[12:], uint16(i))
			tcp.SetNetworkLayerForChecksum(l)
			ip = l
		} else {
			l := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IPv4(198, 18, byte(i>>8), byte(i)).To4(), DstIP: net.IPv4(198, 18, 1, 10).To4()}
			tcp.SetNetworkLayerForChecksum(l)
			ip = l
		}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, tcp); err != nil {
			tb.Fatal(err)
		}
		out = append(out, buf.Bytes())
	}
	return out
}

var adv = policy.Advertise{MSS4: 1460, MSS6: 1440, WScale: 7, SACK: true, Timestamps: true, Window: 65535}

func TestSynAck(t *testing.T) {
	jar, err := cookies.New(cookies.Config{Rand: zeroReader{}}, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range syns(t, 4) {
		out, err := SynAck(p, jar, adv, now)
		if err != nil {
			t.Fatalf("SynAck: %v", err)
		}
		pk := gopacket.NewPacket(out, layers.LayerTypeIPv4, gopacket.Default)
		if out[0]>>4 == 6 {
			pk = gopacket.NewPacket(out, layers.LayerTypeIPv6, gopacket.Default)
		}
		tcp, ok := pk.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if !ok || !tcp.SYN || !tcp.ACK || tcp.DstPort < 1024 || tcp.SrcPort != 80 {
			t.Fatalf("SynAck = %v, want a SYN-ACK from port 80", pk)
		}
	}
	if _, err := SynAck([]byte{0x45, 0}, jar, adv, now); err == nil {
		t.Errorf("SynAck(garbage) = nil error, want one")
	}
}

func BenchmarkReferenceSYN(b *testing.B) {
	jar, err := cookies.New(cookies.Config{Rand: zeroReader{}}, now)
	if err != nil {
		b.Fatal(err)
	}
	ps := syns(b, 1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := SynAck(ps[i%len(ps)], jar, adv, now); err != nil {
			b.Fatal(err)
		}
	}
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "pkts/s")
	}
}
