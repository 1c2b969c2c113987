package lab

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestSynwallServerOutbound: with the embedded default policy (every port
// of the server network guarded), the server opens connections of its own
// to a host beyond the gateway, over IPv4 and IPv6, and they work; synwall
// counts them as outbound.
func TestSynwallServerOutbound(t *testing.T) {
	l := newLab(t)
	sw := startSynwall(t, l, SynwallConfig{})
	for _, remote := range []netip.Addr{ClientV4, ClientV6} {
		t.Run(remote.String(), func(t *testing.T) {
			ln, err := ListenIn(l.Client, "tcp", netip.AddrPortFrom(remote, 8443).String())
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.Write([]byte("hello from beyond the gateway"))
					c.Close()
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := DialIn(ctx, l.Server, "tcp", netip.AddrPortFrom(remote, 8443).String())
			if err != nil {
				t.Fatalf("dial from the server to %v: %v", remote, err)
			}
			defer c.Close()
			c.(*net.TCPConn).SetDeadline(time.Now().Add(10 * time.Second))
			got, err := io.ReadAll(c)
			if err != nil || string(got) != "hello from beyond the gateway" {
				t.Errorf("read %q, %v; want the greeting", got, err)
			}
		})
	}
	st := statsAfter(t, sw)
	if st.Events["outbound"] < 2 {
		t.Errorf("synwall counted %d outbound packets, want the connections' (events %v, drops %v)", st.Events["outbound"], st.Events, st.Drops)
	}
}
