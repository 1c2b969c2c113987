package queue

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// RawInjector sends IP packets through IPPROTO_RAW sockets, which take the
// whole IP header from the packet (raw(7); for IPv6, IPPROTO_RAW implies
// IPV6_HDRINCL in net/ipv6/af_inet6.c). It is safe for concurrent use and
// does not allocate per packet.
type RawInjector struct {
	fd4, fd6 int
	c        injCounters

	mu   sync.Mutex
	msgs [maxInjectBatch]unix.Mmsghdr
	iovs [maxInjectBatch]unix.Iovec
	sa4  [maxInjectBatch]unix.RawSockaddrInet4
	sa6  [maxInjectBatch]unix.RawSockaddrInet6
}

var _ Injector = (*RawInjector)(nil)

// NewRawInjector opens the IPv4 and IPv6 raw sockets and marks them. It
// needs CAP_NET_RAW and, for SO_MARK, CAP_NET_ADMIN.
func NewRawInjector(cfg InjectorConfig) (*RawInjector, error) {
	if cfg.Mark == 0 {
		cfg.Mark = DefaultMark
	}
	r := &RawInjector{fd4: -1, fd6: -1}
	err := inNetNS(cfg.NetNS, func() error {
		var err error
		if r.fd4, err = rawSocket(unix.AF_INET, cfg.Mark); err != nil {
			return err
		}
		r.fd6, err = rawSocket(unix.AF_INET6, cfg.Mark)
		return err
	})
	if err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func rawSocket(family int, mark uint32) (int, error) {
	name := "IPv4"
	if family == unix.AF_INET6 {
		name = "IPv6"
	}
	fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return -1, fmt.Errorf("queue: %s raw socket: %w", name, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(mark)); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("queue: SO_MARK on the %s raw socket: %w", name, err)
	}
	return fd, nil
}

// Close closes the sockets.
func (r *RawInjector) Close() error {
	var err error
	for _, fd := range []*int{&r.fd4, &r.fd6} {
		if *fd >= 0 {
			err = errors.Join(err, unix.Close(*fd))
			*fd = -1
		}
	}
	return err
}

// Stats returns the injector's counters.
func (r *RawInjector) Stats() InjectorStats {
	return InjectorStats{Sent: r.c.sent.Load(), Errors: r.c.errors.Load(), Calls: r.c.calls.Load()}
}

// Send sends pkts in order, each to the destination address in its IP
// header, batching runs of one family into sendmmsg calls. It returns how
// many were sent and the first error; it goes on after a failed packet.
func (r *RawInjector) Send(pkts [][]byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sent := 0
	var first error
	fail := func(err error) {
		r.c.errors.Add(1)
		if first == nil {
			first = err
		}
	}
	for len(pkts) > 0 {
		// Collect a run of packets of one family.
		fam := ipVersion(pkts[0])
		if fam == 0 {
			fail(ErrBadInjectPacket)
			pkts = pkts[1:]
			continue
		}
		n := 0
		for n < len(pkts) && n < maxInjectBatch && ipVersion(pkts[n]) == fam {
			r.fill(n, pkts[n], fam)
			n++
		}
		fd := r.fd4
		if fam == 6 {
			fd = r.fd6
		}
		for i := 0; i < n; {
			k, err := r.sendmmsg(fd, i, n)
			r.c.calls.Add(1)
			sent += k
			r.c.sent.Add(uint64(k))
			i += k
			if err != nil {
				// The message at i failed: count it and go on after it.
				fail(fmt.Errorf("queue: inject: %w", err))
				i++
			}
		}
		pkts = pkts[n:]
	}
	return sent, first
}

// fill prepares message i for pkt.
func (r *RawInjector) fill(i int, pkt []byte, fam int) {
	r.iovs[i].Base = &pkt[0]
	r.iovs[i].SetLen(len(pkt))
	h := &r.msgs[i].Hdr
	*h = unix.Msghdr{Iov: &r.iovs[i], Iovlen: 1}
	if fam == 4 {
		sa := &r.sa4[i]
		*sa = unix.RawSockaddrInet4{Family: unix.AF_INET}
		copy(sa.Addr[:], pkt[16:20]) // RFC 791 §3.1: destination address
		h.Name = (*byte)(unsafe.Pointer(sa))
		h.Namelen = unix.SizeofSockaddrInet4
	} else {
		sa := &r.sa6[i]
		*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6}
		copy(sa.Addr[:], pkt[24:40]) // RFC 8200 §3: destination address
		h.Name = (*byte)(unsafe.Pointer(sa))
		h.Namelen = unix.SizeofSockaddrInet6
	}
}

// sendmmsg sends messages [from, to) and returns how many the kernel took;
// err is set when it took none, for the message at from.
func (r *RawInjector) sendmmsg(fd, from, to int) (int, error) {
	for {
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd),
			uintptr(unsafe.Pointer(&r.msgs[from])), uintptr(to-from), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		if n == 0 {
			return 0, unix.EIO
		}
		return int(n), nil
	}
}
