package queue

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/synwall/synwall/internal/testnet"

	"github.com/synwall/synwall/internal/firewall"

	"golang.org/x/sys/unix"

	"github.com/synwall/synwall/internal/engine"
)

// lab is a client and a server namespace joined by a veth pair, built by a
// test and deleted when it ends.
type lab struct {
	cli, srv     string // namespace names
	cliFD, srvFD int
}

const (
	labCli4 = "198.18.7.1"
	labSrv4 = "198.18.7.2"
	labCli6 = "2001:db8:7::1"
	labSrv6 = "2001:db8:7::2"
)

// run runs a command and returns its output in the error.
func run(t *testing.T, args ...string) error {
	t.Helper()
	return testnet.Run(args...)
}

// skipIfNoPrivilege: see testnet.SkipIfNoPrivilege.
func skipIfNoPrivilege(t *testing.T, err error) {
	t.Helper()
	testnet.SkipIfNoPrivilege(t, err)
}

func newLab(t *testing.T, tag string) *lab {
	t.Helper()
	pid := os.Getpid()
	l := &lab{cli: fmt.Sprintf("sw%sc%d", tag, pid), srv: fmt.Sprintf("sw%ss%d", tag, pid)}
	if err := run(t, "ip", "netns", "add", l.cli); err != nil {
		skipIfNoPrivilege(t, err)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", l.cli).Run() })
	if err := run(t, "ip", "netns", "add", l.srv); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", l.srv).Run() })
	vc, vs := fmt.Sprintf("v%sc%d", tag, pid), fmt.Sprintf("v%ss%d", tag, pid)
	steps := [][]string{
		{"ip", "link", "add", vc, "netns", l.cli, "type", "veth", "peer", "name", vs, "netns", l.srv},
		{"ip", "-n", l.cli, "addr", "add", labCli4 + "/24", "dev", vc},
		{"ip", "-n", l.srv, "addr", "add", labSrv4 + "/24", "dev", vs},
		{"ip", "-n", l.cli, "addr", "add", labCli6 + "/64", "dev", vc, "nodad"},
		{"ip", "-n", l.srv, "addr", "add", labSrv6 + "/64", "dev", vs, "nodad"},
		{"ip", "-n", l.cli, "link", "set", vc, "up"},
		{"ip", "-n", l.srv, "link", "set", vs, "up"},
		{"ip", "-n", l.cli, "link", "set", "lo", "up"},
		{"ip", "-n", l.srv, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if err := run(t, s...); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	for _, p := range []struct {
		fd   *int
		name string
	}{{&l.cliFD, l.cli}, {&l.srvFD, l.srv}} {
		if *p.fd, err = unix.Open("/run/netns/"+p.name, unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
			t.Fatal(err)
		}
		fd := *p.fd
		t.Cleanup(func() { unix.Close(fd) })
	}
	return l
}

// labProc is the lab's Processor. By destination port of guarded traffic:
// 7000 payload "ping" is rewritten to "PONG"; 7001 SYNs are dropped; 7002
// SYNs are dropped and answered with an injected RST. Everything else is
// accepted. It counts what it sees in atomics.
type labProc struct {
	rewritten, dropped, injected, csumNotReady, requeued *atomic.Int64
	rst                                                  [80]byte
	inj                                                  [1][]byte
}

func (p *labProc) Process(pkt []byte, meta engine.Meta, now time.Time, r *engine.Result) {
	r.Verdict = engine.Accept
	var ipLen, proto int
	switch pkt[0] >> 4 {
	case 4:
		ipLen, proto = int(pkt[0]&0xf)*4, int(pkt[9])
	case 6:
		ipLen, proto = 40, int(pkt[6])
	}
	if proto != unix.IPPROTO_TCP || len(pkt) < ipLen+20 {
		return
	}
	tcp := pkt[ipLen:]
	sport, dport := binary.BigEndian.Uint16(tcp[0:]), binary.BigEndian.Uint16(tcp[2:])
	flags := tcp[13]
	data := tcp[int(tcp[12]>>4)*4:]
	const syn, rst = 0x02, 0x04
	if sport == 7002 && flags&rst != 0 {
		p.requeued.Add(1) // an injected packet came back into the queue
	}
	switch {
	case dport == 7000 && string(data) == "ping":
		if meta.CsumNotReady {
			p.csumNotReady.Add(1)
		}
		copy(data, "PONG")
		setTCPChecksum(pkt, ipLen)
		r.Packet = pkt
		p.rewritten.Add(1)
	case dport == 7001 && flags&syn != 0:
		r.Verdict = engine.Drop
		p.dropped.Add(1)
	case dport == 7002 && flags&syn != 0:
		r.Verdict = engine.Drop
		p.inj[0] = buildRST(p.rst[:0], pkt, ipLen)
		r.Inject = p.inj[:]
		p.injected.Add(1)
	}
}

// buildRST answers the SYN in pkt with RST+ACK from its destination
// (RFC 9293 §3.10.7.1: a SYN to a closed port gets <SEQ=0><ACK=SEG.SEQ+1><CTL=RST,ACK>).
func buildRST(b []byte, pkt []byte, ipLen int) []byte {
	tcp := pkt[ipLen:]
	if pkt[0]>>4 == 4 {
		b = append(b, 0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, unix.IPPROTO_TCP, 0, 0)
		b = append(b, pkt[16:20]...)
		b = append(b, pkt[12:16]...)
		binary.BigEndian.PutUint16(b[10:], checksum(b[:20], 0))
	} else {
		b = append(b, 0x60, 0, 0, 0, 0, 20, unix.IPPROTO_TCP, 64)
		b = append(b, pkt[24:40]...)
		b = append(b, pkt[8:24]...)
	}
	h := len(b)
	b = append(b, tcp[2], tcp[3], tcp[0], tcp[1], 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, binary.BigEndian.Uint32(tcp[4:])+1)
	b = append(b, 5<<4, 0x14, 0, 0, 0, 0, 0, 0)
	setTCPChecksum(b, h)
	return b
}

func checksum(b []byte, sum uint32) uint16 {
	for ; len(b) >= 2; b = b[2:] {
		sum += uint32(b[0])<<8 | uint32(b[1])
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// setTCPChecksum computes the TCP checksum in full (RFC 9293 §3.1, RFC 8200
// §8.1 for the IPv6 pseudo-header).
func setTCPChecksum(pkt []byte, ipLen int) {
	tcp := pkt[ipLen:]
	tcp[16], tcp[17] = 0, 0
	var sum uint32
	var addrs []byte
	if pkt[0]>>4 == 4 {
		addrs = pkt[12:20]
	} else {
		addrs = pkt[8:40]
	}
	for i := 0; i < len(addrs); i += 2 {
		sum += uint32(addrs[i])<<8 | uint32(addrs[i+1])
	}
	sum += unix.IPPROTO_TCP + uint32(len(tcp))
	binary.BigEndian.PutUint16(tcp[16:], checksum(tcp, sum))
}

func labRules() firewall.Rules {
	return firewall.Rules{
		Services: []firewall.Service{
			{Prefix: netip.MustParsePrefix(labSrv4 + "/32"), Ports: firewall.PortRange{Lo: 7000, Hi: 7002}},
			{Prefix: netip.MustParsePrefix(labSrv6 + "/128"), Ports: firewall.PortRange{Lo: 7000, Hi: 7002}},
		},
		Hooks: []firewall.Hook{firewall.HookInput},
	}
}

func TestQueueLab(t *testing.T) {
	l := newLab(t, "q")
	fw := &firewall.Installer{Rules: labRules(), Wrap: []string{"ip", "netns", "exec", l.srv}}
	if err := fw.Install(context.Background()); err != nil {
		skipIfNoPrivilege(t, err)
	}
	t.Cleanup(func() { _ = fw.Remove(context.Background()) })

	// An echo server on 7000 in the server namespace, both families.
	var ln net.Listener
	if err := inNetNS(l.srvFD, func() (err error) { ln, err = net.Listen("tcp", ":7000"); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64)
				c.SetDeadline(time.Now().Add(5 * time.Second))
				n, _ := c.Read(buf)
				c.Write(buf[:n])
			}()
		}
	}()

	dial := func(addr string, timeout time.Duration) (c net.Conn, err error) {
		err = inNetNS(l.cliFD, func() error {
			c, err = net.DialTimeout("tcp", addr, timeout)
			return err
		})
		return c, err
	}

	inj, err := NewRawInjector(InjectorConfig{NetNS: l.srvFD})
	if err != nil {
		skipIfNoPrivilege(t, err)
	}
	t.Cleanup(func() { inj.Close() })

	for _, backend := range []Backend{BackendRaw, BackendNFQ} {
		t.Run(backend.String(), func(t *testing.T) {
			var rewritten, dropped, injected, csum, requeued atomic.Int64
			newProc := func() engine.Processor {
				return &labProc{rewritten: &rewritten, dropped: &dropped, injected: &injected, csumNotReady: &csum, requeued: &requeued}
			}
			q, err := Open(Config{Backend: backend, Queues: []uint16{0}, NetNS: l.srvFD}, newProc, inj)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- q.Run(ctx) }()
			defer func() {
				cancel()
				select {
				case err := <-done:
					if err != nil {
						t.Errorf("Run() = %v, want nil after cancel", err)
					}
				case <-time.After(5 * time.Second):
					t.Errorf("Run() did not return after cancel")
				}
			}()
			waitBound(t, l, done)

			for _, fam := range []struct{ name, srv string }{{"ipv4", labSrv4}, {"ipv6", "[" + labSrv6 + "]"}} {
				t.Run(fam.name+"/altered payload", func(t *testing.T) {
					c, err := dial(fam.srv+":7000", 3*time.Second)
					if err != nil {
						t.Fatalf("dial 7000: %v", err)
					}
					defer c.Close()
					c.SetDeadline(time.Now().Add(5 * time.Second))
					if _, err := c.Write([]byte("ping")); err != nil {
						t.Fatal(err)
					}
					buf := make([]byte, 16)
					n, err := c.Read(buf)
					if err != nil {
						t.Fatalf("read echo: %v", err)
					}
					if got := string(buf[:n]); got != "PONG" {
						t.Errorf("server received %q, want the rewritten %q", got, "PONG")
					}
				})
				t.Run(fam.name+"/drop verdict", func(t *testing.T) {
					before := dropped.Load()
					start := time.Now()
					_, err := dial(fam.srv+":7001", 700*time.Millisecond)
					var ne net.Error
					if !errors.As(err, &ne) || !ne.Timeout() {
						t.Errorf("dial 7001 (SYN dropped) error = %v after %v, want a timeout", err, time.Since(start))
					}
					if dropped.Load() == before {
						t.Errorf("processor saw no SYN to 7001")
					}
				})
				t.Run(fam.name+"/injected RST", func(t *testing.T) {
					_, err := dial(fam.srv+":7002", 3*time.Second)
					if !errors.Is(err, syscall.ECONNREFUSED) {
						t.Errorf("dial 7002 (SYN dropped, RST injected) error = %v, want connection refused", err)
					}
				})
			}
			if requeued.Load() != 0 {
				t.Errorf("%d injected packets came back through the queue; the mark exemption failed", requeued.Load())
			}
			// The worker counts an injection after its send returns, which
			// can be after the client already saw the RST: give it a moment.
			st := q.Stats()[0]
			for deadline := time.Now().Add(2 * time.Second); st.Injected < 2 && time.Now().Before(deadline); st = q.Stats()[0] {
				time.Sleep(10 * time.Millisecond)
			}
			if st.Packets == 0 || st.AcceptedAltered < 2 || st.Dropped < 2 || st.Injected < 2 || st.InjectErrors != 0 {
				t.Errorf("stats = %+v, want packets, ≥2 altered, ≥2 dropped, ≥2 injected, no inject errors", st)
			}
			t.Logf("stats %+v; rewritten packets with CsumNotReady: %d of %d", st, csum.Load(), rewritten.Load())
		})
	}
	if s := inj.Stats(); s.Errors != 0 {
		t.Errorf("injector stats %+v, want no errors", s)
	}
}

// waitBound waits until queue 0 of the server namespace has a program bound.
func waitBound(t *testing.T, l *lab, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			skipIfNoPrivilege(t, err)
			t.Fatalf("Run() returned early: %v", err)
		default:
		}
		out, err := exec.Command("ip", "netns", "exec", l.srv, "cat", ProcPath).Output()
		if err == nil {
			stats, err := ParseKernelQueueStats(strings.NewReader(string(out)))
			if err != nil {
				t.Fatalf("parse %s: %v", ProcPath, err)
			}
			if len(stats) > 0 && stats[0].CopyMode == nfqnlCopyPacket {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("queue 0 not bound after 5s")
}
