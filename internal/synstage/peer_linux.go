//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package synstage

import (
	"encoding/binary"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// vethPeerElsewhere reports whether interface ifindex is a veth whose peer
// lives in another network namespace: the kernel then reports the peer's
// namespace (IFLA_LINK_NETNSID) with the link, and bpf_redirect_peer can
// hand a packet from the interface's ingress to the peer's.
func vethPeerElsewhere(ifindex int) (bool, error) {
	c, err := netlink.Dial(unix.NETLINK_ROUTE, nil)
	if err != nil {
		return false, fmt.Errorf("rtnetlink: %w", err)
	}
	defer c.Close()
	// struct ifinfomsg: family, pad, type, index, flags, change.
	ifi := make([]byte, unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(ifi[4:], uint32(ifindex))
	msgs, err := c.Execute(netlink.Message{Header: netlink.Header{Type: unix.RTM_GETLINK, Flags: netlink.Request}, Data: ifi})
	if err != nil {
		return false, fmt.Errorf("rtnetlink RTM_GETLINK %d: %w", ifindex, err)
	}
	if len(msgs) != 1 || len(msgs[0].Data) < unix.SizeofIfInfomsg {
		return false, fmt.Errorf("rtnetlink RTM_GETLINK %d: %d answers", ifindex, len(msgs))
	}
	return parseVethPeer(msgs[0].Data[unix.SizeofIfInfomsg:])
}

// parseVethPeer reads a link's attributes: is it a veth (IFLA_LINKINFO's
// IFLA_INFO_KIND) with its peer's namespace reported (IFLA_LINK_NETNSID)?
func parseVethPeer(attrs []byte) (bool, error) {
	ad, err := netlink.NewAttributeDecoder(attrs)
	if err != nil {
		return false, err
	}
	veth, elsewhere := false, false
	for ad.Next() {
		switch ad.Type() {
		case unix.IFLA_LINK_NETNSID:
			elsewhere = true
		case unix.IFLA_LINKINFO:
			ad.Nested(func(nd *netlink.AttributeDecoder) error {
				for nd.Next() {
					if nd.Type() == unix.IFLA_INFO_KIND {
						veth = nd.String() == "veth"
					}
				}
				return nil
			})
		}
	}
	if err := ad.Err(); err != nil {
		return false, err
	}
	return veth && elsewhere, nil
}
