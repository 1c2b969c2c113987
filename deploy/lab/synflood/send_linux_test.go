package synflood_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/synwall/synwall/deploy/lab"
	"github.com/synwall/synwall/deploy/lab/synflood"
)

// TestRunInNamespace sends a bounded burst in a network namespace of its
// own to an address on its loopback, IPv4 and IPv6, and reads every SYN
// back from a raw TCP socket there.
func TestRunInNamespace(t *testing.T) {
	ns := fmt.Sprintf("synflood-test-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		if s := string(out); strings.Contains(s, "Operation not permitted") || strings.Contains(s, "Permission denied") {
			t.Skipf("cannot create a network namespace (run as root): %s", strings.TrimSpace(s))
		}
		t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	dst4, dst6 := netip.MustParseAddrPort("198.18.0.1:9"), netip.MustParseAddrPort("[2001:db8::1]:9")
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"addr", "add", dst4.Addr().String() + "/32", "dev", "lo"},
		{"addr", "add", dst6.Addr().String() + "/128", "dev", "lo", "nodad"},
	} {
		if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip -n %s %v: %v: %s", ns, args, err, out)
		}
	}
	for _, tt := range []struct {
		dst netip.AddrPort
		src netip.Prefix
	}{
		{dst4, netip.MustParsePrefix("198.19.0.0/16")},
		{dst6, netip.MustParsePrefix("2001:db8:ff::/48")},
	} {
		t.Run(tt.dst.Addr().String(), func(t *testing.T) { runInNamespace(t, ns, tt.dst, tt.src) })
	}
}

func runInNamespace(t *testing.T, ns string, dst netip.AddrPort, src netip.Prefix) {
	const count = 3000
	cfg, err := synflood.Config{Dst: dst, Sources: src, Rate: 100_000, Duration: 10 * time.Second, Count: count, Seed: 3}.Validate()
	if err != nil {
		t.Fatal(err)
	}
	v6 := dst.Addr().Is6()
	var res synflood.Result
	var got, bad int
	err = lab.InNetns(ns, func() error {
		family := unix.AF_INET
		if v6 {
			family = unix.AF_INET6
		}
		rfd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
		if err != nil {
			return fmt.Errorf("raw TCP socket: %w", err)
		}
		defer unix.Close(rfd)
		if err := unix.SetsockoptInt(rfd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20); err != nil {
			return fmt.Errorf("SO_RCVBUFFORCE: %w", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if res, err = synflood.Run(ctx, cfg); err != nil {
			return err
		}
		buf := make([]byte, 2048)
		for {
			n, from, err := unix.Recvfrom(rfd, buf, unix.MSG_DONTWAIT)
			if errors.Is(err, unix.EAGAIN) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("recvfrom: %w", err)
			}
			p := buf[:n]
			if !v6 {
				if n < synflood.IPLen || p[9] != 6 || binary.BigEndian.Uint16(p[synflood.IPLen+2:]) != dst.Port() {
					continue // not ours (the kernel's answers have no route here)
				}
				s, _ := netip.AddrFromSlice(p[12:16])
				if n != synflood.PacketLen || !src.Contains(s) || p[synflood.IPLen+13] != 0x02 || !tcpChecksumOK(p) {
					bad++
					continue
				}
				got++
				continue
			}
			// An IPv6 raw socket delivers the TCP segment without the IP
			// header (RFC 3542 §3); the source comes with recvfrom.
			sa, ok := from.(*unix.SockaddrInet6)
			if !ok || n < 20 || binary.BigEndian.Uint16(p[2:]) != dst.Port() {
				continue
			}
			s := netip.AddrFrom16(sa.Addr)
			if n != synflood.TCPLen || !src.Contains(s) || p[13] != 0x02 || !tcp6ChecksumOK(s, dst.Addr(), p) {
				bad++
				continue
			}
			got++
		}
	})
	if errors.Is(err, unix.EPERM) {
		t.Skipf("not permitted: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != count || res.Errors != 0 {
		t.Errorf("Run(count %d) sent %d with %d errors (%v), want %d and none", count, res.Sent, res.Errors, res.Err, count)
	}
	if got != count || bad != 0 {
		t.Errorf("received %d valid SYNs and %d bad ones, want %d and 0", got, bad, count)
	}
	t.Logf("sent %d in %v (%.0f pps)", res.Sent, res.Elapsed, res.PPS())
}

// tcpChecksumOK checks the TCP checksum of an IPv4 packet without options.
func tcpChecksumOK(p []byte) bool {
	tc := p[synflood.IPLen:]
	var pseudo uint32
	for i := 12; i < 20; i += 2 {
		pseudo += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	pseudo += 6 + uint32(len(tc))
	return synflood.Checksum(tc, pseudo) == 0
}

// tcp6ChecksumOK checks the TCP checksum of segment tc from src to dst
// (RFC 8200 §8.1 pseudo-header).
func tcp6ChecksumOK(src, dst netip.Addr, tc []byte) bool {
	s, d := src.As16(), dst.As16()
	pseudo := synflood.Sum16(s[:]) + synflood.Sum16(d[:]) + uint32(len(tc)) + 6
	return synflood.Checksum(tc, pseudo) == 0
}
