package firewall

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
)

// Installer installs and removes Rules with iptables-restore and
// ip6tables-restore.
type Installer struct {
	Rules Rules
	// Wrap prefixes every command, e.g. {"ip", "netns", "exec", "lab"}.
	Wrap []string
}

// ErrNoIPTables is returned when iptables-save or iptables-restore is not
// installed.
var ErrNoIPTables = errors.New("firewall: iptables-restore/iptables-save not found (install the iptables package)")

func tools(f Family) (save, restore string) {
	if f == IPv6 {
		return "ip6tables-save", "ip6tables-restore"
	}
	return "iptables-save", "iptables-restore"
}

func (fw *Installer) command(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	if _, err := exec.LookPath(name); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoIPTables, err)
	}
	argv := append(slices.Clone(fw.Wrap), name)
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("firewall: %s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func (fw *Installer) stale(ctx context.Context, f Family) (map[string]*installed, error) {
	save, _ := tools(f)
	out, err := fw.command(ctx, nil, save)
	if err != nil {
		return nil, err
	}
	return parseSave(out), nil
}

// Install installs the rules of both families, each in one iptables-restore
// transaction that also removes whatever an earlier synwall left behind, so
// installing twice never duplicates a rule. A family without services only
// has its stale rules removed.
func (fw *Installer) Install(ctx context.Context) error {
	if err := fw.Rules.Validate(); err != nil {
		return err
	}
	for _, f := range []Family{IPv4, IPv6} {
		if err := fw.apply(ctx, f, fw.Rules); err != nil {
			return err
		}
	}
	return nil
}

// Remove deletes every rule and chain tagged synwall, in both families. It
// does nothing when there are none.
func (fw *Installer) Remove(ctx context.Context) error {
	var errs []error
	for _, f := range []Family{IPv4, IPv6} {
		errs = append(errs, fw.apply(ctx, f, Rules{}))
	}
	return errors.Join(errs...)
}

// apply replaces synwall's rules of family f by r's (none for a zero r).
func (fw *Installer) apply(ctx context.Context, f Family, r Rules) error {
	stale, err := fw.stale(ctx, f)
	if err != nil {
		return err
	}
	text := r.restoreText(f, stale)
	if !strings.Contains(text, "COMMIT") {
		return nil
	}
	_, restore := tools(f)
	_, err = fw.command(ctx, []byte(text), restore, "--noflush")
	return err
}
