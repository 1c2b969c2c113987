package conntrack

// The kernel-level proof of the hand-off, without synwall's engine: a lab
// of namespaces (client, gateway, server; veth; 198.18.0.0/15 and
// 2001:db8::/32), the gateway set up as synwall sets it up, an entry made
// by a Handoff, and crafted segments from both ends whose sequence spaces
// differ by the entry's offsets. What arrives is captured (AF_PACKET, before
// the receiving stack's netfilter, which drops the segments so that no stack
// answers them) and decoded with gopacket.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/synwall/synwall/deploy/lab"
	"github.com/synwall/synwall/internal/gateway/header"
)

// gatewayRules are the rules of the proof, in iptables-restore syntax for
// the filter and raw tables; %s is the protocol's MSS for the SYNPROXY rule.
//
//   - raw: the SYNs of the guarded port are not tracked, as kernel
//     SYNPROXY's own setup does, so that no entry exists before the
//     hand-off creates one with its extensions.
//   - filter FORWARD: packets of synwall's entries pass; then a SYNPROXY
//     rule that never matches (mark & 0 == 1): while a SYNPROXY target
//     exists in a namespace the kernel keeps its synproxy hooks registered
//     there (nf_synproxy_ipv4_init / _ipv6_init), and those hooks are what
//     adjusts the timestamps of an entry with the synproxy extension
//     (synproxy_tstamp_adjust); seqadj alone is done by nf_confirm. Last,
//     every other TCP segment is dropped, so the test sees only what the
//     entry let through (synwall queues them instead).
const gatewayRules = `*raw
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p tcp --dport 8080 --tcp-flags SYN,ACK,RST,FIN SYN -m comment --comment synwall-test -j CT --notrack
COMMIT
*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED -m connmark --mark 0x53570000/0xffff0000 -m comment --comment synwall-test -j ACCEPT
-A FORWARD -p tcp -m mark --mark 0x1/0x0 -m comment --comment "synwall-test: never matches; keeps the SYNPROXY hooks that adjust timestamps" -j SYNPROXY --sack-perm --timestamp --wscale 7 --mss %s
-A FORWARD -p tcp -m comment --comment synwall-test -j DROP
COMMIT
`

// endRules keep the client's and the server's stacks from answering the
// crafted segments (AF_PACKET has seen them before).
const endRules = `*raw
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -m multiport --ports 8080,8081 -m comment --comment synwall-test -j DROP
COMMIT
`

func newKernelLab(t *testing.T) *lab.Lab {
	t.Helper()
	needTools(t, "ip", "iptables", "ip6tables", "iptables-restore", "ip6tables-restore")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := lab.Up(ctx, lab.Config{Prefix: fmt.Sprintf("swct%d-%d", os.Getpid(), nsSeq.Add(1))})
	if errors.Is(err, lab.ErrPermission) {
		t.Skipf("needs root to build network namespaces: %v", err)
	}
	if err != nil {
		t.Fatalf("lab.Up: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("lab.Down: %v", err)
		}
	})
	// nf_conntrack_tcp_loose=0 in the gateway: a mid-stream segment without
	// an entry is INVALID instead of creating one. Restored at the end,
	// though the namespace goes with the lab.
	old, err := lab.Sysctl(l.Gateway, "net.netfilter.nf_conntrack_tcp_loose")
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.SetSysctl(l.Gateway, "net.netfilter.nf_conntrack_tcp_loose", "0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.SetSysctl(l.Gateway, "net.netfilter.nf_conntrack_tcp_loose", old); err != nil {
			t.Errorf("restore nf_conntrack_tcp_loose: %v", err)
		}
	})
	for _, v := range []struct{ restore, mss string }{{"iptables-restore", "1460"}, {"ip6tables-restore", "1440"}} {
		restore(t, l, l.Gateway, v.restore, fmt.Sprintf(gatewayRules, v.mss))
		restore(t, l, l.Client, v.restore, endRules)
		restore(t, l, l.Server, v.restore, endRules)
	}
	return l
}

func restore(t *testing.T, l *lab.Lab, ns, cmd, rules string) {
	t.Helper()
	c := l.Cmd(context.Background(), ns, cmd, "-w", "10")
	c.Stdin = strings.NewReader(rules)
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("%s in %s: %v: %s\n%s", cmd, ns, err, out, rules)
	}
}

