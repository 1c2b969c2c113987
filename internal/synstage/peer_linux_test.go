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
	a, b := fmt.Sprintf("swpeer%da", os.Getpid()), fmt.Sprintf("swpeer%db", os.Getpid())
	testnet.SkipIfNoPrivilege(t, testnet.Run("ip", "netns", "add", a))
	t.Cleanup(func() { testnet.Run("ip", "netns", "del", a) })
	if err := testnet.Run("ip", "netns", "add", b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testnet.Run("ip", "netns", "del", b) })
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
