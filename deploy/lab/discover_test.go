package lab

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tcpi_options bits (linux/tcp.h).
const (
	tcpiOptTimestamps = 1
	tcpiOptSACK       = 2
)

const discoverPolicy = `version: 1
services:
  - name: web
    addresses: [198.18.3.2/32]
    ports: [80]
    advertise:
      discover: true     # the values below are fallbacks; the probe must override them
      mss: 1460
      wscale: 7
      sack: true
      timestamps: true
`

// TestSynwallDiscover: with advertise.discover, synwall probes the real
// server at start and its own SYN-ACKs then advertise what the server's do:
// here an MSS of 1100 (the server's route advmss) and no SACK (the server
// has it off), although the policy's fallbacks say 1460 and SACK.
func TestSynwallDiscover(t *testing.T) {
	l := newLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, c := range [][]string{
		// Both the route to the clients and the one to the gateway itself
		// (whose address the probe comes from) advertise 1100.
		{"ip", "route", "change", "default", "via", GatewayServerV4.String(), "dev", IfUplink, "advmss", "1100"},
		{"ip", "route", "change", "198.18.3.0/24", "dev", IfUplink, "proto", "kernel", "scope", "link", "src", ServerV4.String(), "advmss", "1100"},
		{"sysctl", "-qw", "net.ipv4.tcp_sack=0"},
	} {
		if out, err := l.Exec(ctx, l.Server, c[0], c[1:]...); err != nil {
			t.Fatalf("%v: %v: %s", c, err, out)
		}
	}
	if _, err := l.StartServers(ServerConfig{}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "discover.yaml")
	if err := os.WriteFile(path, []byte(discoverPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	sw := startSynwall(t, l, SynwallConfig{Policy: path})
	if log := sw.Stderr(); !strings.Contains(log, "discovered") || !strings.Contains(log, "mss=1100") {
		t.Errorf("synwall did not log the discovered MSS 1100:\n%s", log)
	}

	conn, err := DialIn(ctx, l.Client, "tcp", "198.18.3.2:80")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var info *unix.TCPInfo
	rc, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) { info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) })
	if err != nil {
		t.Fatal(err)
	}
	// The client's sending MSS is what the SYN-ACK advertised, less the
	// 12 bytes of timestamp option when timestamps are on.
	mss := info.Snd_mss
	if info.Options&tcpiOptTimestamps != 0 {
		mss += 12
	}
	if mss != 1100 {
		t.Errorf("client's MSS from synwall's SYN-ACK = %d (snd_mss %d), want the server's 1100", mss, info.Snd_mss)
	}
	if info.Options&tcpiOptSACK != 0 {
		t.Errorf("synwall's SYN-ACK offered SACK; the server does not do SACK")
	}
	// And the connection works end to end.
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte("GET /small HTTP/1.0\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := conn.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "HTTP/1.") || !strings.Contains(string(buf[:n]), "200") {
		t.Errorf("response through synwall: %q", buf[:n])
	}
}