// segment is what the test sends and checks of a TCP segment.
type segment struct {
	Src, Dst     netip.AddrPort
	Seq, Ack     uint32
	Flags        string // "A", "PA", "RA", ...
	TSval, TSecr uint32 // sent when either is non-zero
	SACK         [][2]uint32
	Payload      string
}

func (s segment) String() string {
	return fmt.Sprintf("%s->%s [%s] seq %d ack %d ts %d/%d sack %v %q", s.Src, s.Dst, s.Flags, s.Seq, s.Ack, s.TSval, s.TSecr, s.SACK, s.Payload)
}

// build serializes s with gopacket, checksums computed.
func (s segment) build(t *testing.T) []byte {
	t.Helper()
	tcp := &layers.TCP{
		SrcPort: layers.TCPPort(s.Src.Port()), DstPort: layers.TCPPort(s.Dst.Port()),
		Seq: s.Seq, Ack: s.Ack, Window: 500,
		ACK: strings.Contains(s.Flags, "A"), PSH: strings.Contains(s.Flags, "P"),
		RST: strings.Contains(s.Flags, "R"), FIN: strings.Contains(s.Flags, "F"),
	}
	if s.TSval != 0 || s.TSecr != 0 {
		d := make([]byte, 8)
		binary.BigEndian.PutUint32(d, s.TSval)
		binary.BigEndian.PutUint32(d[4:], s.TSecr)
		tcp.Options = append(tcp.Options,
			layers.TCPOption{OptionType: layers.TCPOptionKindNop, OptionLength: 1},
			layers.TCPOption{OptionType: layers.TCPOptionKindNop, OptionLength: 1},
			layers.TCPOption{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: d})
	}
	if len(s.SACK) > 0 {
		d := make([]byte, 0, 8*len(s.SACK))
		for _, b := range s.SACK {
			d = binary.BigEndian.AppendUint32(d, b[0])
			d = binary.BigEndian.AppendUint32(d, b[1])
		}
		tcp.Options = append(tcp.Options,
			layers.TCPOption{OptionType: layers.TCPOptionKindNop, OptionLength: 1},
			layers.TCPOption{OptionType: layers.TCPOptionKindNop, OptionLength: 1},
			layers.TCPOption{OptionType: layers.TCPOptionKindSACK, OptionLength: uint8(2 + len(d)), OptionData: d})
	}
	var nl gopacket.SerializableLayer
	if s.Src.Addr().Is4() {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: s.Src.Addr().AsSlice(), DstIP: s.Dst.Addr().AsSlice()}
		tcp.SetNetworkLayerForChecksum(ip)
		nl = ip
	} else {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: s.Src.Addr().AsSlice(), DstIP: s.Dst.Addr().AsSlice()}
		tcp.SetNetworkLayerForChecksum(ip)
		nl = ip
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		nl, tcp, gopacket.Payload(s.Payload)); err != nil {
		t.Fatalf("serialize %v: %v", s, err)
	}
	return buf.Bytes()
}

