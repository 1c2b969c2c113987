package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Env clears close-on-exec on the kept sockets and returns the
// "NAME=VALUE" entry that names them for the next process ("" when none
// was kept). Call it right before execve; if the execve fails, the process
// should exit (the kernel unbinds the queues when the sockets close).
func (h *Handoff) Env() (string, error) {
	fds := h.Kept()
	if len(fds) == 0 {
		return "", nil
	}
	for q, fd := range fds {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			return "", fmt.Errorf("queue %d: clearing close-on-exec on fd %d: %w", q, fd, err)
		}
	}
	return HandoffEnv + "=" + formatHandoff(fds), nil
}

// HandoffFromEnv picks up the sockets named in HandoffEnv, if set, and
// unsets it (a later execve must not name sockets twice). Every fd must be
// a NETLINK_NETFILTER socket; it gets close-on-exec back. On an error no
// socket is used and every named fd that is such a socket is closed, which
// unbinds its queue: the caller then binds afresh. It returns nil, nil
// when the variable is not set.
func HandoffFromEnv() (*Handoff, error) {
	s, ok := os.LookupEnv(HandoffEnv)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(HandoffEnv)
	fds, err := parseHandoff(s)
	if err != nil {
		return nil, err
	}
	var errs []error
	for q, fd := range fds {
		if err := checkNetfilterSocket(fd); err != nil {
			errs = append(errs, fmt.Errorf("queue %d: fd %d: %w", q, fd, err))
			delete(fds, q)
			continue
		}
		unix.CloseOnExec(fd)
	}
	if len(errs) > 0 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, errors.Join(errs...)
	}
	return &Handoff{Inherited: fds}, nil
}

// checkNetfilterSocket reports whether fd is an AF_NETLINK socket of
// protocol NETLINK_NETFILTER.
func checkNetfilterSocket(fd int) error {
	dom, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return fmt.Errorf("not a socket: %w", err)
	}
	proto, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	if err != nil {
		return err
	}
	if dom != unix.AF_NETLINK || proto != unix.NETLINK_NETFILTER {
		return fmt.Errorf("socket of domain %d protocol %d, want a netfilter netlink socket", dom, proto)
	}
	return nil
}

// CloseExcept unbinds and closes the inherited sockets of queue numbers
// not in keep (queues the new configuration no longer uses) and returns
// how many it closed.
func (h *Handoff) CloseExcept(keep []uint16) int {
	if h == nil {
		return 0
	}
	n := 0
	for q, fd := range h.Inherited {
		used := false
		for _, k := range keep {
			used = used || k == q
		}
		if !used {
			msg := appendConfigCmd(make([]byte, 0, 64), 1, q, nfqnlCfgCmdUnbind)
			_, _ = unix.Write(fd, msg)
			unix.Close(fd)
			delete(h.Inherited, q)
			n++
		}
	}
	return n
}

// adopt takes over a socket bound by an earlier process: it sends the
// queue's configuration (copy mode, queue length, flags) without a bind
// command, and waits for the kernel's answer, handling any packet that
// arrives meanwhile (the queue never stopped).
func (w *rawWorker) adopt() error {
	w.seq++
	msg := appendConfigBind(make([]byte, 0, 128), w.seq, w.queue, w.cfg.MaxQueueLen, w.cfg.FailOpen)
	msg = dropCmdAttr(msg)
	return w.configure(msg, "configure handed-over socket", func(error) string { return " (not bound to it?)" })
}

// dropCmdAttr removes the NFQA_CFG_CMD attribute that appendConfigBind puts
// first after the nfgenmsg header, fixing the message length.
func dropCmdAttr(msg []byte) []byte {
	const hdr = 16 + 4 // nlmsghdr + nfgenmsg
	alen := int(binary.NativeEndian.Uint16(msg[hdr:]))
	alen = (alen + 3) &^ 3
	out := append(msg[:hdr:hdr], msg[hdr+alen:]...)
	binary.NativeEndian.PutUint32(out, uint32(len(out)))
	return out
}
