package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Addresses of the lab. Every link is a /24 and a /64; the gateway is .1 and
// ::1 on each of them.
var (
	ClientV4   = netip.MustParseAddr("198.18.1.2")
	ClientV6   = netip.MustParseAddr("2001:db8:1::2")
	AttackerV4 = netip.MustParseAddr("198.18.2.2")
	AttackerV6 = netip.MustParseAddr("2001:db8:2::2")
	ServerV4   = netip.MustParseAddr("198.18.3.2")
	ServerV6   = netip.MustParseAddr("2001:db8:3::2")

	GatewayClientV4   = netip.MustParseAddr("198.18.1.1")
	GatewayClientV6   = netip.MustParseAddr("2001:db8:1::1")
	GatewayAttackerV4 = netip.MustParseAddr("198.18.2.1")
	GatewayAttackerV6 = netip.MustParseAddr("2001:db8:2::1")
	GatewayServerV4   = netip.MustParseAddr("198.18.3.1")
	GatewayServerV6   = netip.MustParseAddr("2001:db8:3::1")

	// SpoofPrefix is routed from the gateway to the attacker, so that a
	// generator there can send from any of its addresses and the answers
	// come back to the attacker (which ignores them).
	SpoofPrefix = netip.MustParsePrefix("198.19.0.0/16")
	// SpoofPrefix6 is SpoofPrefix's IPv6 counterpart.
	SpoofPrefix6 = netip.MustParsePrefix("2001:db8:ff::/48")

	// LabPrefix4 and LabPrefix6 hold every address the lab uses.
	LabPrefix4 = netip.MustParsePrefix("198.18.0.0/15")
	LabPrefix6 = netip.MustParsePrefix("2001:db8::/32")
)

// Interface names. Each lives in its own namespace, so they are the same in
// every lab instance.
const (
	// IfUplink is the interface of the client, attacker and server that
	// leads to the gateway.
	IfUplink = "gw0"
	// IfClient, IfAttacker and IfServer are the gateway's interfaces.
	IfClient   = "cli0"
	IfAttacker = "atk0"
	IfServer   = "srv0"
)

// Errors of the lab. Test with errors.Is.
var (
	// ErrPermission: the caller may not create namespaces (not root, or no
	// CAP_NET_ADMIN / CAP_SYS_ADMIN). It wraps fs.ErrPermission.
	ErrPermission = fmt.Errorf("lab: not permitted to build network namespaces (run as root): %w", fs.ErrPermission)
	// ErrMissingTool: a program the lab needs is not installed.
	ErrMissingTool = errors.New("lab: missing tool (run deploy/setup.sh)")
	// ErrDown: the lab has been taken down.
	ErrDown = errors.New("lab: lab is down")
)

// Config configures Up.
type Config struct {
	// Prefix starts every namespace name: Prefix+"-cli", "-atk", "-gw",
	// "-srv". Empty picks "sw<PID>-<n>", unique within this host while this
	// process lives. Two labs with different prefixes coexist.
	Prefix string
	// Trace, if set, receives every command the lab runs (for debugging).
	Trace func(cmd string)
}

// Lab is a running lab. Its methods are safe for concurrent use.
type Lab struct {
	Prefix                            string
	Client, Attacker, Gateway, Server string // namespace names

	trace func(string)

	mu      sync.Mutex
	created []string // namespaces this lab added: Down deletes only these
	down    bool
	closers []*closer // stopped by Down, last first
}

var labSeq atomic.Int64

// Names returns the namespace names for prefix: client, attacker, gateway,
// server.
func Names(prefix string) (cli, atk, gw, srv string) {
	return prefix + "-cli", prefix + "-atk", prefix + "-gw", prefix + "-srv"
}

// Require reports ErrMissingTool naming every program of names that is not
// on PATH.
func Require(names ...string) error {
	var missing []string
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s", ErrMissingTool, strings.Join(missing, ", "))
	}
	return nil
}

// Up builds a lab. If any step fails it removes what it built and returns
// the error; ErrPermission when namespaces cannot be created.
func Up(ctx context.Context, cfg Config) (*Lab, error) {
	if err := Require("ip", "iptables", "ip6tables"); err != nil {
		return nil, err
	}
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = fmt.Sprintf("sw%d-%d", os.Getpid(), labSeq.Add(1))
	}
	if strings.ContainsAny(prefix, "/ \t\n") || len(prefix) > 200 {
		return nil, fmt.Errorf("lab: bad prefix %q", prefix)
	}
	l := &Lab{Prefix: prefix, trace: cfg.Trace}
	l.Client, l.Attacker, l.Gateway, l.Server = Names(prefix)
	if err := l.build(ctx); err != nil {
		if derr := l.Down(); derr != nil {
			err = errors.Join(err, derr)
		}
		return nil, err
	}
	return l, nil
}

