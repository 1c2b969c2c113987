package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/synwall/synwall/internal/firewall"

	"golang.org/x/sys/unix"
)

// acceptInfo accepts one connection on ln and returns the server side's
// TCP_INFO: what the server put in its SYN-ACK.
func acceptInfo(ln net.Listener) (tcpInfo, error) {
	var info tcpInfo
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		return info, err
	}
	defer c.Close()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return info, err
	}
	var ierr error
	if err := rc.Control(func(fd uintptr) { ierr = info.read(int(fd)) }); err != nil {
		return info, err
	}
	return info, ierr
}

// checkAgainstServer compares a probe's result with the server's own view
// of the same connection. With halfWindow the probe's MSS may be cut to half
// the SYN-ACK's window (see Probe).
func checkAgainstServer(t *testing.T, got Result, srv tcpInfo, halfWindow bool) {
	t.Helper()
	_, rcvWScale := srv.wscales()
	wantWS := int8(-1)
	if srv.Options&tcpiOptWScale != 0 {
		wantWS = int8(rcvWScale)
	}
	// The server's tcpi_advmss is the MSS of its SYN-ACK less the room of
	// the timestamp option.
	mss := uint16(srv.Advmss)
	if srv.Options&tcpiOptTimestamps != 0 {
		mss += tsOptLen
	}
	want := Result{
		MSS:        mss,
		WScale:     wantWS,
		SACK:       srv.Options&tcpiOptSACK != 0,
		Timestamps: srv.Options&tcpiOptTimestamps != 0,
		ECN:        srv.Options&tcpiOptECN != 0,
		ECNAsked:   got.ECNAsked,
		Window:     got.Window,
	}
	if halfWindow && got.MSS < mss && got.MSS >= got.Window/2 {
		want.MSS = got.MSS
	}
	if got != want {
		t.Errorf("Probe() = %+v, want the server's view %+v", got, want)
	}
	// The server's receive window may have been rounded after its SYN-ACK
	// went out, never raised.
	if got.Window == 0 || uint32(got.Window) < min(srv.Rcv_wnd, 65535) {
		t.Errorf("Probe().Window = %d, want the SYN-ACK's window, at least the server's rcv_wnd %d (kernel %s)",
			got.Window, srv.Rcv_wnd, kernelRelease())
	}
}

func kernelRelease() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return "?"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// TestProbeLoopback probes a listener on this host's loopback; it needs no
// privileges.
func TestProbeLoopback(t *testing.T) {
	for _, network := range []string{"tcp4", "tcp6"} {
		t.Run(network, func(t *testing.T) {
			addr := "127.0.0.1:0"
			if network == "tcp6" {
				addr = "[::1]:0"
			}
			ln, err := net.Listen(network, addr)
			if err != nil {
				t.Skipf("no %s loopback: %v", network, err)
			}
			defer ln.Close()
			type accepted struct {
				info tcpInfo
				err  error
			}
			ch := make(chan accepted, 1)
			go func() { i, err := acceptInfo(ln); ch <- accepted{i, err} }()
			target := netip.MustParseAddrPort(ln.Addr().String())
			got, err := Probe(context.Background(), target, 0, time.Second)
			if err != nil {
				t.Fatalf("Probe(%v) error %v", target, err)
			}
			a := <-ch
			if a.err != nil {
				t.Fatalf("accept: %v", a.err)
			}
			checkAgainstServer(t, got, a.info, true)
		})
	}
}

