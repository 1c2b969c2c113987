//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package synstage

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/google/go-cmp/cmp"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/synwall/synwall/deploy/lab"
	"github.com/synwall/synwall/internal/cookies"
	"github.com/synwall/synwall/internal/gateway/header"
	"github.com/synwall/synwall/internal/policy"
)

// labUp builds a lab of network namespaces or skips the test when this
// process may not (in CI a missing tool fails it).
func labUp(t *testing.T, tools ...string) *lab.Lab {
	t.Helper()
	if err := lab.Require(tools...); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := lab.Up(ctx, lab.Config{})
	if errors.Is(err, lab.ErrPermission) {
		t.Skipf("building network namespaces needs root: %v", err)
	}
	if errors.Is(err, lab.ErrMissingTool) && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	return l
}

// labPolicy guards the server's subnets on every port but 22, which the
// tests use for unguarded traffic, with a per-source limit large enough
// for the tests' bursts.
func labPolicy(t *testing.T, mod func(*policy.Service)) *policy.Policy {
	t.Helper()
	s := &policy.Service{Name: "lab", Mode: policy.ModeProxy,
		Prefixes:  []netip.Prefix{netip.MustParsePrefix("198.18.3.0/24"), netip.MustParsePrefix("2001:db8:3::/64")},
		Ports:     []policy.PortRange{{Lo: 23, Hi: 65535}},
		Advertise: policy.Advertise{MSS4: 1460, MSS6: 1440, WScale: 7, SACK: true, Timestamps: true, Window: 65535}}
	if mod != nil {
		mod(s)
	}
	p, err := policy.New([]*policy.Service{s}, policy.Tables{CookiePeriod: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// attachIn loads a stage, gives it pol and the keys of jar, and attaches it
// with tcx to the ingress of interface ifname in namespace ns.
func attachIn(t *testing.T, ns, ifname string, pol *policy.Policy, jar *cookies.Jar) *Stage {
	t.Helper()
	s := loadStage(t)
	if err := s.SetPolicy(pol); err != nil {
		t.Fatal(err)
	}
	if err := s.Rotate(jar, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := lab.InNetns(ns, func() error { return s.Attach(ifname, AttachTCX) }); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if got := s.Attachments(); len(got) != 1 || got[0] != (Attachment{ifname, AttachTCX, true}) {
		t.Errorf("Attachments() = %v, want [{%s tc true}] (a lab veth: its peer is in another namespace)", got, ifname)
	}
	return s
}

// capture reads the frames arriving on interface ifname of namespace ns
// through a packet socket until stop is called, which returns the TCP
// segments seen.
type segment struct {
	src, dst     netip.Addr
	sport, dport uint16
	tcp          *layers.TCP
}

func capture(t *testing.T, ns, ifname string) (stop func() []segment) {
	t.Helper()
	var fd int
	err := lab.InNetns(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		proto := int(uint16(unix.ETH_P_ALL)<<8 | uint16(unix.ETH_P_ALL)>>8) // network order
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, proto)
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		tv := unix.Timeval{Usec: 100_000}
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	})
	if err != nil {
		t.Fatalf("packet socket in %s: %v", ns, err)
	}
	var (
		mu   sync.Mutex
		segs []segment
		done = make(chan struct{})
		quit = make(chan struct{})
	)
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			select {
			case <-quit:
				return
			default:
			}
			n, from, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue // timeout
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			pkt := gopacket.NewPacket(buf[:n], layers.LayerTypeEthernet, gopacket.Default)
			tl, ok := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
			if !ok {
				continue
			}
			var sg segment
			switch ip := pkt.NetworkLayer().(type) {
			case *layers.IPv4:
				sg.src, _ = netip.AddrFromSlice(ip.SrcIP.To4())
				sg.dst, _ = netip.AddrFromSlice(ip.DstIP.To4())
			case *layers.IPv6:
				sg.src, _ = netip.AddrFromSlice(ip.SrcIP)
				sg.dst, _ = netip.AddrFromSlice(ip.DstIP)
			default:
				continue
			}
			if cs := pkt.ErrorLayer(); cs != nil {
				continue
			}
			sg.sport, sg.dport, sg.tcp = uint16(tl.SrcPort), uint16(tl.DstPort), tl
			mu.Lock()
			segs = append(segs, sg)
			mu.Unlock()
		}
	}()
	var once sync.Once
	stop = func() []segment {
		once.Do(func() {
			close(quit)
			<-done
			unix.Close(fd)
		})
		mu.Lock()
		defer mu.Unlock()
		return segs
	}
	t.Cleanup(func() { stop() })
	return stop
}