// Namespaces returns the four namespace names.
func (l *Lab) Namespaces() []string {
	return []string{l.Client, l.Attacker, l.Gateway, l.Server}
}

func (l *Lab) build(ctx context.Context) error {
	// The first namespace tells whether we may do this at all.
	for _, ns := range l.Namespaces() {
		if _, err := l.run(ctx, "ip", "netns", "add", ns); err != nil {
			if isPermission(err) {
				return fmt.Errorf("%w (%v)", ErrPermission, err)
			}
			return err
		}
		l.mu.Lock()
		l.created = append(l.created, ns)
		l.mu.Unlock()
	}
	// Sysctls first, so that the interfaces created next inherit the
	// defaults (no DAD, no reverse-path filter).
	common := [][2]string{
		{"net.ipv6.conf.all.accept_dad", "0"},
		{"net.ipv6.conf.default.accept_dad", "0"},
		{"net.ipv6.conf.all.accept_ra", "0"},
		{"net.ipv6.conf.default.accept_ra", "0"},
		{"net.ipv4.conf.all.rp_filter", "0"},
		{"net.ipv4.conf.default.rp_filter", "0"},
	}
	for _, ns := range l.Namespaces() {
		for _, kv := range common {
			if err := SetSysctl(ns, kv[0], kv[1]); err != nil {
				return err
			}
		}
	}
	for _, kv := range [][2]string{
		{"net.ipv4.ip_forward", "1"},
		{"net.ipv6.conf.all.forwarding", "1"},
	} {
		if err := SetSysctl(l.Gateway, kv[0], kv[1]); err != nil {
			return err
		}
	}

	type link struct {
		ns, gwIf     string
		v4, v6       netip.Addr // the host's addresses
		gw4, gw6     netip.Addr // the gateway's addresses on this link
		bits4, bits6 int
	}
	links := []link{
		{l.Client, IfClient, ClientV4, ClientV6, GatewayClientV4, GatewayClientV6, 24, 64},
		{l.Attacker, IfAttacker, AttackerV4, AttackerV6, GatewayAttackerV4, GatewayAttackerV6, 24, 64},
		{l.Server, IfServer, ServerV4, ServerV6, GatewayServerV4, GatewayServerV6, 24, 64},
	}
	var cmds [][]string
	for _, ns := range l.Namespaces() {
		cmds = append(cmds, []string{"ip", "-n", ns, "link", "set", "lo", "up"})
	}
	for _, k := range links {
		cmds = append(cmds,
			[]string{"ip", "-n", l.Gateway, "link", "add", k.gwIf, "type", "veth", "peer", "name", IfUplink, "netns", k.ns},
			[]string{"ip", "-n", l.Gateway, "addr", "add", fmt.Sprintf("%s/%d", k.gw4, k.bits4), "dev", k.gwIf},
			[]string{"ip", "-n", l.Gateway, "addr", "add", fmt.Sprintf("%s/%d", k.gw6, k.bits6), "dev", k.gwIf, "nodad"},
			[]string{"ip", "-n", k.ns, "addr", "add", fmt.Sprintf("%s/%d", k.v4, k.bits4), "dev", IfUplink},
			[]string{"ip", "-n", k.ns, "addr", "add", fmt.Sprintf("%s/%d", k.v6, k.bits6), "dev", IfUplink, "nodad"},
			[]string{"ip", "-n", l.Gateway, "link", "set", k.gwIf, "up"},
			[]string{"ip", "-n", k.ns, "link", "set", IfUplink, "up"},
			[]string{"ip", "-n", k.ns, "route", "add", "default", "via", k.gw4.String(), "dev", IfUplink},
			[]string{"ip", "-n", k.ns, "-6", "route", "add", "default", "via", k.gw6.String(), "dev", IfUplink},
		)
	}
	cmds = append(cmds,
		[]string{"ip", "-n", l.Gateway, "route", "add", SpoofPrefix.String(), "via", AttackerV4.String(), "dev", IfAttacker},
		[]string{"ip", "-n", l.Gateway, "-6", "route", "add", SpoofPrefix6.String(), "via", AttackerV6.String(), "dev", IfAttacker},
	)
	for _, c := range cmds {
		if _, err := l.run(ctx, c[0], c[1:]...); err != nil {
			return err
		}
	}
	// A spoofed flood's sources never see the SYN-ACKs sent to them, so
	// they never answer. The attacker drops every SYN-ACK on arrival (raw
	// PREROUTING, before its TCP stack would answer with a reset, which
	// would cost the gateway's CPU as well: the veth delivers it inside the
	// gateway's send call). What hping3 itself sends is untouched.
	for _, ipt := range []string{"iptables", "ip6tables"} {
		if _, err := l.Exec(ctx, l.Attacker, ipt, "-w", "10", "-t", "raw", "-A", "PREROUTING", "-p", "tcp",
			"--tcp-flags", "SYN,ACK", "SYN,ACK",
			"-m", "comment", "--comment", "lab: attacker stays silent", "-j", "DROP"); err != nil {
			return err
		}
	}
	return nil
}

