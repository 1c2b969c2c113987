package lab

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/synwall/synwall/internal/gateway/header"
	"golang.org/x/sys/unix"
)

// End-to-end tests of the conntrack hand-off: established flows carried by
// the kernel, and the flows that stay in user space.

// handoffPolicy guards the lab's server and learns its options
// (advertise.discover), so that the SYN-ACKs tell clients what the server
// will do and the kernel can carry the flows whole.
const handoffPolicy = `version: 1
services:
  - name: lab
    addresses: [198.18.3.2/32, "2001:db8:3::2/128"]
    ports: [80, 5201, 9000]
    advertise:
      discover: true
`

// fixedPolicy advertises window scale 7 whatever the server does: the
// lab's servers scale by more, so their flows cannot be handed off.
const fixedPolicy = `version: 1
services:
  - name: lab
    addresses: [198.18.3.2/32, "2001:db8:3::2/128"]
    ports: [80, 5201, 9000]
    advertise:
      discover: false
      wscale: 7
`

// synwallMode is one way established flows go through synwall.
type synwallMode struct {
	name string
	cfg  SynwallConfig
	// check asserts, from the stats, that n connections went this way.
	check func(t *testing.T, st Stats, n uint64)
}

// synwallModes are the two ways: carried by the kernel (the conntrack
// hand-off, with a policy that discovers the server's options so that it
// applies) and translated by synwall (--conntrack=false, the embedded
// default policy).
func synwallModes(t *testing.T) []synwallMode {
	return []synwallMode{
		{"kernel", SynwallConfig{Policy: writePolicy(t, handoffPolicy)}, func(t *testing.T, st Stats, n uint64) {
			t.Helper()
			if ct := st.Other["conntrack"]; ct["created"] < n {
				t.Errorf("conntrack counters %v, want at least %d entries created", ct, n)
			}
		}},
		{"user space", SynwallConfig{Args: []string{"--conntrack=false"}}, func(t *testing.T, st Stats, n uint64) {
			t.Helper()
			if ct := st.Other["conntrack"]; len(ct) != 0 {
				t.Errorf("conntrack counters %v with the hand-off off, want none", ct)
			}
			if st.Events["translated"] < n {
				t.Errorf("synwall translated %d packets, want at least %d", st.Events["translated"], n)
			}
		}},
	}
}

func writePolicy(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// queuedTotal sums the kernel's per-queue packet sequence numbers
// (id_sequence, the 8th column of /proc/net/netfilter/nfnetlink_queue) in
// the gateway: how many packets the kernel has queued to synwall so far.
func queuedTotal(t *testing.T, l *Lab) uint64 {
	t.Helper()
	out, err := l.Exec(context.Background(), l.Gateway, "cat", "/proc/net/netfilter/nfnetlink_queue")
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		v, err := strconv.ParseUint(f[7], 10, 64)
		if err != nil {
			t.Fatalf("nfnetlink_queue line %q: %v", line, err)
		}
		n += v
	}
	return n
}

// download fetches n bytes of /bytes from url with curl in the client
// namespace (limited to rate bytes/s when rate is not empty) and checks
// the body's SHA-256.
func download(t *testing.T, l *Lab, url string, rate string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := []string{"-sS", "--fail", "-g", "--connect-timeout", "10", "--max-time", "60", "-o", "-"}
	if rate != "" {
		args = append(args, "--limit-rate", rate)
	}
	h := sha256.New()
	cw := &countWriter{h: h}
	cmd := l.Cmd(ctx, l.Client, "curl", append(args, url)...)
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = cw, &stderr
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("curl %s: %v: %s", url, err, stderr.String())
	}
	if cw.n != BigSize {
		t.Fatalf("curl %s got %d bytes, want %d", url, cw.n, BigSize)
	}
	if want := BodySHA256(BigSize); string(h.Sum(nil)) != string(want[:]) {
		t.Fatalf("curl %s: the body arrived altered", url)
	}
	el := time.Since(t0)
	t.Logf("%s: %d bytes in %v (%.0f Mbit/s)", url, cw.n, el.Round(time.Millisecond), float64(cw.n)*8/el.Seconds()/1e6)
}

