package conntrack

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// New opens three ctnetlink sockets (one for Run, one for Count and Probe,
// one subscribed to the kernel's DESTROY events, see Known) in
// the network namespace of the calling OS thread, and returns a Handoff
// that creates its entries there. A caller that works in another namespace
// locks its thread and joins that namespace around New; the sockets keep
// their namespace for life.
func New(cfg Config) (*Handoff, error) {
	t, err := dialNetlink()
	if err != nil {
		return nil, err
	}
	q, err := dialNetlink()
	if err != nil {
		t.close()
		return nil, err
	}
	ev, err := dialEvents()
	if err != nil {
		t.close()
		q.close()
		return nil, err
	}
	h, err := newHandoff(cfg, t, q, ev)
	if err != nil {
		t.close()
		q.close()
		ev.close()
		return nil, err
	}
	return h, nil
}

// Socket sizes: the receive buffer holds the acknowledgements of a whole
// batch (one skb each, about 1 KiB of truesize apiece) with room to spare,
// and the pages of a dump.
const (
	sockRcvBuf = 1 << 20
	rbufLen    = 64 << 10
	ioTimeout  = 2 * time.Second
)

// nlConn is an AF_NETLINK/NETLINK_NETFILTER socket speaking ctnetlink.
type nlConn struct {
	fd   int
	seq  uint32
	wbuf []byte
	rbuf []byte
	seen []bool // which messages of a batch were acknowledged

	kernel unix.SockaddrNetlink
}

var _ transport = (*nlConn)(nil)

func dialNetlink() (*nlConn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("conntrack: netlink socket: %w", err)
	}
	c := &nlConn{fd: fd, seq: uint32(time.Now().UnixNano()), wbuf: make([]byte, 0, 16<<10), rbuf: make([]byte, rbufLen),
		kernel: unix.SockaddrNetlink{Family: unix.AF_NETLINK}}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		c.close()
		return nil, fmt.Errorf("conntrack: netlink bind: %w", err)
	}
	// Acknowledgements without a copy of the request.
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, sockRcvBuf); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, sockRcvBuf)
	}
	tv := unix.NsecToTimeval(ioTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		c.close()
		return nil, fmt.Errorf("conntrack: netlink receive timeout: %w", err)
	}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		c.close()
		return nil, fmt.Errorf("conntrack: netlink send timeout: %w", err)
	}
	return c, nil
}

func (c *nlConn) close() error {
	if c.fd < 0 {
		return nil
	}
	err := unix.Close(c.fd)
	c.fd = -1
	return err
}

func (c *nlConn) nextSeq() uint32 {
	c.seq++
	if c.seq == 0 {
		c.seq++
	}
	return c.seq
}

func (c *nlConn) send(b []byte) error {
	for {
		// The kernel's address, per socket: Sendmsg writes into it.
		err := unix.Sendmsg(c.fd, b, nil, &c.kernel, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("conntrack: netlink sendmsg: %w", err)
		}
		return nil
	}
}

// recv reads one datagram of messages.
func (c *nlConn) recv() ([]byte, error) {
	for {
		n, _, err := unix.Recvfrom(c.fd, c.rbuf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("conntrack: netlink recv: %w", err)
		}
		return c.rbuf[:n], nil
	}
}

// create sends one message per flow in a single sendmsg and collects one
// acknowledgement per message (the kernel handles every message of the
// datagram in turn, acknowledging each with its sequence number, whether it
// failed or not: netlink_rcv_skb).
func (c *nlConn) create(flows []*Flow, errs []error, status, timeout, mark uint32) error {
	base := c.seq + 1
	c.wbuf = c.wbuf[:0]
	for _, f := range flows {
		c.wbuf = appendCreate(c.wbuf, c.nextSeq(), f, status, timeout, mark)
	}
	if err := c.send(c.wbuf); err != nil {
		return err
	}
	pending := len(flows)
	got := errs[:len(flows)]
	clear(got)
	if cap(c.seen) < len(flows) {
		c.seen = make([]bool, len(flows))
	}
	seen := c.seen[:len(flows)]
	clear(seen)
	for pending > 0 {
		b, err := c.recv()
		if err != nil {
			for i := range got {
				if !seen[i] {
					got[i] = err
				}
			}
			return nil
		}
		for len(b) > 0 {
			m, rest, err := nextMessage(b)
			if err != nil {
				break
			}
			b = rest
			if m.typ != nlmsgError {
				continue
			}
			i := int(m.seq - base)
			if i < 0 || i >= len(flows) || seen[i] {
				continue
			}
			errno, err := ackErrno(m)
			if err != nil {
				got[i] = err
			} else if errno != 0 {
				got[i] = syscall.Errno(errno)
			}
			seen[i] = true
			pending--
		}
	}
	return nil
}

