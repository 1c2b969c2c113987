//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bounce

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"
)

// TestObjectSources checks that bpf/bounce.c is the source the committed
// object was generated from (bpf/bounce.sha256, written by go generate).
func TestObjectSources(t *testing.T) {
	rec, err := os.ReadFile("bpf/bounce.sha256")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("bpf/bounce.c")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if want := hex.EncodeToString(sum[:]) + "  bpf/bounce.c\n"; string(rec) != want {
		t.Errorf("bpf/bounce.sha256 = %q, want %q: bounce.c changed since the object was generated; run go generate ./internal/bounce/", rec, want)
	}
}

// frame is an Ethernet frame of a TCP segment with flags from src:sport
// to dst:80, checksums set, with a Linux SYN's options.
func frame(t *testing.T, src, dst net.IP, syn, ack bool) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, Seq: 0x01020304, SYN: syn, ACK: ack, Window: 64240,
		Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{5, 0xb4}}}}
	var ip gopacket.SerializableLayer
	if src.To4() != nil {
		eth.EthernetType = layers.EthernetTypeIPv4
		v4 := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src, DstIP: dst}
		tcp.SetNetworkLayerForChecksum(v4)
		ip = v4
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		v6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: src, DstIP: dst}
		tcp.SetNetworkLayerForChecksum(v6)
		ip = v6
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestBounce runs the program (BPF_PROG_TEST_RUN) on SYNs of both
// families: each comes back a SYN-ACK to its sender, acknowledging its
// sequence number, with a checksum that verifies; other segments pass
// untouched.
func TestBounce(t *testing.T) {
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Skipf("needs root: %v", err)
	}
	var objs bounceObjects
	if err := loadBounceObjects(&objs, nil); err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Skipf("loading BPF needs root: %v", err)
		}
		t.Fatal(err)
	}
	defer objs.Close()
	const tcOK, tcRedirect = 0, 7
	for _, c := range []struct{ src, dst string }{{"198.18.0.5", "198.18.3.10"}, {"2001:db8::5", "2001:db8:3::10"}} {
		src, dst := net.ParseIP(c.src), net.ParseIP(c.dst)
		in := frame(t, src, dst, true, false)
		out := make([]byte, len(in)+64)
		ret, err := objs.Bounce.Run(&ebpf.RunOptions{Data: in, DataOut: out})
		if err != nil {
			t.Fatal(err)
		}
		if ret != tcRedirect {
			t.Fatalf("%s: returned %d, want TC_ACT_REDIRECT", c.src, ret)
		}
		p := gopacket.NewPacket(out[:len(in)], layers.LayerTypeEthernet, gopacket.Default)
		tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if tcp == nil {
			t.Fatalf("%s: no TCP in %x", c.src, out[:len(in)])
		}
		nl := p.NetworkLayer()
		if !tcp.SYN || !tcp.ACK || tcp.Ack != 0x01020305 || tcp.SrcPort != 80 || tcp.DstPort != 40000 ||
			!net.IP(nl.NetworkFlow().Src().Raw()).Equal(dst) || !net.IP(nl.NetworkFlow().Dst().Raw()).Equal(src) {
			t.Errorf("%s: got %v %v, want a SYN-ACK from %s:80 to %s:40000 acknowledging 0x01020305", c.src, nl.NetworkFlow(), tcp, dst, src)
		}
		// The checksum the program left, against one computed afresh.
		got := tcp.Checksum
		if err := tcp.SetNetworkLayerForChecksum(nl); err != nil {
			t.Fatal(err)
		}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, tcp, gopacket.Payload(tcp.Payload)); err != nil {
			t.Fatal(err)
		}
		if want := uint16(buf.Bytes()[16])<<8 | uint16(buf.Bytes()[17]); got != want {
			t.Errorf("%s: TCP checksum %#04x, want %#04x", c.src, got, want)
		}
		ack := frame(t, src, dst, false, true)
		if ret, err := objs.Bounce.Run(&ebpf.RunOptions{Data: ack, DataOut: out}); err != nil || ret != tcOK {
			t.Errorf("%s: an ACK returned %d, %v; want TC_ACT_OK", c.src, ret, err)
		} else if string(out[:len(ack)]) != string(ack) {
			t.Errorf("%s: the ACK was changed", c.src)
		}
	}
}