// Down stops everything started through the lab (servers, floods, synwall)
// and deletes the namespaces it created. It is idempotent, and removes
// whatever exists of a half-built lab.
func (l *Lab) Down() error {
	l.mu.Lock()
	closers, created := l.closers, l.created
	l.closers, l.created = nil, nil
	l.down = true
	l.mu.Unlock()
	var errs []error
	for i := len(closers) - 1; i >= 0; i-- {
		if closers[i].f == nil {
			continue
		}
		if err := closers[i].f(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := removeNamespaces(created...); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Remove deletes the namespaces of the lab with this prefix, those that
// exist. It is what `synwall-lab lab down` uses for a lab built by another
// process.
func Remove(prefix string) error {
	cli, atk, gw, srv := Names(prefix)
	return removeNamespaces(cli, atk, gw, srv)
}

func removeNamespaces(names ...string) error {
	var errs []error
	for _, ns := range names {
		if _, err := os.Stat("/run/netns/" + ns); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, "ip", "netns", "del", ns).CombinedOutput()
		cancel()
		if err != nil && !strings.Contains(string(out), "No such file") {
			errs = append(errs, fmt.Errorf("lab: ip netns del %s: %v: %s", ns, err, bytes.TrimSpace(out)))
		}
	}
	return errors.Join(errs...)
}

type closer struct{ f func() error }

// onDown registers f to run at Down. It fails with ErrDown once the lab is
// down. The returned function unregisters f.
func (l *Lab) onDown(f func() error) (func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return func() {}, ErrDown
	}
	c := &closer{f}
	l.closers = append(l.closers, c)
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		c.f = nil
		if i := len(l.closers) - 1; i >= 0 && l.closers[i] == c {
			l.closers = l.closers[:i]
		}
	}, nil
}

// Cmd returns a command that runs name with args in namespace ns
// (`ip netns exec`). The command gets its own process group, so that
// cancelling ctx ends it and whatever it started.
func (l *Lab) Cmd(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	full := append([]string{"netns", "exec", ns, name}, args...)
	if l.trace != nil {
		l.trace("ip " + strings.Join(full, " "))
	}
	cmd := exec.CommandContext(ctx, "ip", full...)
	setProcessGroup(cmd)
	return cmd
}

// Exec runs name with args in namespace ns and returns its combined output.
// A failure's error includes the output.
func (l *Lab) Exec(ctx context.Context, ns, name string, args ...string) (string, error) {
	cmd := l.Cmd(ctx, ns, name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("lab: %s %s in %s: %w: %s", name, strings.Join(args, " "), ns, err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// run runs a command in the current namespace.
func (l *Lab) run(ctx context.Context, name string, args ...string) (string, error) {
	if l.trace != nil {
		l.trace(name + " " + strings.Join(args, " "))
	}
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("lab: %s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

func isPermission(err error) bool {
	s := err.Error()
	return errors.Is(err, fs.ErrPermission) ||
		strings.Contains(s, "Operation not permitted") ||
		strings.Contains(s, "Permission denied")
}

// WeakServer makes the server namespace's TCP stack easy to flood, as a
// baseline: no SYN cookies, a small SYN backlog and listen queue. Servers
// started afterwards with ServerConfig.Backlog get at most somaxconn.
func (l *Lab) WeakServer(synBacklog, somaxconn int) error {
	for _, kv := range [][2]string{
		{"net.ipv4.tcp_syncookies", "0"},
		{"net.ipv4.tcp_max_syn_backlog", fmt.Sprint(synBacklog)},
		{"net.core.somaxconn", fmt.Sprint(somaxconn)},
	} {
		if err := SetSysctl(l.Server, kv[0], kv[1]); err != nil {
			return err
		}
	}
	return nil
}
