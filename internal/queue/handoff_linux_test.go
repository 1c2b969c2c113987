package queue

import (
	"bytes"
	"encoding/binary"
	"os"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestHandoffEnvFormat(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[uint16]int
		bad  bool
	}{
		{"", map[uint16]int{}, false},
		{"0:5", map[uint16]int{0: 5}, false},
		{"1:7,0:6", map[uint16]int{0: 6, 1: 7}, false},
		{"0:2", nil, true},  // stderr
		{"0:-1", nil, true}, // not an fd
		{"0:5,0:6", nil, true},
		{"0:5,1:5", nil, true},
		{"70000:5", nil, true},
		{"0-5", nil, true},
		{"0:5,", nil, true},
	} {
		got, err := parseHandoff(tc.in)
		if (err != nil) != tc.bad {
			t.Errorf("parseHandoff(%q) = %v, %v; want error %v", tc.in, got, err, tc.bad)
			continue
		}
		if tc.bad {
			continue
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("parseHandoff(%q) (-want +got):\n%s", tc.in, d)
		}
		if len(got) > 0 {
			if back, _ := parseHandoff(formatHandoff(got)); !cmp.Equal(back, got) {
				t.Errorf("parseHandoff(formatHandoff(%v)) = %v", got, back)
			}
		}
	}
	if got := formatHandoff(map[uint16]int{3: 9, 1: 8}); got != "1:8,3:9" {
		t.Errorf("formatHandoff = %q, want 1:8,3:9", got)
	}
}

// TestDropCmdAttr: the adopt message is the bind message without its
// NFQA_CFG_CMD attribute, the other attributes and the length right.
func TestDropCmdAttr(t *testing.T) {
	bind := appendConfigBind(nil, 9, 3, 4096, true)
	got := dropCmdAttr(bytes.Clone(bind))
	const hdr = 20
	if len(got) != len(bind)-8 {
		t.Fatalf("len = %d, want %d (one 8-byte attribute less)", len(got), len(bind)-8)
	}
	if l := binary.NativeEndian.Uint32(got); int(l) != len(got) {
		t.Errorf("nlmsg_len = %d, want %d", l, len(got))
	}
	if !bytes.Equal(got[4:hdr], bind[4:hdr]) {
		t.Errorf("header changed: %x, want %x", got[4:hdr], bind[4:hdr])
	}
	if typ := binary.NativeEndian.Uint16(bind[hdr+2:]); typ != nfqaCfgCmd {
		t.Fatalf("bind message's first attribute is %d, want NFQA_CFG_CMD", typ)
	}
	if !bytes.Equal(got[hdr:], bind[hdr+8:]) {
		t.Errorf("attributes after the command differ")
	}
	for b := got[hdr:]; len(b) >= 4; {
		l := int(binary.NativeEndian.Uint16(b))
		if typ := binary.NativeEndian.Uint16(b[2:]); typ == nfqaCfgCmd {
			t.Errorf("NFQA_CFG_CMD still present")
		}
		b = b[(l+3)&^3:]
	}
}

// TestHandoffFromEnv: sockets named in the environment are checked, get
// close-on-exec back, and the variable is unset; Env clears close-on-exec
// for the next process.
func TestHandoffFromEnv(t *testing.T) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		t.Skipf("netlink socket: %v", err)
	}
	defer unix.Close(fd)
	h := &Handoff{}
	h.record(4, fd)
	env, err := h.Env()
	if err != nil {
		t.Fatal(err)
	}
	if want := HandoffEnv + "=4:" + strconv.Itoa(fd); env != want {
		t.Errorf("Env = %q, want %q", env, want)
	}
	if fl, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); fl&unix.FD_CLOEXEC != 0 {
		t.Errorf("close-on-exec still set after Env")
	}
	t.Setenv(HandoffEnv, env[len(HandoffEnv)+1:])
	got, err := HandoffFromEnv()
	if err != nil {
		t.Fatalf("HandoffFromEnv: %v", err)
	}
	if d := cmp.Diff(map[uint16]int{4: fd}, got.Inherited); d != "" {
		t.Errorf("Inherited (-want +got):\n%s", d)
	}
	if _, set := os.LookupEnv(HandoffEnv); set {
		t.Errorf("%s still set", HandoffEnv)
	}
	if fl, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); fl&unix.FD_CLOEXEC == 0 {
		t.Errorf("close-on-exec not set again")
	}

	// A file that is not a netfilter socket is refused.
	f, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	t.Setenv(HandoffEnv, "0:"+strconv.Itoa(int(f.Fd())))
	if h, err := HandoffFromEnv(); err == nil || h != nil {
		t.Errorf("HandoffFromEnv(a file) = %v, %v; want refused", h, err)
	}
	route, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(route)
	t.Setenv(HandoffEnv, "0:"+strconv.Itoa(route))
	if h, err := HandoffFromEnv(); err == nil || h != nil {
		t.Errorf("HandoffFromEnv(a NETLINK_ROUTE socket) = %v, %v; want refused", h, err)
	}
	os.Unsetenv(HandoffEnv)
	if h, err := HandoffFromEnv(); h != nil || err != nil {
		t.Errorf("HandoffFromEnv without the variable = %v, %v; want nil, nil", h, err)
	}
}

// TestCloseExcept: inherited sockets of queues no longer configured are
// closed.
func TestCloseExcept(t *testing.T) {
	var fds []int
	for range 2 {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		if err != nil {
			t.Skipf("netlink socket: %v", err)
		}
		fds = append(fds, fd)
	}
	defer unix.Close(fds[0])
	h := &Handoff{Inherited: map[uint16]int{0: fds[0], 5: fds[1]}}
	if n := h.CloseExcept([]uint16{0, 1}); n != 1 {
		t.Errorf("CloseExcept = %d, want 1", n)
	}
	if d := cmp.Diff(map[uint16]int{0: fds[0]}, h.Inherited); d != "" {
		t.Errorf("Inherited after CloseExcept (-want +got):\n%s", d)
	}
	if _, err := unix.FcntlInt(uintptr(fds[1]), unix.F_GETFD, 0); err != unix.EBADF {
		t.Errorf("fd of queue 5 after CloseExcept: %v, want closed (EBADF)", err)
	}
	if n := (*Handoff)(nil).CloseExcept(nil); n != 0 {
		t.Errorf("nil CloseExcept = %d", n)
	}
}