func TestProbeRefusedAndTimeout(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close() // nothing listens there now: the SYN gets a RST
	if _, err := Probe(context.Background(), target, 0, time.Second); !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("Probe(%v) to a closed port error = %v, want ECONNREFUSED", target, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Probe(ctx, target, 0, time.Second); err == nil {
		t.Errorf("Probe() with a cancelled context error = nil, want an error")
	}
}

// probeNS is a client and a server namespace joined by a veth pair.
type probeNS struct{ cli, srv, cliIf, srvIf string }

const (
	probeCli4 = "198.18.8.1"
	probeSrv4 = "198.18.8.2"
	probeCli6 = "2001:db8:8::1"
	probeSrv6 = "2001:db8:8::2"
	probeMSS4 = 1200 // the server's advmss towards the client, IPv4
	probeMSS6 = 1300 // and IPv6
)

func probeRun(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func newProbeNS(t *testing.T) *probeNS {
	t.Helper()
	pid := os.Getpid()
	n := &probeNS{
		cli: fmt.Sprintf("swprobec%d", pid), srv: fmt.Sprintf("swprobes%d", pid),
		cliIf: fmt.Sprintf("swpc%d", pid), srvIf: fmt.Sprintf("swps%d", pid),
	}
	if err := probeRun("ip", "netns", "add", n.cli); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			t.Skipf("needs iproute2: %v", err)
		}
		if strings.Contains(err.Error(), "Operation not permitted") || strings.Contains(err.Error(), "Permission denied") {
			t.Skipf("needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) to create network namespaces: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n.cli).Run() })
	if err := probeRun("ip", "netns", "add", n.srv); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n.srv).Run() })
	for _, c := range [][]string{
		{"ip", "link", "add", n.cliIf, "netns", n.cli, "type", "veth", "peer", "name", n.srvIf, "netns", n.srv},
		{"ip", "-n", n.cli, "link", "set", "lo", "up"},
		{"ip", "-n", n.srv, "link", "set", "lo", "up"},
		{"ip", "-n", n.cli, "addr", "add", probeCli4 + "/24", "dev", n.cliIf},
		{"ip", "-n", n.srv, "addr", "add", probeSrv4 + "/24", "dev", n.srvIf},
		{"ip", "-n", n.cli, "addr", "add", probeCli6 + "/64", "dev", n.cliIf, "nodad"},
		{"ip", "-n", n.srv, "addr", "add", probeSrv6 + "/64", "dev", n.srvIf, "nodad"},
		{"ip", "-n", n.cli, "link", "set", n.cliIf, "up"},
		{"ip", "-n", n.srv, "link", "set", n.srvIf, "up"},
		// The MSS the server advertises comes from its route to the client.
		{"ip", "-n", n.srv, "route", "replace", "198.18.8.0/24", "dev", n.srvIf, "proto", "kernel", "scope", "link",
			"src", probeSrv4, "advmss", fmt.Sprint(probeMSS4)},
		{"ip", "-n", n.srv, "-6", "route", "replace", "2001:db8:8::/64", "dev", n.srvIf, "proto", "kernel", "metric", "256",
			"advmss", fmt.Sprint(probeMSS6)},
	} {
		if err := probeRun(c...); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// inNS runs fn on a goroutine whose OS thread has joined namespace ns. The
// thread is never unlocked, so it exits with the goroutine and no other
// goroutine ever runs in ns.
func inNS(ns string, fn func() error) error {
	f, err := os.Open(filepath.Join("/run/netns", ns))
	if err != nil {
		return err
	}
	defer f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see above
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

func setSysctl(ns, key, value string) error {
	return inNS(ns, func() error {
		return os.WriteFile("/proc/sys/"+strings.ReplaceAll(key, ".", "/"), []byte(value), 0)
	})
}

func onOff(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// TestProbeNetns probes a kernel listener in another namespace whose
// sysctls turn each option on and off, over IPv4 and IPv6.
func TestProbeNetns(t *testing.T) {
	n := newProbeNS(t)
	if err := setSysctl(n.cli, "net.ipv4.tcp_ecn", "1"); err != nil { // the probe asks for ECN
		t.Fatal(err)
	}
	var ln4, ln6 net.Listener
	if err := inNS(n.srv, func() error {
		var err error
		if ln4, err = net.Listen("tcp4", probeSrv4+":8080"); err != nil {
			return err
		}
		ln6, err = net.Listen("tcp6", "["+probeSrv6+"]:8080")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln4.Close()
	defer ln6.Close()

	for _, tc := range []struct{ ts, sack, ws, ecn bool }{
		{true, true, true, true},
		{false, false, false, false},
		{true, false, false, false},
		{false, true, true, false},
		{false, false, true, true},
	} {
		name := fmt.Sprintf("ts=%t,sack=%t,ws=%t,ecn=%t", tc.ts, tc.sack, tc.ws, tc.ecn)
		t.Run(name, func(t *testing.T) {
			ecn := "0"
			if tc.ecn {
				ecn = "2" // answer ECN when asked
			}
			for k, v := range map[string]string{
				"net.ipv4.tcp_timestamps":     onOff(tc.ts),
				"net.ipv4.tcp_sack":           onOff(tc.sack),
				"net.ipv4.tcp_window_scaling": onOff(tc.ws),
				"net.ipv4.tcp_ecn":            ecn,
			} {
				if err := setSysctl(n.srv, k, v); err != nil {
					t.Fatal(err)
				}
			}
			for _, fam := range []struct {
				name string
				ln   net.Listener
				addr string
				mss  uint16
			}{
				{"ipv4", ln4, probeSrv4, probeMSS4},
				{"ipv6", ln6, probeSrv6, probeMSS6},
			} {
				t.Run(fam.name, func(t *testing.T) {
					type accepted struct {
						info tcpInfo
						err  error
					}
					ch := make(chan accepted, 1)
					go func() { i, err := acceptInfo(fam.ln); ch <- accepted{i, err} }()
					target := netip.AddrPortFrom(netip.MustParseAddr(fam.addr), 8080)
					var got Result
					err := inNS(n.cli, func() error {
						var err error
						got, err = Probe(context.Background(), target, firewall.DefaultMark, 2*time.Second)
						return err
					})
					if err != nil {
						t.Fatalf("Probe(%v) error %v", target, err)
					}
					a := <-ch
					if a.err != nil {
						t.Fatalf("accept: %v", a.err)
					}
					if got.MSS != fam.mss {
						t.Errorf("Probe(%v).MSS = %d, want the route's advmss %d", target, got.MSS, fam.mss)
					}
					if got.Timestamps != tc.ts || got.SACK != tc.sack || (got.WScale >= 0) != tc.ws ||
						got.ECN != tc.ecn || !got.ECNAsked {
						t.Errorf("Probe(%v) = %+v, want timestamps %t, sack %t, wscale offered %t, ecn %t, ecn asked",
							target, got, tc.ts, tc.sack, tc.ws, tc.ecn)
					}
					checkAgainstServer(t, got, a.info, false)
				})
			}
		})
	}
}
