package daemon

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// stageLinks lists this network namespace's interfaces.
func stageLinks() ([]stageLink, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("listing interfaces: %w", err)
	}
	links := make([]stageLink, 0, len(ifs))
	for _, i := range ifs {
		links = append(links, stageLink{Name: i.Name, Index: i.Index, Up: i.Flags&net.FlagUp != 0, Loopback: i.Flags&net.FlagLoopback != 0})
	}
	return links, nil
}

// serviceRoutes looks up the route to the first address of each prefix.
func serviceRoutes(prefixes []netip.Prefix) []serviceRoute {
	out := make([]serviceRoute, 0, len(prefixes))
	for _, pf := range prefixes {
		idx, err := routeOutIndex(pf.Masked().Addr())
		out = append(out, serviceRoute{Prefix: pf, Index: idx, Err: err})
	}
	return out
}

// routeOutIndex asks the kernel (rtnetlink RTM_GETROUTE, as `ip route get
// ADDR`) which interface a packet to addr leaves through.
func routeOutIndex(addr netip.Addr) (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return 0, fmt.Errorf("rtnetlink socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, fmt.Errorf("rtnetlink bind: %w", err)
	}
	a := addr.Unmap().AsSlice()
	family := unix.AF_INET
	if len(a) == net.IPv6len {
		family = unix.AF_INET6
	}
	const seq = 1
	attrLen := unix.SizeofRtAttr + len(a)
	n := unix.SizeofNlMsghdr + unix.SizeofRtMsg + attrLen
	b := make([]byte, n)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(n))
	ne.PutUint16(b[4:], unix.RTM_GETROUTE)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(b[8:], seq)
	rtm := b[unix.SizeofNlMsghdr:]
	rtm[0] = byte(family)
	rtm[1] = byte(len(a) * 8) // rtm_dst_len
	attr := rtm[unix.SizeofRtMsg:]
	ne.PutUint16(attr[0:], uint16(attrLen))
	ne.PutUint16(attr[2:], unix.RTA_DST)
	copy(attr[unix.SizeofRtAttr:], a)
	if err := unix.Sendto(fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, fmt.Errorf("rtnetlink RTM_GETROUTE %s: %w", addr, err)
	}
	buf := make([]byte, 16<<10)
	for {
		m, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return 0, fmt.Errorf("rtnetlink RTM_GETROUTE %s: %w", addr, err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:m])
		if err != nil {
			return 0, fmt.Errorf("rtnetlink RTM_GETROUTE %s: %w", addr, err)
		}
		for i := range msgs {
			msg := &msgs[i]
			if msg.Header.Seq != seq {
				continue
			}
			switch msg.Header.Type {
			case unix.NLMSG_ERROR:
				if len(msg.Data) < 4 {
					return 0, fmt.Errorf("rtnetlink RTM_GETROUTE %s: short error", addr)
				}
				if e := int32(ne.Uint32(msg.Data)); e != 0 {
					return 0, fmt.Errorf("no route to %s: %w", addr, unix.Errno(-e))
				}
				return 0, fmt.Errorf("rtnetlink RTM_GETROUTE %s: no answer", addr)
			case unix.RTM_NEWROUTE:
				attrs, err := syscall.ParseNetlinkRouteAttr(msg)
				if err != nil {
					return 0, fmt.Errorf("rtnetlink RTM_GETROUTE %s: %w", addr, err)
				}
				for _, at := range attrs {
					if at.Attr.Type == unix.RTA_OIF && len(at.Value) >= 4 {
						return int(ne.Uint32(at.Value)), nil
					}
				}
				return 0, fmt.Errorf("route to %s names no output interface", addr)
			}
		}
	}
}