// parseSegment decodes a captured IP packet and checks its TCP checksum.
func parseSegment(b []byte) (segment, bool, error) {
	var first gopacket.Decoder = layers.LayerTypeIPv4
	if len(b) > 0 && b[0]>>4 == 6 {
		first = layers.LayerTypeIPv6
	}
	p := gopacket.NewPacket(b, first, gopacket.Default)
	tl, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if tl == nil {
		return segment{}, false, nil
	}
	var s segment
	var src, dst netip.Addr
	var pseudo []byte
	switch ip := p.NetworkLayer().(type) {
	case *layers.IPv4:
		src, _ = netip.AddrFromSlice(ip.SrcIP.To4())
		dst, _ = netip.AddrFromSlice(ip.DstIP.To4())
		pseudo = append(append(append([]byte{}, ip.SrcIP.To4()...), ip.DstIP.To4()...), 0, 6, 0, 0)
	case *layers.IPv6:
		src, _ = netip.AddrFromSlice(ip.SrcIP)
		dst, _ = netip.AddrFromSlice(ip.DstIP)
		pseudo = append(append(append([]byte{}, ip.SrcIP...), ip.DstIP...), 0, 0, 0, 0, 0, 0, 0, 6)
	default:
		return segment{}, false, nil
	}
	seg := append(append([]byte{}, tl.Contents...), tl.Payload...)
	if src.Is4() {
		binary.BigEndian.PutUint16(pseudo[10:], uint16(len(seg)))
	} else {
		binary.BigEndian.PutUint32(pseudo[32:], uint32(len(seg)))
	}
	if sum := header.Checksum(append(pseudo, seg...), 0); sum != 0xffff {
		return segment{}, true, fmt.Errorf("bad TCP checksum (sum %#x) in %x", sum, b)
	}
	s.Src = netip.AddrPortFrom(src, uint16(tl.SrcPort))
	s.Dst = netip.AddrPortFrom(dst, uint16(tl.DstPort))
	s.Seq, s.Ack = tl.Seq, tl.Ack
	for _, f := range []struct {
		on bool
		c  string
	}{{tl.PSH, "P"}, {tl.RST, "R"}, {tl.ACK, "A"}, {tl.FIN, "F"}, {tl.SYN, "S"}} {
		if f.on {
			s.Flags += f.c
		}
	}
	for _, o := range tl.Options {
		switch o.OptionType {
		case layers.TCPOptionKindTimestamps:
			s.TSval = binary.BigEndian.Uint32(o.OptionData)
			s.TSecr = binary.BigEndian.Uint32(o.OptionData[4:])
		case layers.TCPOptionKindSACK:
			for d := o.OptionData; len(d) >= 8; d = d[8:] {
				s.SACK = append(s.SACK, [2]uint32{binary.BigEndian.Uint32(d), binary.BigEndian.Uint32(d[4:])})
			}
		}
	}
	s.Payload = string(tl.Payload)
	return s, true, nil
}

// capture is an AF_PACKET socket on an interface of a namespace.
type capture struct{ fd int }

func openCapture(t *testing.T, ns, ifname string) *capture {
	t.Helper()
	var c capture
	err := lab.InNetns(ns, func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		ifi, err := netInterfaceIndex(ifname)
		if err != nil {
			unix.Close(fd)
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi}); err != nil {
			unix.Close(fd)
			return err
		}
		tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(fd)
			return err
		}
		c.fd = fd
		return nil
	})
	if err != nil {
		t.Fatalf("capture on %s in %s: %v", ifname, ns, err)
	}
	t.Cleanup(func() { unix.Close(c.fd) })
	return &c
}

// netInterfaceIndex reads the index over rtnetlink, from the calling
// thread's namespace (/sys shows the mount namespace's view instead).
func netInterfaceIndex(name string) (int, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0, err
	}
	return ifi.Index, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// next returns the next outgoing-direction-agnostic TCP segment from src
// to dst within d, or false.
func (c *capture) next(t *testing.T, src, dst netip.AddrPort, d time.Duration) (segment, bool) {
	t.Helper()
	buf := make([]byte, 65536)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			continue // timeout or EINTR: look at the clock again
		}
		s, ok, err := parseSegment(buf[:n])
		if !ok {
			continue
		}
		if err != nil {
			t.Errorf("captured: %v", err)
			continue
		}
		if s.Src == src && s.Dst == dst {
			return s, true
		}
	}
	return segment{}, false
}

// sender sends crafted IP packets from a namespace (IPPROTO_RAW: the
// packet carries its own IP header).
type sender struct{ fd4, fd6 int }

func openSender(t *testing.T, ns string) *sender {
	t.Helper()
	var s sender
	err := lab.InNetns(ns, func() error {
		var err error
		if s.fd4, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW); err != nil {
			return err
		}
		s.fd6, err = unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		return err
	})
	if err != nil {
		t.Fatalf("raw sockets in %s: %v", ns, err)
	}
	t.Cleanup(func() { unix.Close(s.fd4); unix.Close(s.fd6) })
	return &s
}

func (s *sender) send(t *testing.T, seg segment) {
	t.Helper()
	b := seg.build(t)
	var err error
	if seg.Dst.Addr().Is4() {
		err = unix.Sendto(s.fd4, b, 0, &unix.SockaddrInet4{Addr: seg.Dst.Addr().As4()})
	} else {
		err = unix.Sendto(s.fd6, b, 0, &unix.SockaddrInet6{Addr: seg.Dst.Addr().As16()})
	}
	if err != nil {
		t.Fatalf("send %v: %v", seg, err)
	}
}

