package queue

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
	"unsafe"

	"github.com/synwall/synwall/internal/engine"

	"golang.org/x/sys/unix"
)

const (
	recvBufSize = 128 << 10              // one message: packet of up to MaxCopyRange plus attributes
	recvBatch   = 32                     // messages taken by one recvmmsg
	recvStagger = 5 * 64                 // extra bytes between slots; see initRecv
	recvTimeout = 100 * time.Millisecond // how often a blocked receive looks at its context
)

// rawWorker is the default backend: nfnetlink_queue spoken directly on a
// NETLINK_NETFILTER socket with reused buffers.
type rawWorker struct {
	cfg   Config
	queue uint16
	proc  engine.Processor
	inj   Injector
	c     *counters

	fd   int
	buf  []byte // the first receive slot; bind reads its answers here
	pipe *pipeline

	// Receive slots for recvmmsg: recvBatch buffers of recvBufSize each,
	// one datagram (one nfnetlink_queue message) per slot. Every slot holds
	// the largest message, so no message is ever truncated. Pages the
	// kernel never writes (small SYN messages use the first few hundred
	// bytes of a slot) are never touched, so the 4 MiB cost little resident
	// memory under a SYN flood.
	mem  []byte
	bufs [recvBatch][]byte
	iovs [recvBatch]unix.Iovec
	msgs [recvBatch]unix.Mmsghdr

	msg Message
	seq uint32
}

func (w *rawWorker) run(ctx context.Context, bound func()) error {
	fd, adopted := w.cfg.Handoff.inherited(w.queue)
	if adopted {
		w.fd = fd
	} else if err := inNetNS(w.cfg.NetNS, w.openSocket); err != nil {
		return err
	}
	kept := false
	defer func() {
		if !kept {
			unix.Close(w.fd)
		}
	}()
	w.initRecv()
	w.pipe = newPipeline(w.queue, w.proc, w.inj, w.c, w.write)
	bind := w.bind
	if adopted {
		bind = w.adopt
	}
	if err := bind(); err != nil {
		return err
	}
	defer func() {
		if w.cfg.Handoff.keeping() {
			// A graceful restart: verdict what was read, stay bound.
			_ = w.pipe.flush()
			w.cfg.Handoff.record(w.queue, w.fd)
			kept = true
			return
		}
		w.unbind()
	}()
	bound()
	return w.loop(ctx)
}

func (w *rawWorker) openSocket() error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return fmt.Errorf("queue %d: netlink socket: %w", w.queue, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return fmt.Errorf("queue %d: bind netlink socket: %w", w.queue, err)
	}
	// Connected to the kernel (port 0), the socket takes messages from the
	// kernel only: netlink_getsockbyportid refuses a unicast to a connected
	// socket from any other sender (ECONNREFUSED), so a local process with
	// CAP_NET_ADMIN cannot feed the worker forged packet messages or
	// verdict errors. The connection survives a handover across execve.
	if err := unix.Connect(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return fmt.Errorf("queue %d: connect netlink socket to the kernel: %w", w.queue, err)
	}
	// A big receive buffer rides out bursts; FORCE needs CAP_NET_ADMIN,
	// which binding a queue needs anyway, but fall back quietly.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, w.cfg.RcvBuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, w.cfg.RcvBuf)
	}
	// Overruns are counted by the kernel (queue_user_dropped in
	// /proc/net/netfilter/nfnetlink_queue); an ENOBUFS error per overrun
	// would only interrupt the loop. If this fails, ENOBUFS is counted.
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_NO_ENOBUFS, 1)
	tv := unix.NsecToTimeval(recvTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return fmt.Errorf("queue %d: SO_RCVTIMEO: %w", w.queue, err)
	}
	w.fd = fd
	return nil
}

// bind binds the queue and configures it in one message, then waits for
// the kernel's answer, handling any packet that arrives meanwhile.
func (w *rawWorker) bind() error {
	w.seq++
	msg := appendConfigBind(make([]byte, 0, 128), w.seq, w.queue, w.cfg.MaxQueueLen, w.cfg.FailOpen)
	return w.configure(msg, "bind", func(err error) string {
		switch err {
		case unix.EBUSY:
			return " (another program is bound to this queue)"
		case unix.EPERM:
			return " (needs CAP_NET_ADMIN)"
		}
		return ""
	})
}

