package probe

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// tcpi_options bits (include/uapi/linux/tcp.h).
const (
	tcpiOptTimestamps = 1
	tcpiOptSACK       = 2
	tcpiOptWScale     = 4
	tcpiOptECN        = 8
)

// tsOptLen is the room the timestamp option takes in every segment once
// timestamps are agreed: 10 bytes padded to 12 (RFC 7323 §3.2, appendix A).
const tsOptLen = 12

// Probe opens a TCP connection from this host to target, reads what the
// server's SYN-ACK negotiated, and resets the connection so the server keeps
// no state. The socket carries SO_MARK mark (when non-zero), which
// synwall's firewall rules exempt from the queue and from conntrack, so the
// probe reaches the server directly even while synwall guards it. A timeout
// of 0 means DefaultTimeout.
//
// Everything comes from the kernel's TCP_INFO after the handshake:
// tcpi_options says which options were agreed, tcpi_snd_wscale is the
// server's window scale, and tcpi_snd_mss is the segment size this socket
// sends with, which is the server's advertised MSS less the timestamp option
// when timestamps are on. The kernel also caps tcpi_snd_mss by the path MTU
// towards the server, so when the path MTU is below what the server
// advertised, MSS is a lower bound of the advertised value (safe to offer
// to clients; it only costs segment size). Linux also keeps tcpi_snd_mss at
// or below half the largest window the server offered (tcp_bound_to_half_wnd),
// so a server whose SYN-ACK window is less than twice its MSS (loopback with
// its 64 KB MSS) is reported with an MSS near Window/2, again a lower bound.
// tcpi_snd_wnd right after the
// handshake is the SYN-ACK's window (Linux 6.2 and later).
func Probe(ctx context.Context, target netip.AddrPort, mark uint32, timeout time.Duration) (Result, error) {
	if !target.IsValid() || target.Port() == 0 {
		return Result{}, ErrTarget
	}
	target = netip.AddrPortFrom(target.Addr().Unmap(), target.Port())
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	network := "tcp4"
	if target.Addr().Is6() {
		network = "tcp6"
	}
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		if mark == 0 {
			return nil
		}
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
		}); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("SO_MARK 0x%x: %w", mark, serr)
		}
		return nil
	}}
	c, err := d.DialContext(ctx, network, target.String())
	if err != nil {
		return Result{}, fmt.Errorf("probe: %s: %w", target, err)
	}
	tc := c.(*net.TCPConn)
	defer func() {
		_ = tc.SetLinger(0) // close with RST: the server keeps no TIME_WAIT or state
		_ = tc.Close()
	}()
	rc, err := tc.SyscallConn()
	if err != nil {
		return Result{}, fmt.Errorf("probe: %s: %w", target, err)
	}
	var (
		info tcpInfo
		ierr error
	)
	if err := rc.Control(func(fd uintptr) { ierr = info.read(int(fd)) }); err != nil {
		return Result{}, fmt.Errorf("probe: %s: %w", target, err)
	}
	if ierr != nil {
		return Result{}, fmt.Errorf("probe: %s: TCP_INFO: %w", target, ierr)
	}
	r := info.result()
	r.ECNAsked = r.ECN || ecnRequested()
	return r, nil
}

// ecnRequested reports whether this host's SYNs ask for ECN
// (net.ipv4.tcp_ecn = 1, for IPv4 and IPv6 alike) in the network namespace
// of the calling thread.
func ecnRequested() bool {
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_ecn")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// tcpInfo is the kernel's struct tcp_info as returned by getsockopt, with
// the length the kernel filled in.
type tcpInfo struct {
	unix.TCPInfo
	n int
}

// read fills i from socket fd. unix.GetsockoptTCPInfo is not used because
// its struct has no field for the window-scale bit fields.
func (i *tcpInfo) read(fd int) error {
	l := uint32(unsafe.Sizeof(i.TCPInfo))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.IPPROTO_TCP, unix.TCP_INFO,
		uintptr(unsafe.Pointer(&i.TCPInfo)), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return e
	}
	i.n = int(l)
	return nil
}

// wscales returns tcpi_snd_wscale and tcpi_rcv_wscale: two 4-bit fields
// in the byte after tcpi_options (unix.TCPInfo leaves it as padding), the
// first declared in the low bits on little-endian machines and in the high
// bits on big-endian ones.
func (i *tcpInfo) wscales() (snd, rcv uint8) {
	b := *(*uint8)(unsafe.Add(unsafe.Pointer(&i.TCPInfo), unsafe.Offsetof(i.TCPInfo.Options)+1))
	if bigEndian {
		return b >> 4, b & 0xf
	}
	return b & 0xf, b >> 4
}

var bigEndian = binary.NativeEndian.Uint16([]byte{0, 1}) == 1

// result decodes what the server's SYN-ACK said.
func (i *tcpInfo) result() Result {
	o := i.Options
	r := Result{
		WScale:     -1,
		SACK:       o&tcpiOptSACK != 0,
		Timestamps: o&tcpiOptTimestamps != 0,
		ECN:        o&tcpiOptECN != 0,
	}
	if o&tcpiOptWScale != 0 {
		snd, _ := i.wscales()
		r.WScale = int8(snd)
	}
	mss := i.Snd_mss
	if r.Timestamps {
		mss += tsOptLen
	}
	r.MSS = uint16(min(mss, 65535))
	if i.n >= int(unsafe.Offsetof(i.TCPInfo.Snd_wnd)+unsafe.Sizeof(i.TCPInfo.Snd_wnd)) {
		r.Window = uint16(min(i.Snd_wnd, 65535))
	}
	return r
}