// createsTo is a Config.Done that passes on the outcomes of creates only
// (the removals of entries that a reset closed come too).
func createsTo(res chan Result) func(Result) {
	return func(r Result) {
		if r.Op == OpCreate {
			res <- r
		}
	}
}

// TestKernelTranslatesHandedOffFlow is the proof: with the entry a Handoff
// made, the kernel forwards the segments of a connection whose two halves
// use different sequence and timestamp spaces, translated in both
// directions, SACK blocks included, checksums intact.
func TestKernelTranslatesHandedOffFlow(t *testing.T) {
	l := newKernelLab(t)
	res := make(chan Result, 8)
	var h *Handoff
	if err := lab.InNetns(l.Gateway, func() error {
		var err error
		h, err = New(Config{Done: createsTo(res), Timeout: 120 * time.Second})
		return err
	}); err != nil {
		t.Fatalf("New in the gateway: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	runHandoff(t, h)

	cliCap := openCapture(t, l.Client, lab.IfUplink)
	srvCap := openCapture(t, l.Server, lab.IfUplink)
	cli, srv := openSender(t, l.Client), openSender(t, l.Server)

	for _, fam := range []struct {
		name           string
		client, server netip.Addr
	}{
		{"ipv4", lab.ClientV4, lab.ServerV4},
		{"ipv6", lab.ClientV6, lab.ServerV6},
	} {
		t.Run(fam.name, func(t *testing.T) {
			const clientISN = 0x0badcafe
			f := Flow{
				Client: netip.AddrPortFrom(fam.client, 40000), Server: netip.AddrPortFrom(fam.server, 8080),
				ClientWScale: 7, ServerWScale: 7, Opts: OptWindowScale | OptSACK | OptTimestamps,
				CookieISN: 0x11111111, ServerISN: 0xf0000000, // the offset crosses 2^32
				ITS: 0x00010000, ServerTSval: 0x7fff0000,
			}
			// Before the hand-off the gateway drops the flow (no entry,
			// loose=0: INVALID).
			toClient := segment{Src: f.Server, Dst: f.Client, Seq: f.ServerISN + 1, Ack: clientISN + 1, Flags: "PA",
				TSval: f.ServerTSval + 5, TSecr: 777, Payload: "hello"}
			srv.send(t, toClient)
			if s, ok := cliCap.next(t, f.Server, f.Client, 300*time.Millisecond); ok {
				t.Fatalf("before the hand-off the client got %v; want it dropped", s)
			}

			if r := submitWait(t, h, res, f)[0]; r.Err != nil {
				t.Fatalf("hand-off: %v", r.Err)
			}

			// Server → client: seq moves into the cookie's space, TSval into
			// the client's view of synwall's clock.
			srv.send(t, toClient)
			got, ok := cliCap.next(t, f.Server, f.Client, 2*time.Second)
			if !ok {
				t.Fatalf("client got nothing for %v", toClient)
			}
			want := toClient
			want.Seq = f.CookieISN + 1
			want.TSval = f.ITS + 5
			want.Flags = "PA"
			if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
				t.Errorf("server→client segment as the client got it (-want +got):\n%s", diff)
			}

			// Client → server: ack, TSecr and SACK blocks move back.
			toServer := segment{Src: f.Client, Dst: f.Server, Seq: clientISN + 1, Ack: f.CookieISN + 6, Flags: "A",
				TSval: 4242, TSecr: f.ITS + 5, SACK: [][2]uint32{{f.CookieISN + 100, f.CookieISN + 200}}}
			cli.send(t, toServer)
			got, ok = srvCap.next(t, f.Client, f.Server, 2*time.Second)
			if !ok {
				t.Fatalf("server got nothing for %v", toServer)
			}
			want = toServer
			want.Ack = f.ServerISN + 6
			want.TSecr = f.ServerTSval + 5
			want.SACK = [][2]uint32{{f.ServerISN + 100, f.ServerISN + 200}}
			if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
				t.Errorf("client→server segment as the server got it (-want +got):\n%s", diff)
			}

			// A server RST after 5 bytes of data. The kernel moves the
			// entry to CLOSE in PREROUTING; the synproxy hook then sees a
			// reply-direction RST in CLOSE and re-initialises the offset
			// as isn − seq + 1 (meant for a server refusing SYNPROXY's
			// SYN), so the client gets seq = cookie ISN + 1 whatever the
			// server sent: out of its window once any data has arrived
			// (RFC 5961 §3.2). Recorded here so that a change in the
			// kernel shows; synwall routes such RSTs around the kernel.
			rst := segment{Src: f.Server, Dst: f.Client, Seq: f.ServerISN + 6, Ack: clientISN + 1, Flags: "RA"}
			srv.send(t, rst)
			got, ok = cliCap.next(t, f.Server, f.Client, 2*time.Second)
			if !ok {
				t.Fatalf("client got nothing for %v", rst)
			}
			if got.Seq != f.CookieISN+1 {
				t.Errorf("server RST at server seq %d reached the client with seq %d, want %d (cookie ISN + 1, the kernel's CLOSE-state re-initialisation; the right value would be %d)",
					rst.Seq, got.Seq, f.CookieISN+1, f.CookieISN+6)
			}
			// The RST closed the entry: the Handoff removes it.
			waitFor(t, "the closed entry to go", func() bool { _, ok := h.Known(f.Client, f.Server); return !ok })

			// Another tuple without an entry is still dropped.
			stray := toServer
			stray.Src = netip.AddrPortFrom(fam.client, 40001)
			cli.send(t, stray)
			if s, ok := srvCap.next(t, stray.Src, f.Server, 300*time.Millisecond); ok {
				t.Errorf("a segment without an entry reached the server: %v", s)
			}
		})
	}
	if n, err := h.Count(); err != nil || n != 0 {
		t.Errorf("Count() = %d, %v, want 0: both connections were reset", n, err)
	}
}