// configure sends msg (sequence number w.seq) and waits up to 5 s for the
// kernel's answer, giving verdicts to packets that arrive meanwhile. what
// names the step in errors; hint adds a word on the kernel's error.
func (w *rawWorker) configure(msg []byte, what string, hint func(error) string) error {
	if _, err := unix.Write(w.fd, msg); err != nil {
		return fmt.Errorf("queue %d: %s: %w", w.queue, what, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		n, err := w.recv(0)
		if err == unix.EAGAIN || err == unix.EINTR || err == unix.ENOBUFS {
			continue
		}
		if err != nil {
			return fmt.Errorf("queue %d: %s: %w", w.queue, what, err)
		}
		acked := false
		var ackErr error
		perr := w.parse(w.buf[:n], func(m *Message) {
			if m.Seq == w.seq {
				acked = true
				if m.Errno != 0 {
					ackErr = unix.Errno(m.Errno)
				}
			}
		})
		if err := errors.Join(perr, w.pipe.flush()); err != nil {
			return fmt.Errorf("queue %d: verdict: %w", w.queue, err)
		}
		if acked {
			if ackErr != nil {
				return fmt.Errorf("queue %d: %s: %w%s", w.queue, what, ackErr, hint(ackErr))
			}
			return nil
		}
	}
	return fmt.Errorf("queue %d: %s: no answer from the kernel", w.queue, what)
}

func (w *rawWorker) unbind() {
	_ = w.pipe.flush()
	w.seq++
	_, _ = unix.Write(w.fd, appendConfigCmd(make([]byte, 0, 64), w.seq, w.queue, nfqnlCfgCmdUnbind))
}

// initRecv allocates the receive slots and points the recvmmsg headers at
// them once; receiving reuses them. Slots are recvBufSize+recvStagger apart
// so that the heads of the messages of one batch, the only bytes a SYN
// touches, fall in different cache sets rather than all in the same few (a
// 128 KiB stride would map them onto one set of every cache level).
func (w *rawWorker) initRecv() {
	const stride = recvBufSize + recvStagger
	w.mem = make([]byte, recvBatch*stride)
	for i := range w.bufs {
		w.bufs[i] = w.mem[i*stride : i*stride+recvBufSize : i*stride+recvBufSize]
		w.iovs[i].Base = &w.bufs[i][0]
		w.iovs[i].SetLen(recvBufSize)
		w.msgs[i].Hdr.Iov = &w.iovs[i]
		w.msgs[i].Hdr.SetIovlen(1)
	}
	w.buf = w.bufs[0]
}

// recvMany reads up to recvBatch datagrams, one per slot, with one
// recvmmsg(2) and returns how many it read; w.msgs[i].Len is the length of
// slot i's datagram. With MSG_WAITFORONE it blocks (up to SO_RCVTIMEO) for
// the first datagram only; with MSG_DONTWAIT it does not block at all. It
// stops early when the socket is empty. It does not allocate.
func (w *rawWorker) recvMany(flags int) (int, error) {
	n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(w.fd),
		uintptr(unsafe.Pointer(&w.msgs[0])), recvBatch, uintptr(flags), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// recv reads one datagram into w.buf without allocating.
func (w *rawWorker) recv(flags int) (int, error) {
	n, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(w.fd),
		uintptr(unsafe.Pointer(&w.buf[0])), uintptr(len(w.buf)), uintptr(flags), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func (w *rawWorker) write(b []byte) error {
	for {
		_, err := unix.Write(w.fd, b)
		if err == unix.EINTR {
			continue
		}
		return err
	}
}

// parse hands every packet in b to the pipeline and every error message to
// other (which may be nil). It fails only when verdicts cannot be sent.
func (w *rawWorker) parse(b []byte, other func(*Message)) error {
	now := w.cfg.Now()
	for len(b) > 0 {
		rest, err := ParseMessage(b, &w.msg)
		m := &w.msg
		switch {
		case err != nil:
			w.c.parseErrors.Add(1)
			if m.Kind == MsgPacket && m.Packet.ID != 0 {
				// A packet we cannot read is dropped, not left queued.
				if err := w.pipe.plain(m.Packet.ID, false); err != nil {
					return err
				}
			}
		case m.Kind == MsgPacket:
			if err := w.pipe.handle(&m.Packet, now); err != nil {
				return err
			}
		case m.Kind == MsgError && m.Errno != 0:
			if other == nil {
				w.c.kernelErrors.Add(1)
			}
		}
		if other != nil && m.Kind == MsgError {
			other(m)
		}
		b = rest
	}
	return nil
}

// loop receives messages in batches and hands them to the pipeline in the
// order the kernel queued them. It waits for the first message of a drain,
// takes whatever else is queued without waiting, and flushes when a receive
// finds the socket empty (or the pipeline is full). Nothing pending refers
// to a receive slot once the pipeline's handle returns (altered packets are encoded into the
// verdict buffer and injected packets copied into the arena right away), so
// a slot may be reused by the next receive even with verdicts unsent.
func (w *rawWorker) loop(ctx context.Context) error {
	flags := unix.MSG_WAITFORONE
	for {
		if ctx.Err() != nil {
			return nil
		}
		n, err := w.recvMany(flags)
		switch err {
		case nil:
		case unix.EAGAIN:
			// The drain is over (or a blocking receive timed out).
			if err := w.pipe.flush(); err != nil {
				return fmt.Errorf("queue %d: verdict: %w", w.queue, err)
			}
			flags = unix.MSG_WAITFORONE
			continue
		case unix.EINTR:
			continue
		case unix.ENOBUFS:
			w.c.enobufs.Add(1)
			continue
		default:
			return fmt.Errorf("queue %d: receive: %w", w.queue, os.NewSyscallError("recvmmsg", err))
		}
		for i := range n {
			if err := w.parse(w.bufs[i][:w.msgs[i].Len], nil); err != nil {
				return fmt.Errorf("queue %d: verdict: %w", w.queue, err)
			}
			if w.pipe.full(w.cfg.Now(), w.cfg.FlushInterval) {
				if err := w.pipe.flush(); err != nil {
					return fmt.Errorf("queue %d: verdict: %w", w.queue, err)
				}
			}
		}
		// Drain on even when this batch was short: more messages arrive
		// while these are handled, and flushing only when a receive finds
		// the socket empty keeps verdict writes and injections batched.
		flags = unix.MSG_DONTWAIT
	}
}