// TestConntrackHandoff: with the hand-off a 20 MB download over IPv4 and
// IPv6 arrives intact while the kernel queues a handful of its packets to
// synwall (the handshake); with --conntrack=false every segment crosses
// the queue. The kernel's own queue counters tell.
func TestConntrackHandoff(t *testing.T) {
	needTools(t, "curl")
	for _, mode := range []struct {
		name      string
		conntrack bool
	}{{"handoff", true}, {"user space", false}} {
		t.Run(mode.name, func(t *testing.T) {
			l := newLab(t)
			if _, err := l.StartServers(ServerConfig{}); err != nil {
				t.Fatal(err)
			}
			sw := startSynwall(t, l, SynwallConfig{Policy: writePolicy(t, handoffPolicy),
				Args: []string{fmt.Sprintf("--conntrack=%v", mode.conntrack)}})
			for _, url := range []string{"http://198.18.3.2/big", "http://[2001:db8:3::2]/big"} {
				before := queuedTotal(t, l)
				download(t, l, url, "")
				queued := queuedTotal(t, l) - before
				t.Logf("%s: %d packets queued to synwall", url, queued)
				// 20 MB is at least 320 full-size GSO super-packets (64 KB)
				// and about 14,000 segments; the handshake is a few packets.
				if mode.conntrack && queued > 40 {
					t.Errorf("%s: the kernel queued %d packets of a handed-off download, want the handshake's few", url, queued)
				}
				if !mode.conntrack && queued < 300 {
					t.Errorf("%s: only %d packets queued with --conntrack=false, want every segment", url, queued)
				}
			}
			st := statsAfter(t, sw)
			ct := st.Other["conntrack"]
			t.Logf("conntrack: %v; events: %v", ct, st.Events)
			if mode.conntrack {
				if ct["created"] < 2 || ct["engine_handed_off"] < 2 {
					t.Errorf("conntrack counters %v, want at least 2 entries created from 2 engine records", ct)
				}
			} else if len(ct) != 0 {
				t.Errorf("conntrack counters %v with the hand-off off, want none", ct)
			}
		})
	}
}

// TestConntrackOptionsDiffer: a server that scales its window otherwise
// than the SYN-ACK told the client keeps working, in user space: no entry
// is created, and synwall translates (and rescales) every segment.
func TestConntrackOptionsDiffer(t *testing.T) {
	l := newLab(t)
	if _, err := l.StartServers(ServerConfig{}); err != nil {
		t.Fatal(err)
	}
	sw := startSynwall(t, l, SynwallConfig{Policy: writePolicy(t, fixedPolicy)})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, srv := range []netip.Addr{ServerV4, ServerV6} {
		before := queuedTotal(t, l)
		ap := netip.AddrPortFrom(srv, BulkPort)
		if err := l.BulkUp(ctx, ap, 2_000_000); err != nil {
			t.Errorf("upload to %v: %v", ap, err)
		}
		if err := l.BulkDown(ctx, ap, 2_000_000); err != nil {
			t.Errorf("download from %v: %v", ap, err)
		}
		if queued := queuedTotal(t, l) - before; queued < 100 {
			t.Errorf("%v: %d packets queued, want the flows' segments (they stay in user space)", srv, queued)
		}
	}
	st := statsAfter(t, sw)
	ct := st.Other["conntrack"]
	t.Logf("conntrack: %v; events: %v", ct, st.Events)
	if ct["created"] != 0 || ct["engine_handed_off"] != 0 || ct["engine_wscale"] < 4 {
		t.Errorf("conntrack counters %v, want nothing handed off and 4 flows kept for their window scale", ct)
	}
	if st.Events["translated"] < 100 {
		t.Errorf("synwall translated %d packets, want the flows' segments", st.Events["translated"])
	}
}

