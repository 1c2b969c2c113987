package synflood

import (
	"errors"
	"fmt"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BatchSize is how many packets one sendmmsg call carries.
const BatchSize = 64

// rawSender sends whole IPv4 or IPv6 packets through a raw socket
// (IPPROTO_RAW: the packet carries its own IP header; for IPv6 see
// rawv6_send_hdrinc in the kernel), a batch per system call, from buffers
// it owns and reuses.
type rawSender struct {
	fd   int
	bufs [BatchSize][MaxPacketLen]byte
	iov  [BatchSize]unix.Iovec
	hdrs [BatchSize]unix.Mmsghdr
	sa   unix.RawSockaddrInet4
	sa6  unix.RawSockaddrInet6
}

// newRawSender opens the raw socket for packets of n bytes; dst is the
// address every packet goes to (the kernel routes by it).
func newRawSender(dst netip.Addr, n int) (*rawSender, error) {
	family := unix.AF_INET
	if dst.Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("raw socket: %w (needs root or CAP_NET_RAW)", err)
		}
		return nil, fmt.Errorf("raw socket: %w", err)
	}
	// A large send buffer absorbs the bursts of a batch; failure is not
	// fatal (the default works, only slower).
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	s := &rawSender{fd: fd}
	name, namelen := (*byte)(unsafe.Pointer(&s.sa)), uint32(unix.SizeofSockaddrInet4)
	if dst.Is6() {
		s.sa6.Family = unix.AF_INET6
		s.sa6.Addr = dst.As16()
		name, namelen = (*byte)(unsafe.Pointer(&s.sa6)), unix.SizeofSockaddrInet6
	} else {
		s.sa.Family = unix.AF_INET
		s.sa.Addr = dst.As4()
	}
	for i := range s.hdrs {
		s.iov[i].Base = &s.bufs[i][0]
		s.iov[i].SetLen(n)
		h := &s.hdrs[i].Hdr
		h.Name = name
		h.Namelen = namelen
		h.Iov = &s.iov[i]
		h.SetIovlen(1)
	}
	return s, nil
}

// send sends the first n buffers and returns how many the kernel took.
// It retries after a partial send and on EINTR; ENOBUFS and EAGAIN end the
// batch early with the error (the caller counts it and goes on).
func (s *rawSender) send(n int) (int, error) {
	sent := 0
	for sent < n {
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd),
			uintptr(unsafe.Pointer(&s.hdrs[sent])), uintptr(n-sent), 0, 0, 0)
		if errno != 0 {
			if errno == unix.EINTR {
				continue
			}
			return sent, errno
		}
		if r == 0 {
			return sent, unix.EAGAIN
		}
		sent += int(r)
	}
	return sent, nil
}

func (s *rawSender) close() error { return unix.Close(s.fd) }
