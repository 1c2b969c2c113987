package firewall

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestFirewallInstallRemove(t *testing.T) {
	ns := fmt.Sprintf("swfw%d", os.Getpid())
	if err := run(t, "ip", "netns", "add", ns); err != nil {
		skipIfNoPrivilege(t, err)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	wrap := []string{"ip", "netns", "exec", ns}
	ctx := context.Background()

	// A rule of someone else's that must survive.
	if err := run(t, append(wrap, "iptables", "-A", "INPUT", "-p", "udp", "--dport", "53", "-j", "ACCEPT")...); err != nil {
		t.Fatal(err)
	}
	save := func(tool string) string {
		t.Helper()
		out, err := exec.Command("ip", "netns", "exec", ns, tool).Output()
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		return string(out)
	}
	tagged := func(text string) []string { return lines(text, "--comment synwall") }

	r := labRules()
	r.Hooks = []Hook{HookForward, HookInput}
	fw := &Installer{Rules: r, Wrap: wrap}
	if err := fw.Install(ctx); err != nil {
		skipIfNoPrivilege(t, err)
	}
	first4, first6 := tagged(save("iptables-save")), tagged(save("ip6tables-save"))
	want4, _ := r.IPTables(IPv4)
	want6, _ := r.IPTables(IPv6)
	if n := len(lines(want4, "--comment synwall")); len(first4) != n {
		t.Errorf("after Install: %d IPv4 rules tagged synwall, want %d:\n%s", len(first4), n, strings.Join(first4, "\n"))
	}
	if n := len(lines(want6, "--comment synwall")); len(first6) != n {
		t.Errorf("after Install: %d IPv6 rules tagged synwall, want %d", len(first6), n)
	}
	// Jumps sit at the top of their built-in chains.
	for _, chain := range []string{"INPUT", "OUTPUT", "FORWARD"} {
		rules := lines(save("iptables-save"), "-A "+chain+" ")
		if len(rules) == 0 || !strings.Contains(rules[0], "-j SYNWALL-") {
			t.Errorf("first rule of %s = %q, want the synwall jump", chain, rules)
		}
	}

	// Installing again (say, after a crash) replaces, never duplicates.
	if err := fw.Install(ctx); err != nil {
		t.Fatal(err)
	}
	if again := tagged(save("iptables-save")); strings.Join(again, "\n") != strings.Join(first4, "\n") {
		t.Errorf("second Install changed the rules:\n%s\nwant\n%s", strings.Join(again, "\n"), strings.Join(first4, "\n"))
	}
	// Reinstalling with fewer hooks removes the chains no longer used.
	fw.Rules.Hooks = []Hook{HookInput}
	if err := fw.Install(ctx); err != nil {
		t.Fatal(err)
	}
	if got := lines(save("iptables-save"), "SYNWALL-FWD"); len(got) != 0 {
		t.Errorf("forward rules left after reinstalling for input only: %q", got)
	}

	if err := fw.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"iptables-save", "ip6tables-save"} {
		text := save(tool)
		if got := lines(text, "synwall"); len(got) != 0 {
			t.Errorf("%s after Remove still shows %q", tool, got)
		}
		if got := lines(text, "SYNWALL"); len(got) != 0 {
			t.Errorf("%s after Remove still shows %q", tool, got)
		}
	}
	if got := lines(save("iptables-save"), "--dport 53 -j ACCEPT"); len(got) != 1 {
		t.Errorf("the foreign rule did not survive: %q", got)
	}
	if err := fw.Remove(ctx); err != nil {
		t.Errorf("second Remove() = %v, want nil (idempotent)", err)
	}
}