// TestConntrackInFlightHandoff: a rate-limited 20 MB download whose flow
// is handed off while data flows (--conntrack-delay holds the hand-off
// back 300 ms, about 6 MB into the transfer): what was queued before the
// entry existed is translated by synwall, the rest by the kernel, none
// twice and none lost (the body's hash), over IPv4 and IPv6.
func TestConntrackInFlightHandoff(t *testing.T) {
	needTools(t, "curl")
	l := newLab(t)
	if _, err := l.StartServers(ServerConfig{}); err != nil {
		t.Fatal(err)
	}
	sw := startSynwall(t, l, SynwallConfig{Policy: writePolicy(t, handoffPolicy), Args: []string{"--conntrack-delay", "300ms"}})
	for _, url := range []string{"http://198.18.3.2/big", "http://[2001:db8:3::2]/big"} {
		before := queuedTotal(t, l)
		download(t, l, url, "20M")
		t.Logf("%s: %d packets queued to synwall", url, queuedTotal(t, l)-before)
	}
	st := statsAfter(t, sw)
	ct := st.Other["conntrack"]
	t.Logf("conntrack: %v; events: %v", ct, st.Events)
	if ct["created"] < 2 {
		t.Errorf("conntrack counters %v, want 2 entries created mid-transfer", ct)
	}
	// 300 ms at 20 MB/s is about 6 MB in user space before the hand-off.
	if st.Events["translated"] < 100 {
		t.Errorf("synwall translated %d packets before the hand-offs, want the first ~6 MB of each download", st.Events["translated"])
	}
}

// TestConntrackPortReuse: a client that reconnects from the same port
// right after a handed-off connection ended (the server closed first, so
// the gateway's entry went to TIME_WAIT) gets through synwall again: the
// entry is removed when it reaches TIME_WAIT (or, failing that, before the
// SYN-ACK for the new SYN on its tuple goes out), and the new connection
// is handed off anew. Without that, the client's handshake ACK would match
// the stale entry and reach the server unproxied.
//
// With the BPF SYN stage (stage) synwall never sees the new connection's
// SYN, and only the removal on reaching TIME_WAIT keeps the stale entry
// from accepting its handshake ACK.
func TestConntrackPortReuse(t *testing.T) {
	for _, stage := range []bool{false, true} {
		t.Run(fmt.Sprintf("stage=%v", stage), func(t *testing.T) { portReuse(t, stage) })
	}
}

func portReuse(t *testing.T, stage bool) {
	l := newLab(t)
	if _, err := l.StartServers(ServerConfig{}); err != nil {
		t.Fatal(err)
	}
	cfg := SynwallConfig{Policy: writePolicy(t, handoffPolicy)}
	if stage {
		cfg.Args = []string{"--syn-stage", "tc", "--syn-stage-if", IfClient}
	}
	sw := startSynwall(t, l, cfg)
	const n, port = 1_000_000, 45678
	for i := range 3 {
		err := InNetns(l.Client, func() error {
			d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: ClientV4.AsSlice(), Port: port}}
			c, err := d.Dial("tcp", netip.AddrPortFrom(ServerV4, BulkPort).String())
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			if _, err := fmt.Fprintf(c, "source %d\n", n); err != nil {
				return err
			}
			h := sha256.New()
			got, err := io.Copy(h, c)
			if err != nil {
				return fmt.Errorf("after %d bytes: %w", got, err)
			}
			if want := BodySHA256(n); got != n || string(h.Sum(nil)) != string(want[:]) {
				return fmt.Errorf("got %d bytes (want %d), intact: %v", got, n, string(h.Sum(nil)) == string(want[:]))
			}
			return nil
		})
		if err != nil {
			t.Fatalf("connection %d from port %d: %v", i+1, port, err)
		}
		out, _ := l.Exec(context.Background(), l.Gateway, "conntrack", "-L", "-p", "tcp", "--sport", strconv.Itoa(port))
		t.Logf("after connection %d: %s", i+1, strings.TrimSpace(out))
		// The client's last ACK; with the stage, also past the engine's
		// hand-off grace (gateway.HandoffGrace, 2 s), after which the
		// engine forgets the flow and the stage answers the next SYN itself.
		wait := 200 * time.Millisecond
		if stage {
			wait = 3 * time.Second
		}
		time.Sleep(wait)
	}
	st := statsAfter(t, sw)
	ct := st.Other["conntrack"]
	t.Logf("conntrack: %v", ct)
	// The entries of the ended connections are removed when they reach
	// TIME_WAIT, or at the latest before the next SYN-ACK on the tuple.
	if ct["created"] != 3 || ct["stale_removed"] < 2 {
		t.Errorf("conntrack counters %v, want 3 entries created and at least 2 stale ones removed", ct)
	}
	// The stage passes a SYN on to the engine while the engine still has
	// a flow on its tuple; at least one reconnection must have been
	// answered by the stage alone for the test to mean anything.
	if stage && st.Other["syn_stage"]["answered"] < 2 {
		t.Errorf("SYN stage %v: want it to have answered the first SYN and at least one reconnection", st.Other["syn_stage"])
	}
}

