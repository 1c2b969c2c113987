package main

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BatchSize is how many packets one sendmmsg call carries.
const BatchSize = 64

// rawSender sends whole IPv4 packets through a raw socket, a batch per
// system call, from buffers it owns and reuses.
type rawSender struct {
	fd   int
	bufs [BatchSize][PacketLen]byte
	iov  [BatchSize]unix.Iovec
	hdrs [BatchSize]unix.Mmsghdr
	sa   unix.RawSockaddrInet4
}

// newRawSender opens the raw socket; dst is the address every packet goes
// to (the kernel routes by it).
func newRawSender(dst [4]byte) (*rawSender, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
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
	s.sa.Family = unix.AF_INET
	s.sa.Addr = dst
	for i := range s.hdrs {
		s.iov[i].Base = &s.bufs[i][0]
		s.iov[i].SetLen(PacketLen)
		h := &s.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&s.sa))
		h.Namelen = unix.SizeofSockaddrInet4
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
