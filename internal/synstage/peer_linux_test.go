//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package synstage

import (
	"fmt"
	"net"
	"os"
	"testing"

	"github.com/synwall/synwall/deploy/lab"
	"github.com/synwall/synwall/internal/testnet"
)

// TestVethPeerElsewhere checks the test that picks bpf_redirect_peer: a
// veth whose peer is in another namespace qualifies; a veth pair inside
// one namespace and the loopback do not (bpf_redirect_peer would drop
// their packets).
func TestVethPeerElsewhere(t *testing.T) {
	a, b := twoNetns(t, "swpeer")
	for _, c := range [][]string{
		{"ip", "-n", a, "link", "add", "x0", "type", "veth", "peer", "name", "x1", "netns", b},
		{"ip", "-n", a, "link", "add", "y0", "type", "veth", "peer", "name", "y1"},
	} {
		if err := testnet.Run(c...); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		ifname string
		want   bool
	}{{"x0", true}, {"y0", false}, {"y1", false}, {"lo", false}} {
		var got bool
		err := lab.InNetns(a, func() error {
			ifi, err := net.InterfaceByName(c.ifname)
			if err != nil {
				return err
			}
			got, err = vethPeerElsewhere(ifi.Index)
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v", c.ifname, err)
		}
		if got != c.want {
			t.Errorf("vethPeerElsewhere(%s) = %v, want %v", c.ifname, got, c.want)
		}
	}
}

// TestRecheckPeers attaches the program to a veth whose peer is in another
// namespace (marked: SYN-ACKs take bpf_redirect_peer), then moves the peer
// into the same namespace: RecheckPeers unmarks it, so that its SYN-ACKs
// go out the plain way instead of being dropped.
func TestRecheckPeers(t *testing.T) {
	a, b := twoNetns(t, "swrchk")
	if err := testnet.Run("ip", "-n", a, "link", "add", "x0", "type", "veth", "peer", "name", "x1", "netns", b); err != nil {
		t.Fatal(err)
	}
	s := loadStage(t)
	marks := func() (n int) {
		var k, v uint32
		for it := s.objs.PeerIfs.Iterate(); it.Next(&k, &v); {
			if v != 0 {
				n++
			}
		}
		return n
	}
	if err := lab.InNetns(a, func() error { return s.Attach("x0", AttachTCX) }); err != nil {
		t.Fatal(err)
	}
	if got := s.Attachments(); len(got) != 1 || !got[0].Peer || marks() != 1 {
		t.Fatalf("after Attach: %v, %d marks; want x0 marked", got, marks())
	}
	var changed []Attachment
	lab.InNetns(a, func() error { changed = s.RecheckPeers(); return nil })
	if len(changed) != 0 {
		t.Errorf("RecheckPeers with nothing moved = %v, want none", changed)
	}
	if err := testnet.Run("ip", "-n", b, "link", "set", "x1", "netns", a); err != nil {
		t.Fatal(err)
	}
	lab.InNetns(a, func() error { changed = s.RecheckPeers(); return nil })
	if len(changed) != 1 || changed[0].Interface != "x0" || changed[0].Peer {
		t.Errorf("RecheckPeers after the peer moved in = %v, want x0 unmarked", changed)
	}
	if got := s.Attachments(); len(got) != 1 || got[0].Peer || marks() != 0 {
		t.Errorf("after RecheckPeers: %v, %d marks; want x0 unmarked", got, marks())
	}
}

// twoNetns makes two network namespaces named after prefix and the
// process, removed when t ends; it skips t without the privilege.
func twoNetns(t *testing.T, prefix string) (a, b string) {
	t.Helper()
	a, b = fmt.Sprintf("%s%da", prefix, os.Getpid()), fmt.Sprintf("%s%db", prefix, os.Getpid())
	testnet.SkipIfNoPrivilege(t, testnet.Run("ip", "netns", "add", a))
	t.Cleanup(func() { testnet.Run("ip", "netns", "del", a) })
	if err := testnet.Run("ip", "netns", "add", b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testnet.Run("ip", "netns", "del", b) })
	return a, b
}