// resetPolicy guards the lab's server with the port of
// TestConntrackServerReset's listener (the probe goes to port 80).
const resetPolicy = `version: 1
services:
  - name: lab
    addresses: [198.18.3.2/32, "2001:db8:3::2/128"]
    ports: [80, 7001]
    advertise:
      discover: true
`

// TestConntrackServerReset: a server that aborts a handed-off connection
// after sending data (SO_LINGER 0) resets the client at once, over IPv4
// and IPv6. The kernel would rewrite such a RST's sequence number to the
// cookie ISN + 1, which the client ignores; synwall's rules send it to the
// queue and synwall translates it.
func TestConntrackServerReset(t *testing.T) {
	l := newLab(t)
	if _, err := l.StartServers(ServerConfig{}); err != nil {
		t.Fatal(err)
	}
	sw := startSynwall(t, l, SynwallConfig{Policy: writePolicy(t, resetPolicy)})
	for _, srv := range []netip.Addr{ServerV4, ServerV6} {
		ap := netip.AddrPortFrom(srv, 7001)
		ln, err := ListenIn(l.Server, "tcp", ap.String())
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write(make([]byte, 100_000))
			time.Sleep(300 * time.Millisecond) // the hand-off is done, the data is across
			c.(*net.TCPConn).SetLinger(0)
			c.Close() // RST
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := DialIn(ctx, l.Client, "tcp", ap.String())
		cancel()
		if err != nil {
			ln.Close()
			t.Fatalf("dial %v: %v", ap, err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		t0 := time.Now()
		n, err := io.Copy(io.Discard, c)
		c.Close()
		ln.Close()
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("%v: read %d bytes, then %v after %v; want the server's reset (ECONNRESET)", ap, n, err, time.Since(t0).Round(time.Millisecond))
		} else {
			t.Logf("%v: %d bytes, then reset after %v", ap, n, time.Since(t0).Round(time.Millisecond))
		}
	}
	st := statsAfter(t, sw)
	ct := st.Other["conntrack"]
	t.Logf("conntrack: %v", ct)
	if ct["created"] < 2 || ct["rst_translated"] < 2 {
		t.Errorf("conntrack counters %v, want 2 entries created and 2 server RSTs translated by synwall", ct)
	}
}

// TestConntrackICMPPathMTU: a router on the client's side of the gateway
// that cannot forward a server's segment of a handed-off connection tells
// the server (fragmentation needed, MTU 1300), quoting the segment as it
// saw it: in the cookie's sequence space. synwall translates the quote, so
// the server's kernel takes the error as being about its own connection
// and lowers its path MTU to the client. Here the client namespace plays
// the router, quoting the next sequence number the client expects.
func TestConntrackICMPPathMTU(t *testing.T) {
	l := newLab(t)
	if _, err := l.StartServers(ServerConfig{}); err != nil {
		t.Fatal(err)
	}
	sw := startSynwall(t, l, SynwallConfig{Policy: writePolicy(t, handoffPolicy)})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := DialIn(ctx, l.Client, "tcp", netip.AddrPortFrom(ServerV4, BulkPort).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "source %d\n", 200_000_000); err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, c, 1_000_000); err != nil {
		t.Fatal(err)
	}
	// Stop reading: the windows fill and the server's sending stops. Wait
	// past the engine's hand-off grace (gateway.HandoffGrace, and a second
	// of housekeeping): from then on only the kernel path knows the flow.
	time.Sleep(4 * time.Second)
	clientPort := uint16(c.LocalAddr().(*net.TCPAddr).Port)
	mtu := func() string {
		out, _ := l.Exec(ctx, l.Server, "ip", "route", "get", ClientV4.String())
		return strings.TrimSpace(out)
	}
	if strings.Contains(mtu(), "mtu 1300") {
		t.Fatalf("the server has path MTU 1300 before the error: %s", mtu())
	}
	// The error quotes a segment from the server to the client with
	// sequence number seq. The server takes it only if seq lies between
	// what it has had acknowledged and what it has sent, both included
	// (RFC 5927 §4.1; Linux tcp_v4_err counts the others as
	// OutOfWindowIcmps). The client's rcv_nxt always does: the server
	// cannot have had more acknowledged than the client received, nor
	// sent less. A packet capture's last sequence number does not: the
	// capture socket drops segments of the burst that fills the windows,
	// and the highest sequence number it keeps may then be a zero-window
	// probe of the server's (RFC 9293 §3.8.6.1), which Linux sends with
	// snd_una - 1.
	// The window may still creep forward, so a few tries, each with the
	// client's rcv_nxt of the moment.
	send := func(seq uint32) {
		t.Helper()
		quote := make([]byte, 28)
		quote[0], quote[8], quote[9] = 0x45, 63, 6
		binary.BigEndian.PutUint16(quote[2:], 1500)
		copy(quote[12:16], ServerV4.AsSlice())
		copy(quote[16:20], ClientV4.AsSlice())
		binary.BigEndian.PutUint16(quote[20:], BulkPort)
		binary.BigEndian.PutUint16(quote[22:], clientPort)
		binary.BigEndian.PutUint32(quote[24:], seq)
		icmp := []byte{3, 4, 0, 0, 0, 0, 1300 >> 8, 1300 & 0xff}
		icmp = append(icmp, quote...)
		binary.BigEndian.PutUint16(icmp[2:], ^header.Checksum(icmp, 0))
		if err := InNetns(l.Client, func() error {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			return unix.Sendto(fd, icmp, 0, &unix.SockaddrInet4{Addr: ServerV4.As4()})
		}); err != nil {
			t.Fatal(err)
		}
	}
	tries := 0
	var seq uint32
	for ; tries < 5 && !strings.Contains(mtu(), "mtu 1300"); tries++ {
		if seq, err = rcvNext(c); err != nil {
			t.Fatal(err)
		}
		send(seq)
		deadline := time.Now().Add(time.Second)
		for !strings.Contains(mtu(), "mtu 1300") && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if got := mtu(); !strings.Contains(got, "mtu 1300") {
		out, _ := l.Exec(ctx, l.Server, "nstat", "-az", "TcpExtOutOfWindowIcmps", "IcmpInDestUnreachs")
		t.Errorf("after %d errors, the last quoting seq %d: the server's route to the client is %q, want mtu 1300; the server's counters:\n%s", tries, seq, got, out)
	} else {
		t.Logf("the server took the error after %d tries: %s", tries, got)
	}
	st := statsAfter(t, sw)
	if ct := st.Other["conntrack"]; ct["created"] < 1 || ct["icmp_translated"] != uint64(tries) {
		t.Errorf("conntrack counters %v, want the connection handed off and %d ICMP errors translated", ct, tries)
	}
}

// The TCP repair interface's values (linux/tcp.h) that x/sys/unix lacks.
const (
	tcpRecvQueue     = 1  // TCP_RECV_QUEUE
	tcpRepairOffNoWP = -1 // TCP_REPAIR_OFF_NO_WP: leave repair mode without a window probe
)

// rcvNext reads the next sequence number c expects (its rcv_nxt), through
// the TCP repair interface (CAP_NET_ADMIN), and leaves the connection as
// it was.
func rcvNext(c net.Conn) (uint32, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return 0, fmt.Errorf("rcvNext: %T is not a TCP connection", c)
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var seq int
	var serr error
	err = rc.Control(func(fd uintptr) {
		s := int(fd)
		if serr = unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_REPAIR, 1); serr != nil {
			serr = fmt.Errorf("rcvNext: TCP_REPAIR on: %w", serr)
			return
		}
		defer func() {
			if err := unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_REPAIR, tcpRepairOffNoWP); err != nil && serr == nil {
				serr = fmt.Errorf("rcvNext: TCP_REPAIR off: %w", err)
			}
		}()
		if serr = unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, tcpRecvQueue); serr != nil {
			serr = fmt.Errorf("rcvNext: TCP_REPAIR_QUEUE: %w", serr)
			return
		}
		if seq, serr = unix.GetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_QUEUE_SEQ); serr != nil {
			serr = fmt.Errorf("rcvNext: TCP_QUEUE_SEQ: %w", serr)
		}
	})
	if err != nil {
		return 0, err
	}
	return uint32(seq), serr
}