// checkSynAck validates a SYN-ACK the stage sent to the client: its cookie
// with the jar, its checksums, and the timestamp bits.
func checkSynAck(t *testing.T, jar *cookies.Jar, sg segment) error {
	tup := cookies.Tuple{SrcPort: sg.dport, DstPort: sg.sport, V6: sg.dst.Is6()}
	if tup.V6 {
		tup.Src, tup.Dst = sg.dst.As16(), sg.src.As16()
	} else {
		c, s := sg.dst.As4(), sg.src.As4()
		copy(tup.Src[:], c[:])
		copy(tup.Dst[:], s[:])
	}
	if _, err := jar.Check(&tup, sg.tcp.Ack-1, sg.tcp.Seq, time.Now()); err != nil {
		return fmt.Errorf("SYN-ACK %v:%d -> %v:%d seq %#x ack %#x: cookie: %w", sg.src, sg.sport, sg.dst, sg.dport, sg.tcp.Seq, sg.tcp.Ack, err)
	}
	return nil
}

// TestEndToEndHping attaches the stage with tcx to the gateway's
// client-facing interface of a lab and sends it bounded hping3 traffic
// from the client: SYNs to the guarded server get SYN-ACKs whose cookies
// the Jar validates, SYN+FIN segments are dropped and counted, unguarded
// traffic passes; a real kernel client on IPv4 and IPv6 accepts the
// stage's SYN-ACK (its connect returns).
func TestEndToEndHping(t *testing.T) {
	l := labUp(t, "ip", "iptables", "ip6tables", "hping3")
	jar, err := cookies.New(cookies.Config{Period: 30 * time.Second}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s := attachIn(t, l.Gateway, lab.IfClient, labPolicy(t, nil), jar)
	stop := capture(t, l.Client, lab.IfUplink)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	const syns, synfins, unguarded = 200, 50, 20
	if out, err := l.Exec(ctx, l.Client, "hping3", "-S", "-c", fmt.Sprint(syns), "-i", "u1000", "-p", "8080", "-s", "10000", lab.ServerV4.String()); err != nil {
		t.Fatalf("hping3 SYN: %v\n%s", err, out)
	}
	// Dropped: hping3 sees no answer and says so in its status.
	l.Exec(ctx, l.Client, "hping3", "-S", "-F", "-c", fmt.Sprint(synfins), "-i", "u1000", "-p", "8080", "-s", "20000", lab.ServerV4.String())
	// To the gateway's own unguarded port: passes, and its stack resets.
	l.Exec(ctx, l.Client, "hping3", "-S", "-c", fmt.Sprint(unguarded), "-i", "u1000", "-p", "22", "-s", "30000", lab.GatewayClientV4.String())

	// Real clients: the connect completes on the stage's SYN-ACK alone (no
	// daemon runs; the handshake ACK goes on to the server, which drops it
	// instead of resetting the connection under the client's connect).
	for _, ipt := range []string{"iptables", "ip6tables"} {
		if out, err := l.Exec(ctx, l.Server, ipt, "-w", "10", "-A", "INPUT", "-p", "tcp", "--dport", "8443", "-j", "DROP"); err != nil {
			t.Fatalf("%s: %v\n%s", ipt, err, out)
		}
	}
	for _, a := range []netip.Addr{lab.ServerV4, lab.ServerV6} {
		dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := lab.DialIn(dctx, l.Client, "tcp", netip.AddrPortFrom(a, 8443).String())
		dcancel()
		if err != nil {
			t.Errorf("connect to %v from the client: %v", a, err)
			continue
		}
		c.Close()
	}
	time.Sleep(200 * time.Millisecond)
	segs := stop()

	answered := map[uint16]bool{}
	dials := 0
	for _, sg := range segs {
		if sg.tcp.SYN && sg.tcp.ACK {
			if err := checkSynAck(t, jar, sg); err != nil {
				t.Error(err)
				continue
			}
			switch {
			case sg.sport == 8080 && sg.dport >= 10000 && sg.dport < 10000+syns:
				answered[sg.dport] = true
			case sg.sport == 8443:
				dials++
			default:
				t.Errorf("unexpected SYN-ACK %v:%d -> %v:%d", sg.src, sg.sport, sg.dst, sg.dport)
			}
		}
		if sg.sport == 8080 && sg.dport >= 20000 && sg.dport < 30000 {
			t.Errorf("answer to a SYN+FIN: %v:%d -> %v:%d flags %v", sg.src, sg.sport, sg.dst, sg.dport, sg.tcp)
		}
	}
	if len(answered) != syns {
		t.Errorf("valid SYN-ACKs to %d of hping3's %d SYNs", len(answered), syns)
	}
	if dials < 2 {
		t.Errorf("%d SYN-ACKs to the real clients, want 2", dials)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Answered < syns+2 {
		t.Errorf("Stats().Answered = %d, want at least %d", st.Answered, syns+2)
	}
	if got := st.Drops[header.SynFin]; got != synfins {
		t.Errorf("Stats().Drops[syn_fin] = %d, want %d", got, synfins)
	}
	if st.Unguarded < unguarded {
		t.Errorf("Stats().Unguarded = %d, want at least %d", st.Unguarded, unguarded)
	}
	t.Logf("stage stats: %+v", st)
}

// tcxPrograms returns how many tcx ingress programs interface ifname of
// namespace ns has.
func tcxPrograms(t *testing.T, ns, ifname string) int {
	t.Helper()
	var n int
	err := lab.InNetns(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		r, err := link.QueryPrograms(link.QueryOptions{Target: ifi.Index, Attach: ebpf.AttachTCXIngress})
		if err != nil {
			return err
		}
		n = len(r.Programs)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAttachClose attaches the program with tcx and with native XDP (veth
// drivers have it) and checks that Close detaches both; attaching to an
// interface that does not exist fails with ErrUnavailable.
func TestAttachClose(t *testing.T) {
	l := labUp(t, "ip", "iptables", "ip6tables")
	s, err := Load(Options{})
	if errors.Is(err, unix.EPERM) {
		t.Skipf("loading BPF needs root: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = lab.InNetns(l.Gateway, func() error {
		if err := s.Attach(lab.IfClient, AttachTCX); err != nil {
			return err
		}
		if err := s.Attach(lab.IfAttacker, AttachXDP); err != nil {
			return err
		}
		if err := s.Attach("nosuch0", AttachTCX); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Attach(nosuch0) = %v, want ErrUnavailable", err)
		}
		if err := s.Attach(lab.IfServer, AttachInvalid); err == nil {
			t.Error("Attach with an invalid mode succeeded")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	// tcx on a veth whose peer is in another namespace answers through
	// the peer; XDP never does.
	want := []Attachment{{lab.IfClient, AttachTCX, true}, {lab.IfAttacker, AttachXDP, false}}
	if diff := cmp.Diff(want, s.Attachments()); diff != "" {
		t.Errorf("Attachments() (-want +got):\n%s", diff)
	}
	var marks []uint32
	var k, v uint32
	for it := s.objs.PeerIfs.Iterate(); it.Next(&k, &v); {
		if v != 0 {
			marks = append(marks, v)
		}
	}
	if len(marks) != 1 {
		t.Errorf("peer_ifs holds %v, want only %s's index", marks, lab.IfClient)
	}
	ctx := context.Background()
	if n := tcxPrograms(t, l.Gateway, lab.IfClient); n != 1 {
		t.Errorf("%d tcx programs on %s, want 1", n, lab.IfClient)
	}
	out, err := l.Exec(ctx, l.Gateway, "ip", "link", "show", "dev", lab.IfAttacker)
	if err != nil || !strings.Contains(out, "xdp") {
		t.Errorf("ip link show %s: %v %q, want an XDP program", lab.IfAttacker, err, out)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := tcxPrograms(t, l.Gateway, lab.IfClient); n != 0 {
		t.Errorf("%d tcx programs on %s after Close, want 0", n, lab.IfClient)
	}
	out, err = l.Exec(ctx, l.Gateway, "ip", "link", "show", "dev", lab.IfAttacker)
	if err != nil || strings.Contains(out, "xdp") {
		t.Errorf("ip link show %s after Close: %v %q, want no XDP program", lab.IfAttacker, err, out)
	}
	if err := s.SetPolicy(labPolicy(t, nil)); !errors.Is(err, ErrClosed) {
		t.Errorf("SetPolicy after Close = %v, want ErrClosed", err)
	}
}