// TestKernelTimestampsNeedSynproxyRule shows why the rules carry a
// SYNPROXY rule that never matches: without one in the namespace the
// sequence numbers are still adjusted (nf_confirm) but the timestamps are
// not (the synproxy hooks are gone).
func TestKernelTimestampsNeedSynproxyRule(t *testing.T) {
	l := newKernelLab(t)
	for _, ipt := range []string{"iptables", "ip6tables"} {
		mss := "1460"
		if ipt == "ip6tables" {
			mss = "1440"
		}
		if _, err := l.Exec(context.Background(), l.Gateway, ipt, "-w", "10", "-D", "FORWARD", "-p", "tcp", "-m", "mark", "--mark", "0x1/0x0",
			"-m", "comment", "--comment", "synwall-test: never matches; keeps the SYNPROXY hooks that adjust timestamps",
			"-j", "SYNPROXY", "--sack-perm", "--timestamp", "--wscale", "7", "--mss", mss); err != nil {
			t.Fatal(err)
		}
	}
	res := make(chan Result, 1)
	var h *Handoff
	if err := lab.InNetns(l.Gateway, func() error {
		var err error
		h, err = New(Config{Done: createsTo(res)})
		return err
	}); err != nil {
		t.Fatalf("New in the gateway: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	runHandoff(t, h)
	cliCap := openCapture(t, l.Client, lab.IfUplink)
	srv := openSender(t, l.Server)
	f := Flow{
		Client: netip.AddrPortFrom(lab.ClientV4, 40000), Server: netip.AddrPortFrom(lab.ServerV4, 8080),
		Opts: OptTimestamps, CookieISN: 1000, ServerISN: 5000, ITS: 10, ServerTSval: 90,
	}
	if r := submitWait(t, h, res, f)[0]; r.Err != nil {
		t.Fatalf("hand-off: %v", r.Err)
	}
	toClient := segment{Src: f.Server, Dst: f.Client, Seq: f.ServerISN + 1, Ack: 1, Flags: "A", TSval: f.ServerTSval + 1, TSecr: 3}
	srv.send(t, toClient)
	got, ok := cliCap.next(t, f.Server, f.Client, 2*time.Second)
	if !ok {
		t.Fatal("client got nothing")
	}
	if got.Seq != f.CookieISN+1 || got.TSval != f.ServerTSval+1 {
		t.Errorf("without a SYNPROXY rule: seq %d TSval %d, want seq %d (adjusted) and TSval %d (not adjusted)",
			got.Seq, got.TSval, f.CookieISN+1, f.ServerTSval+1)
	}
}
