package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns add` pins named namespaces.
const netnsDir = "/run/netns"

// InNetns runs fn on a new goroutine whose OS thread has joined the network
// namespace ns, and waits for it. Sockets fn creates belong to ns for their
// whole life and may be used from any goroutine afterwards. fn must not start
// goroutines that create sockets (they would run in this process's own
// namespace), and must resolve no names.
//
// The thread is never unlocked: it exits with the goroutine, so no other
// goroutine ever runs in ns.
func InNetns(ns string, fn func() error) error {
	f, err := os.Open(filepath.Join(netnsDir, ns))
	if err != nil {
		return fmt.Errorf("lab: namespace %s: %w", ns, err)
	}
	defer f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see above
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			if errors.Is(err, unix.EPERM) {
				err = fmt.Errorf("%w (setns: %v)", ErrPermission, err)
			}
			errc <- fmt.Errorf("lab: join namespace %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// ListenIn opens a TCP listener in namespace ns. addr must hold an IP
// literal (or none).
func ListenIn(ns, network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := InNetns(ns, func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// DialIn connects to addr (an IP literal and port) from namespace ns.
func DialIn(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := InNetns(ns, func() error {
		var err error
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// SetBacklog changes the listen queue length of a listening TCP socket
// (Linux applies a second listen(2) to a listening socket as a new backlog,
// capped at the namespace's net.core.somaxconn).
func SetBacklog(ln net.Listener, backlog int) error {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return fmt.Errorf("lab: SetBacklog: %T is not a TCP listener", ln)
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) { lerr = unix.Listen(int(fd), backlog) }); err != nil {
		return err
	}
	if lerr != nil {
		return fmt.Errorf("lab: listen backlog %d: %w", backlog, lerr)
	}
	return nil
}

// sysctlPath maps "net.ipv4.ip_forward" to /proc/sys/net/ipv4/ip_forward.
func sysctlPath(key string) (string, error) {
	if key == "" || strings.ContainsAny(key, "/ ") || strings.Contains(key, "..") {
		return "", fmt.Errorf("lab: bad sysctl name %q", key)
	}
	return "/proc/sys/" + strings.ReplaceAll(key, ".", "/"), nil
}

// SetSysctl writes a network sysctl inside namespace ns.
func SetSysctl(ns, key, value string) error {
	p, err := sysctlPath(key)
	if err != nil {
		return err
	}
	return InNetns(ns, func() error {
		if err := os.WriteFile(p, []byte(value), 0); err != nil {
			return fmt.Errorf("lab: sysctl %s=%s in %s: %w", key, value, ns, err)
		}
		return nil
	})
}

// Sysctl reads a network sysctl inside namespace ns.
func Sysctl(ns, key string) (string, error) {
	p, err := sysctlPath(key)
	if err != nil {
		return "", err
	}
	var v string
	err = InNetns(ns, func() error {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("lab: sysctl %s in %s: %w", key, ns, err)
		}
		v = strings.TrimSpace(string(b))
		return nil
	})
	return v, err
}

// setProcessGroup puts cmd in a process group of its own, and makes
// cancelling its context interrupt the group (SIGINT lets timeout(1) and
// hping3 stop cleanly and print their statistics).
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	}
	cmd.WaitDelay = 5 * time.Second
}
