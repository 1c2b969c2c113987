package firewall

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestFirewallInstallConntrack installs the hand-off rules in a namespace
// of the test's own and follows nf_conntrack_tcp_loose through installs,
// a reinstall (as after a graceful restart or a crash), and removal.
func TestFirewallInstallConntrack(t *testing.T) {
	ns := fmt.Sprintf("swfwct%d", os.Getpid())
	if err := run(t, "ip", "netns", "add", ns); err != nil {
		skipIfNoPrivilege(t, err)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	wrap := []string{"ip", "netns", "exec", ns}
	ctx := context.Background()
	loose := func() string {
		t.Helper()
		out, err := exec.Command("ip", "netns", "exec", ns, "sysctl", "-n", looseSysctl).Output()
		if err != nil {
			t.Fatalf("sysctl %s: %v", looseSysctl, err)
		}
		return strings.TrimSpace(string(out))
	}
	setLoose := func(v string) {
		t.Helper()
		if err := run(t, append(wrap, "sysctl", "-q", "-w", looseSysctl+"="+v)...); err != nil {
			t.Fatal(err)
		}
	}
	save := func(tool string) string {
		t.Helper()
		out, err := exec.Command("ip", "netns", "exec", ns, tool).Output()
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		return string(out)
	}

	for _, orig := range []string{"1", "0"} {
		t.Run("operator value "+orig, func(t *testing.T) {
			setLoose(orig)
			r := labRules()
			r.Hooks = []Hook{HookForward, HookInput}
			r.Conntrack = &Conntrack{Mark: 0x53570000, Mask: 0xffff0000}
			fw := &Installer{Rules: r, Wrap: wrap}
			if err := fw.Install(ctx); err != nil {
				skipIfNoPrivilege(t, err)
			}
			if got := loose(); got != "0" {
				t.Errorf("after Install: %s = %s, want 0", looseSysctl, got)
			}
			for _, tool := range []string{"iptables-save", "ip6tables-save"} {
				text := save(tool)
				if got := looseFromSave(text); got != orig {
					t.Errorf("%s: recorded %s = %q, want %q", tool, looseSysctl, got, orig)
				}
				if got := lines(text, "-j SYNPROXY"); len(got) != 1 {
					t.Errorf("%s: SYNPROXY rules %q, want 1", tool, got)
				}
				if got := lines(text, "--ctstate ESTABLISHED", "connmark", "RETURN"); len(got) != 3 {
					t.Errorf("%s: %d established rules, want 3", tool, len(got))
				}
			}
			// A second Install, with the sysctl already 0, keeps the
			// operator's value (a graceful restart, or a crash and a new
			// run).
			if err := fw.Install(ctx); err != nil {
				t.Fatal(err)
			}
			if got := looseFromSave(save("iptables-save")); got != orig {
				t.Errorf("after a second Install: recorded %q, want %q", got, orig)
			}
			if err := fw.Remove(ctx); err != nil {
				t.Fatal(err)
			}
			if got := loose(); got != orig {
				t.Errorf("after Remove: %s = %s, want %s", looseSysctl, got, orig)
			}
			if got := lines(save("iptables-save"), "synwall"); len(got) != 0 {
				t.Errorf("rules left after Remove: %q", got)
			}
		})
	}

	// Switching the hand-off off by reinstalling without it puts the
	// operator's value back too.
	setLoose("1")
	r := labRules()
	r.Conntrack = &Conntrack{Mark: 0x53570000}
	fw := &Installer{Rules: r, Wrap: wrap}
	if err := fw.Install(ctx); err != nil {
		t.Fatal(err)
	}
	fw.Rules.Conntrack = nil
	if err := fw.Install(ctx); err != nil {
		t.Fatal(err)
	}
	if got := loose(); got != "1" {
		t.Errorf("after reinstalling without conntrack: %s = %s, want 1", looseSysctl, got)
	}
	if got := looseFromSave(save("iptables-save")); got != "" {
		t.Errorf("marker left after reinstalling without conntrack: %q", got)
	}
	if err := fw.Remove(ctx); err != nil {
		t.Fatal(err)
	}
}