// request sends one message and reads the answers up to its
// acknowledgement, calling fn for each non-error message.
func (c *nlConn) request(build func(b []byte, seq uint32) []byte, fn func(message) error) error {
	seq := c.nextSeq()
	c.wbuf = build(c.wbuf[:0], seq)
	if err := c.send(c.wbuf); err != nil {
		return err
	}
	for {
		b, err := c.recv()
		if err != nil {
			return err
		}
		for len(b) > 0 {
			m, rest, err := nextMessage(b)
			if err != nil {
				return err
			}
			b = rest
			if m.seq != seq {
				continue
			}
			switch m.typ {
			case nlmsgError:
				errno, err := ackErrno(m)
				if err != nil {
					return err
				}
				if errno != 0 {
					return syscall.Errno(errno)
				}
				return nil
			case nlmsgDone:
				return nil
			}
			if err := fn(m); err != nil {
				return err
			}
		}
	}
}

func (c *nlConn) get(client, server netip.AddrPort) (entry, bool, error) {
	var e entry
	found := false
	err := c.request(func(b []byte, seq uint32) []byte {
		return appendGet(b, seq, client, server)
	}, func(m message) error {
		if !isCtNew(m) {
			return nil
		}
		var err error
		e, err = parseEntry(m.data)
		found = err == nil
		return err
	})
	if errors.Is(err, syscall.ENOENT) {
		return entry{}, false, nil
	}
	if err != nil {
		return entry{}, false, fmt.Errorf("conntrack: get %s->%s: %w", client, server, err)
	}
	return e, found, nil
}

func (c *nlConn) remove(client, server netip.AddrPort, id uint32) error {
	err := c.request(func(b []byte, seq uint32) []byte {
		return appendDelete(b, seq, client, server, id)
	}, func(message) error { return nil })
	if err == nil || errors.Is(err, syscall.ENOENT) {
		return nil
	}
	return fmt.Errorf("conntrack: delete %s->%s: %w", client, server, err)
}

func (c *nlConn) countMark(mark, mask uint32) (int, error) {
	n := 0
	err := c.request(func(b []byte, seq uint32) []byte {
		return appendDumpMark(b, seq, mark, mask)
	}, func(m message) error {
		if isCtNew(m) {
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("conntrack: dump by mark: %w", err)
	}
	return n, nil
}

func (c *nlConn) dumpMark(mark, mask uint32, fn func(tupleKey, Offsets)) error {
	err := c.request(func(b []byte, seq uint32) []byte {
		return appendDumpMark(b, seq, mark, mask)
	}, func(m message) error {
		if !isCtNew(m) {
			return nil
		}
		k, off, _, ok, err := parseHanded(m.data)
		if err != nil {
			return err
		}
		if ok {
			fn(k, off)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("conntrack: dump by mark: %w", err)
	}
	return nil
}

// evConn is a ctnetlink socket subscribed to DESTROY events.
type evConn struct {
	fd   int
	rbuf []byte
}

var _ eventSource = (*evConn)(nil)

// eventsRcvBuf holds a burst of events (a few hundred bytes each).
const eventsRcvBuf = 4 << 20

func dialEvents() (*evConn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("conntrack: netlink socket: %w", err)
	}
	c := &evConn{fd: fd, rbuf: make([]byte, rbufLen)}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		c.close()
		return nil, fmt.Errorf("conntrack: netlink bind: %w", err)
	}
	for _, g := range []int{unix.NFNLGRP_CONNTRACK_DESTROY, unix.NFNLGRP_CONNTRACK_UPDATE} {
		if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, g); err != nil {
			c.close()
			return nil, fmt.Errorf("conntrack: subscribing to events (group %d): %w", g, err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, eventsRcvBuf); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, eventsRcvBuf)
	}
	tv := unix.NsecToTimeval(time.Second.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		c.close()
		return nil, fmt.Errorf("conntrack: netlink receive timeout: %w", err)
	}
	return c, nil
}

func (c *evConn) close() error {
	if c.fd < 0 {
		return nil
	}
	err := unix.Close(c.fd)
	c.fd = -1
	return err
}

func (c *evConn) read(fn func(*event)) (bool, error) {
	n, _, err := unix.Recvfrom(c.fd, c.rbuf, 0)
	switch {
	case err == unix.EAGAIN || err == unix.EINTR:
		return false, nil
	case err == unix.ENOBUFS:
		return true, nil
	case err != nil:
		return false, fmt.Errorf("conntrack: events recv: %w", err)
	}
	b := c.rbuf[:n]
	var ev event
	for len(b) > 0 {
		m, rest, err := nextMessage(b)
		if err != nil {
			return false, err
		}
		b = rest
		switch {
		case m.typ == ipctnlMsgCtDeleteType:
			ev.destroy = true
		case m.typ == ipctnlMsgCtNewType && m.flags&(nlmFCreate|nlmFExcl) == 0:
			ev.destroy = false
		default:
			continue
		}
		k, _, mark, ok, err := parseHanded(m.data)
		if err != nil {
			return false, err
		}
		if !ok {
			continue
		}
		ev.k, ev.mark, ev.state = k, mark, StateNone
		if !ev.destroy {
			if en, err := parseEntry(m.data); err == nil {
				ev.state = en.State
			}
		}
		fn(&ev)
	}
	return false, nil
}
