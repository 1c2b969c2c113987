package firewall

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// Conntrack is the part of the rules that lets the kernel carry the flows
// synwall hands to conntrack (package conntrack creates their entries,
// with the sequence and timestamp offsets, carrying Mark).
//
// With Rules.Conntrack set the rules change in five ways:
//
//   - raw: only the clients' SYNs to guarded services are exempted from
//     conntrack, as kernel SYNPROXY's own setup does. Every other guarded
//     packet is tracked; without an entry it is INVALID and goes on to the
//     queue as before. The entry of a handed-off flow must be the first for
//     its tuple: the kernel adds the seqadj and synproxy extensions only to
//     an entry ctnetlink creates, never to one the packet path made first.
//   - net.netfilter.nf_conntrack_tcp_loose is 0 in the namespace, so that a
//     mid-stream packet (the client's handshake ACK, the server's SYN-ACK,
//     data of a flow still in user space) never creates an entry: it stays
//     INVALID. Installer.Install sets it and records the value it found in
//     the rules themselves (a rule in SYNWALL-RAW-PRE that only returns),
//     so that Remove, or a later synwall after a crash or a graceful
//     restart, puts back the operator's value.
//   - filter: a server's RST of such an entry goes to the queue: the
//     kernel's SYNPROXY hook, seeing the entry in CLOSE, would rewrite its
//     sequence number to the entry's ISN + 1 (out of the client's window
//     once data has flowed); synwall translates it and sends it untracked.
//   - filter: packets of an ESTABLISHED entry that carries synwall's mark
//     RETURN before the queue rules (synwall lets them pass; the rest of
//     the chain decides, as for everything synwall does not guard), and
//     the kernel translates them: nf_confirm adjusts sequence numbers and
//     SACK blocks, the SYNPROXY hooks the timestamps.
//   - filter: a SYNPROXY rule that never matches (mark & 0 == 1). The
//     kernel registers its SYNPROXY hooks in a namespace only while a
//     SYNPROXY target exists there (nf_synproxy_ipv4_init and _ipv6_init,
//     called from the target's checkentry), and those hooks are what
//     adjusts the timestamps of an entry with the synproxy extension
//     (synproxy_tstamp_adjust). Without the rule, handed-off flows that use
//     timestamps would reach the client with the server's TSvals.
type Conntrack struct {
	// Mark of synwall's entries, matched under Mask (0: the whole mark).
	Mark, Mask uint32

	// looseMarker is the value of nf_conntrack_tcp_loose found before
	// synwall set it, written into the rules by Installer.
	looseMarker string
}

func (c *Conntrack) mask() uint32 {
	if c.Mask == 0 {
		return 0xffffffff
	}
	return c.Mask
}

// serverRSTSpec matches a server's RST of a connection synwall handed
// to conntrack: it goes to the queue instead of through the kernel,
// because the kernel's SYNPROXY hook would rewrite its sequence number to
// the entry's ISN + 1 (synwall translates it and injects it untracked).
func (c *Conntrack) serverRSTSpec() string {
	return fmt.Sprintf("-p tcp -m tcp --tcp-flags RST RST -m conntrack --ctstate ESTABLISHED --ctdir REPLY -m connmark --mark 0x%x/0x%x ", c.Mark, c.mask())
}

func (c *Conntrack) nftServerRST() string {
	return fmt.Sprintf("tcp flags & rst == rst ct state established ct direction reply ct mark & 0x%x == 0x%x", c.mask(), c.Mark&c.mask())
}

// establishedSpec matches packets of synwall's established entries.
func (c *Conntrack) establishedSpec() string {
	return fmt.Sprintf("-m conntrack --ctstate ESTABLISHED -m connmark --mark 0x%x/0x%x ", c.Mark, c.mask())
}

func (c *Conntrack) nftEstablished() string {
	return fmt.Sprintf("ct state established ct mark & 0x%x == 0x%x", c.mask(), c.Mark&c.mask())
}

// synproxyWhy is the rule's own explanation, shown by iptables -S.
const synproxyWhy = "never matches (mark & 0 == 1): keeps the SYNPROXY hooks that adjust timestamps of flows handed to conntrack"

// synproxyMSS is what the never-matching rule would announce; it never
// announces anything.
func synproxyMSS(f Family) int {
	if f == IPv6 {
		return 1440
	}
	return 1460
}

// synproxyRule is the never-matching SYNPROXY rule in chain.
func (c *Conntrack) synproxyRule(chain string, f Family) string {
	return fmt.Sprintf("-A %s -p tcp -m mark --mark 0x1/0x0 -m comment --comment %q -m comment --comment %s -j SYNPROXY --sack-perm --timestamp --wscale 7 --mss %d",
		chain, synproxyWhy, Comment, synproxyMSS(f))
}

// looseSysctl is the sysctl the hand-off needs at 0.
const looseSysctl = "net.netfilter.nf_conntrack_tcp_loose"

// looseMarkerPrefix starts the comment of the rule that records the
// operator's value of looseSysctl.
const looseMarkerPrefix = "synwall-sysctl " + looseSysctl + "="

func (c *Conntrack) looseMarkerSpec() string {
	return fmt.Sprintf("-m comment --comment %q ", looseMarkerPrefix+c.looseMarker)
}

// looseFromSave returns the value recorded by a marker rule in
// iptables-save output, or "".
func looseFromSave(text string) string {
	i := strings.Index(text, looseMarkerPrefix)
	if i < 0 {
		return ""
	}
	v := text[i+len(looseMarkerPrefix):]
	if j := strings.IndexAny(v, "\" \n"); j >= 0 {
		v = v[:j]
	}
	if v != "0" && v != "1" {
		return ""
	}
	return v
}

// sysctl reads (value "") or writes a sysctl in the namespace the
// Installer works in: directly under /proc/sys without Wrap, through
// Wrap + sysctl(8) with it.
func (fw *Installer) sysctl(ctx context.Context, key, value string) (string, error) {
	if len(fw.Wrap) == 0 {
		p := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
		if value == "" {
			b, err := os.ReadFile(p)
			if err != nil {
				return "", fmt.Errorf("firewall: sysctl %s: %w", key, err)
			}
			return strings.TrimSpace(string(b)), nil
		}
		if err := os.WriteFile(p, []byte(value), 0); err != nil {
			return "", fmt.Errorf("firewall: sysctl %s=%s: %w", key, value, err)
		}
		return value, nil
	}
	argv := append(slices.Clone(fw.Wrap), "sysctl", "-n", key)
	if value != "" {
		argv = append(slices.Clone(fw.Wrap), "sysctl", "-q", "-w", key+"="+value)
	}
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("firewall: %s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	if value != "" {
		return value, nil
	}
	return strings.TrimSpace(string(out)), nil
}

// ErrLoose: the namespace's conntrack cannot be made strict (no
// nf_conntrack, or the sysctl is read-only).
var ErrLoose = errors.New("firewall: cannot set " + looseSysctl + "=0")

// prepareLoose returns the value of nf_conntrack_tcp_loose to restore
// later: the one an earlier synwall recorded in its rules (iptables-save
// output save), else the current one.
func (fw *Installer) prepareLoose(ctx context.Context, save string) (string, error) {
	if v := looseFromSave(save); v != "" {
		return v, nil
	}
	v, err := fw.sysctl(ctx, looseSysctl, "")
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrLoose, err)
	}
	return v, nil
}
