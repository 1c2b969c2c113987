package daemon

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/synwall/synwall/deploy/lab"
	"github.com/synwall/synwall/internal/firewall"
	"github.com/synwall/synwall/internal/policy"
)

// TestSelectStageInterfacesNetns builds a gateway namespace with two
// client-facing veths, one toward the servers (the route to the guarded
// prefix leaves through it) and one that is down, and checks that the real
// lookup (interfaces, rtnetlink RTM_GETROUTE) picks the client-facing
// veths and leaves out the others with their reasons.
func TestSelectStageInterfacesNetns(t *testing.T) {
	if _, err := exec.LookPath("ip"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ip (iproute2) is missing: %v", err)
		}
		t.Skipf("ip (iproute2) is missing: %v", err)
	}
	gw := fmt.Sprintf("swsel-gw-%d", os.Getpid())
	far := fmt.Sprintf("swsel-far-%d", os.Getpid())
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	for _, ns := range []string{gw, far} {
		out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput()
		if err != nil {
			if strings.Contains(string(out), "Operation not permitted") || strings.Contains(string(out), "Permission denied") {
				t.Skipf("creating a network namespace needs CAP_SYS_ADMIN (run as root): %s", out)
			}
			t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
		}
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	// Veths whose peers live in the far namespace: cli0 and atk0 face
	// clients, srv0 the servers behind 198.18.2.2, spare0 stays down.
	for i, name := range []string{"cli0", "atk0", "srv0", "spare0"} {
		ip("-n", gw, "link", "add", name, "type", "veth", "peer", "name", name+"p", "netns", far)
		ip("-n", far, "link", "set", name+"p", "up")
		if name != "spare0" {
			ip("-n", gw, "addr", "add", fmt.Sprintf("198.18.%d.1/24", i), "dev", name)
			ip("-n", gw, "link", "set", name, "up")
		}
	}
	ip("-n", gw, "route", "add", "198.18.100.0/24", "via", "198.18.2.2", "dev", "srv0")

	p := &policy.Policy{Services: []*policy.Service{
		{Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.100.0/24")}},
		{Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.100.80/32"), netip.MustParsePrefix("198.19.200.0/24")}},
	}}
	var (
		fwd, in []string
		srvIdx  int
		routes  []serviceRoute
		logs    bytes.Buffer
	)
	err := lab.InNetns(gw, func() error {
		i, err := net.InterfaceByName("srv0")
		if err != nil {
			return err
		}
		srvIdx = i.Index
		routes = serviceRoutes(servicePrefixes(p))
		d := &Daemon{log: slog.New(slog.NewTextHandler(&logs, nil))}
		d.cfg.Traffic.Hooks = []firewall.Hook{firewall.HookForward}
		fwd = d.selectStageInterfaces(p)
		d.cfg.Traffic.Hooks = []firewall.Hook{firewall.HookInput}
		in = d.selectStageInterfaces(p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) != 3 || routes[0].Err != nil || routes[0].Index != srvIdx || routes[1].Err != nil || routes[1].Index != srvIdx {
		t.Errorf("serviceRoutes = %+v, want 198.18.100.0/24 and 198.18.100.80/32 through srv0 (index %d)", routes, srvIdx)
	}
	if len(routes) == 3 && routes[2].Err == nil {
		t.Errorf("serviceRoutes(198.19.200.0/24) = index %d, want no route (the namespace has no default route)", routes[2].Index)
	}
	if d := cmp.Diff([]string{"cli0", "atk0"}, fwd); d != "" {
		t.Errorf("selectStageInterfaces with --hook forward (-want +got):\n%s\nlog:\n%s", d, logs.String())
	}
	if d := cmp.Diff([]string{"cli0", "atk0", "srv0"}, in); d != "" {
		t.Errorf("selectStageInterfaces with --hook input (-want +got):\n%s\nlog:\n%s", d, logs.String())
	}
	for _, want := range []string{
		"interface=srv0 reason=\"faces the servers: the route to 198.18.100.0 (guarded prefix 198.18.100.0/24) goes out through it\"",
		"interface=spare0 reason=down",
		"interface=lo reason=loopback",
		"interfaces=cli0,atk0 hooks=forward",
		"interfaces=cli0,atk0,srv0 hooks=input",
		"prefix=198.19.200.0/24",
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// TestSynStageAutoInterfaces runs the daemon's start-up with --syn-stage
// tc and no --syn-stage-if in the lab's gateway namespace: it selects the
// client-facing veths, attaches the stage there and not to the veth toward
// the servers (the route to the default policy's 198.18.3.0/24 leaves
// through it), and the status lists the chosen interfaces.
func TestSynStageAutoInterfaces(t *testing.T) {
	l := stageLab(t)
	var logs bytes.Buffer
	cfg := testConfig("")
	cfg.Log = testLogger(&logs)
	cfg.SynStage = SynStageConfig{Mode: "tc", Auto: true}
	var d *Daemon
	err := lab.InNetns(l.Gateway, func() error {
		var err error
		if d, err = New(cfg); err != nil {
			return err
		}
		return d.syn.attach()
	})
	if err != nil {
		t.Fatalf("New and attach in %s: %v\nlog:\n%s", l.Gateway, err, logs.String())
	}
	defer d.closeStage()
	st := d.status(d.now())
	if st.SynStage.Mode != "tc" {
		t.Fatalf("status syn_stage = %+v, want tc\nlog:\n%s", st.SynStage, logs.String())
	}
	got := st.SynStage.Interfaces
	for _, want := range []string{lab.IfClient, lab.IfAttacker} {
		if !slices.Contains(got, want) {
			t.Errorf("status syn_stage.interfaces = %q, want %s among them", got, want)
		}
		if ids := tcxLinks(t, l.Gateway, want); len(ids) != 1 {
			t.Errorf("tcx links on %s: %v, want one", want, ids)
		}
	}
	for _, no := range []string{lab.IfServer, "lo"} {
		if slices.Contains(got, no) {
			t.Errorf("status syn_stage.interfaces = %q, want no %s", got, no)
		}
	}
	if ids := tcxLinks(t, l.Gateway, lab.IfServer); len(ids) != 0 {
		t.Errorf("tcx links on %s (faces the servers): %v, want none", lab.IfServer, ids)
	}
	if want := "interface=" + lab.IfServer + " reason=\"faces the servers"; !strings.Contains(logs.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, logs.String())
	}
}
