package firewall

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Hook says where the guarded traffic passes the gateway. The zero value is
// invalid.
type Hook uint8

const (
	HookInvalid Hook = iota
	// HookForward: synwall runs on a router in front of the servers; both
	// directions pass FORWARD.
	HookForward
	// HookInput: synwall protects the host it runs on; client traffic
	// passes INPUT and the server's answers OUTPUT.
	HookInput
)

// String returns the command-line spelling of h.
func (h Hook) String() string {
	switch h {
	case HookForward:
		return "forward"
	case HookInput:
		return "input"
	}
	return "invalid"
}

// Family is an IP version. The zero value is invalid.
type Family uint8

const (
	FamilyInvalid Family = iota
	IPv4
	IPv6
)

// String returns "ipv4" or "ipv6".
func (f Family) String() string {
	switch f {
	case IPv4:
		return "ipv4"
	case IPv6:
		return "ipv6"
	}
	return "invalid"
}

// PortRange is an inclusive range of TCP ports, 1 <= Lo <= Hi.
type PortRange struct{ Lo, Hi uint16 }

// Service is one guarded service as the firewall sees it: the server
// addresses and their TCP ports.
type Service struct {
	Prefix netip.Prefix
	Ports  PortRange
}

// Rules describes the firewall rules that steer guarded traffic into the
// queues.
type Rules struct {
	Services []Service
	Hooks    []Hook // at least one
	// QueueFirst..QueueLast are the queue numbers: one queue uses
	// --queue-num, several --queue-balance (which hashes addresses only, so
	// one source always lands on one queue).
	QueueFirst, QueueLast uint16
	// SYNQueues, when not zero, is how many queues from QueueFirst take
	// the clients' SYNs (balanced among themselves); the rest take
	// everything else. Zero: every packet shares every queue. It must
	// leave at least one queue for the rest.
	SYNQueues uint16
	// CPUFanout spreads packets over the queues by CPU instead of by hash
	// (--queue-cpu-fanout; needs several queues).
	CPUFanout bool
	// FailOpen adds --queue-bypass: with no program bound to the queue the
	// kernel accepts guarded traffic instead of dropping it. It does not
	// cover a full queue; that is the queue's Config.FailOpen.
	FailOpen bool
	// Mark identifies injected packets; DefaultMark when zero.
	Mark uint32
}

// DefaultMark is the firewall mark ("SY") of the packets synwall sends
// itself: the injector's SYN-ACKs and handshakes, and the discover probes.
// The rules let marked packets pass before any queue rule and exempt them
// from conntrack, so synwall never sees its own packets again.
const DefaultMark = 0x5359

// Comment tags every rule synwall installs; Remove deletes exactly what
// carries it.
const Comment = "synwall"

// Chain names. Built-in chains jump to them from their first rule.
const (
	ChainRawPre  = "SYNWALL-RAW-PRE" // raw PREROUTING
	ChainRawOut  = "SYNWALL-RAW-OUT" // raw OUTPUT
	ChainForward = "SYNWALL-FWD"     // filter FORWARD
	ChainInput   = "SYNWALL-IN"      // filter INPUT
	ChainOutput  = "SYNWALL-OUT"     // filter OUTPUT
	chainPrefix  = "SYNWALL-"
)

// Validate reports the first problem of r.
func (r Rules) Validate() error {
	if len(r.Hooks) == 0 {
		return errors.New("firewall: no hook (want forward and/or input)")
	}
	for _, h := range r.Hooks {
		if h != HookForward && h != HookInput {
			return fmt.Errorf("firewall: invalid hook %d", h)
		}
	}
	if len(r.Services) == 0 {
		return errors.New("firewall: no service to guard")
	}
	for i, s := range r.Services {
		if !s.Prefix.IsValid() {
			return fmt.Errorf("firewall: service %d: invalid prefix", i)
		}
		if s.Prefix.Addr().Is4In6() {
			return fmt.Errorf("firewall: service %d: IPv4-mapped prefix %s; write it as IPv4", i, s.Prefix)
		}
		if s.Ports.Lo == 0 || s.Ports.Lo > s.Ports.Hi {
			return fmt.Errorf("firewall: service %d (%s): port range %d-%d, want 1 <= lo <= hi <= 65535", i, s.Prefix, s.Ports.Lo, s.Ports.Hi)
		}
	}
	if r.QueueLast < r.QueueFirst {
		return fmt.Errorf("firewall: queue range %d:%d is empty", r.QueueFirst, r.QueueLast)
	}
	if r.CPUFanout && r.QueueLast == r.QueueFirst {
		return errors.New("firewall: CPU fanout needs more than one queue")
	}
	if n := int(r.QueueLast) - int(r.QueueFirst) + 1; int(r.SYNQueues) >= n {
		return fmt.Errorf("firewall: %d SYN queues of %d (%d:%d) leave none for the rest", r.SYNQueues, n, r.QueueFirst, r.QueueLast)
	}
	return nil
}

func (r Rules) hook(h Hook) bool { return slices.Contains(r.Hooks, h) }

func (r Rules) mark() uint32 {
	if r.Mark == 0 {
		return DefaultMark
	}
	return r.Mark
}

func (r Rules) services(f Family) []Service {
	var out []Service
	for _, s := range r.Services {
		if s.Prefix.Addr().Is4() == (f == IPv4) {
			out = append(out, s)
		}
	}
	return out
}

func (p PortRange) iptables() string {
	if p.Lo == p.Hi {
		return fmt.Sprint(p.Lo)
	}
	return fmt.Sprintf("%d:%d", p.Lo, p.Hi)
}

func (p PortRange) nft() string {
	if p.Lo == p.Hi {
		return fmt.Sprint(p.Lo)
	}
	return fmt.Sprintf("%d-%d", p.Lo, p.Hi)
}

// splitSYN: the first SYNQueues queues take the clients' SYNs and the
// others everything else, so that a SYN flood that fills its queues never
// delays the packets of flows that completed the handshake (with one
// shared queue a full-rate flood cut an iperf3 stream through synwall from
// 5.2 to 0.8 Gbit/s here). Several SYN queues spread a flood over as many
// workers: on NFQUEUE alone one worker would carry all of it.
func (r Rules) splitSYN() bool { return r.SYNQueues > 0 }

// queueTarget is the NFQUEUE target of everything but the clients' SYNs.
func (r Rules) queueTarget() string {
	return r.target(r.QueueFirst+r.SYNQueues, r.QueueLast)
}

// synTarget is the NFQUEUE target of the clients' SYNs when they have
// queues of their own.
func (r Rules) synTarget() string {
	return r.target(r.QueueFirst, r.QueueFirst+r.SYNQueues-1)
}

// target is an NFQUEUE target over queues first..last.
func (r Rules) target(first, last uint16) string {
	var b strings.Builder
	b.WriteString("NFQUEUE")
	if first == last {
		fmt.Fprintf(&b, " --queue-num %d", first)
	} else {
		fmt.Fprintf(&b, " --queue-balance %d:%d", first, last)
		if r.CPUFanout {
			b.WriteString(" --queue-cpu-fanout")
		}
	}
	if r.FailOpen {
		b.WriteString(" --queue-bypass")
	}
	return b.String()
}

// synMatch matches a SYN without ACK, RST or FIN (iptables-save's spelling
// of --syn).
const synMatch = "--tcp-flags FIN,SYN,RST,ACK SYN "

// table is one iptables table's part of the rules.
type table struct {
	name   string
	chains []string // synwall chains, in declaration order
	jumps  []string // "BUILTIN CHAIN": jumps inserted at the top of BUILTIN
	rules  []string // "-A ..." lines
}

// tables returns the rules of family f, table by table.
func (r Rules) tables(f Family) []table {
	svcs := r.services(f)
	tag := "-m comment --comment " + Comment
	markMatch := fmt.Sprintf("-m mark --mark 0x%x", r.mark())
	fwd, in := r.hook(HookForward), r.hook(HookInput)

	raw := table{name: "raw", chains: []string{ChainRawPre, ChainRawOut},
		jumps: []string{"PREROUTING " + ChainRawPre, "OUTPUT " + ChainRawOut}}
	add := func(t *table, chain, spec, target string) {
		t.rules = append(t.rules, fmt.Sprintf("-A %s %s%s -j %s", chain, spec, tag, target))
	}
	// Injected packets: never tracked, never queued.
	add(&raw, ChainRawOut, markMatch+" ", "CT --notrack")
	add(&raw, ChainRawOut, markMatch+" ", "RETURN")
	for _, s := range svcs {
		add(&raw, ChainRawPre, fmt.Sprintf("-d %s -p tcp -m tcp --dport %s ", s.Prefix, s.Ports.iptables()), "CT --notrack")
		if fwd {
			add(&raw, ChainRawPre, fmt.Sprintf("-s %s -p tcp -m tcp --sport %s ", s.Prefix, s.Ports.iptables()), "CT --notrack")
		}
		if in {
			add(&raw, ChainRawOut, fmt.Sprintf("-s %s -p tcp -m tcp --sport %s ", s.Prefix, s.Ports.iptables()), "CT --notrack")
		}
	}

	filter := table{name: "filter"}
	q := r.queueTarget()
	if fwd {
		filter.chains = append(filter.chains, ChainForward)
		filter.jumps = append(filter.jumps, "FORWARD "+ChainForward)
		add(&filter, ChainForward, markMatch+" ", "RETURN")
		for _, s := range svcs {
			if r.splitSYN() {
				add(&filter, ChainForward, fmt.Sprintf("-d %s -p tcp -m tcp --dport %s %s", s.Prefix, s.Ports.iptables(), synMatch), r.synTarget())
			}
			add(&filter, ChainForward, fmt.Sprintf("-d %s -p tcp -m tcp --dport %s ", s.Prefix, s.Ports.iptables()), q)
			add(&filter, ChainForward, fmt.Sprintf("-s %s -p tcp -m tcp --sport %s ", s.Prefix, s.Ports.iptables()), q)
			for _, m := range icmpErrors(f) {
				add(&filter, ChainForward, fmt.Sprintf("-d %s %s ", s.Prefix, m), q)
			}
		}
	}
	if in {
		filter.chains = append(filter.chains, ChainInput, ChainOutput)
		filter.jumps = append(filter.jumps, "INPUT "+ChainInput, "OUTPUT "+ChainOutput)
		add(&filter, ChainInput, markMatch+" ", "RETURN")
		add(&filter, ChainOutput, markMatch+" ", "RETURN")
		// The host talking to itself needs no SYN guard, and the backend
		// probe of advertise.discover (a connection to the host's own
		// service) must see the real server's SYN-ACK.
		add(&filter, ChainInput, "-i lo ", "RETURN")
		add(&filter, ChainOutput, "-o lo ", "RETURN")
		for _, s := range svcs {
			if r.splitSYN() {
				add(&filter, ChainInput, fmt.Sprintf("-d %s -p tcp -m tcp --dport %s %s", s.Prefix, s.Ports.iptables(), synMatch), r.synTarget())
			}
			add(&filter, ChainInput, fmt.Sprintf("-d %s -p tcp -m tcp --dport %s ", s.Prefix, s.Ports.iptables()), q)
			add(&filter, ChainOutput, fmt.Sprintf("-s %s -p tcp -m tcp --sport %s ", s.Prefix, s.Ports.iptables()), q)
			for _, m := range icmpErrors(f) {
				add(&filter, ChainInput, fmt.Sprintf("-d %s %s ", s.Prefix, m), q)
			}
		}
	}
	return []table{raw, filter}
}

// icmpErrors are the matches of the ICMP errors toward a guarded server
// that the engine must see: they quote the server's segment as it left the
// gateway, translated, and the engine moves the quoted sequence number back
// so that path MTU discovery works (fragmentation needed is a destination
// unreachable, RFC 1191; packet too big, RFC 8201).
func icmpErrors(f Family) []string {
	if f == IPv6 {
		return []string{"-p ipv6-icmp -m icmp6 --icmpv6-type 1", "-p ipv6-icmp -m icmp6 --icmpv6-type 2"}
	}
	return []string{"-p icmp -m icmp --icmp-type 3"}
}

// IPTables returns the iptables-restore (f IPv4) or ip6tables-restore (f
// IPv6) input that installs the rules, for use with --noflush on a system
// without synwall rules. Installer.Install also removes an earlier
// installation in the same transaction.
func (r Rules) IPTables(f Family) (string, error) {
	if err := r.Validate(); err != nil {
		return "", err
	}
	if f != IPv4 && f != IPv6 {
		return "", fmt.Errorf("firewall: invalid family %d", f)
	}
	return r.restoreText(f, nil), nil
}

// restoreText renders the rules of f, first removing what stale describes.
// Families without services get no rules, only the removal.
func (r Rules) restoreText(f Family, stale map[string]*installed) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# synwall %s rules: iptables-restore --noflush\n", f)
	have := len(r.services(f)) > 0
	for _, t := range r.tables(f) {
		old := stale[t.name]
		if !have {
			t = table{name: t.name}
		}
		if len(t.chains) == 0 && (old == nil || old.empty()) {
			continue
		}
		fmt.Fprintf(&b, "*%s\n", t.name)
		// Declaring a user chain under --noflush creates it, or flushes it
		// if it exists.
		for _, c := range t.chains {
			fmt.Fprintf(&b, ":%s - [0:0]\n", c)
		}
		if old != nil {
			for _, c := range old.chains {
				if !slices.Contains(t.chains, c) {
					fmt.Fprintf(&b, ":%s - [0:0]\n", c)
				}
			}
			for _, rule := range old.builtin {
				fmt.Fprintf(&b, "-D %s\n", rule)
			}
			for _, c := range old.chains {
				if !slices.Contains(t.chains, c) {
					fmt.Fprintf(&b, "-X %s\n", c)
				}
			}
		}
		for _, j := range t.jumps {
			builtin, chain, _ := strings.Cut(j, " ")
			fmt.Fprintf(&b, "-I %s 1 -m comment --comment %s -j %s\n", builtin, Comment, chain)
		}
		for _, rule := range t.rules {
			b.WriteString(rule)
			b.WriteByte('\n')
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}

// installed is what iptables-save shows of synwall in one table.
type installed struct {
	chains  []string // SYNWALL-* chains
	builtin []string // rules tagged synwall outside them, without "-A "
}

func (i *installed) empty() bool { return len(i.chains) == 0 && len(i.builtin) == 0 }

// parseSave extracts synwall's chains and tagged rules from iptables-save
// output.
func parseSave(text []byte) map[string]*installed {
	out := map[string]*installed{}
	var cur *installed
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "*"):
			cur = &installed{}
			out[line[1:]] = cur
		case cur == nil:
		case strings.HasPrefix(line, ":"+chainPrefix):
			name, _, _ := strings.Cut(line[1:], " ")
			cur.chains = append(cur.chains, name)
		case strings.HasPrefix(line, "-A "):
			f := strings.Fields(line)
			if len(f) < 2 || strings.HasPrefix(f[1], chainPrefix) || !taggedSynwall(f) {
				continue
			}
			cur.builtin = append(cur.builtin, line[len("-A "):])
		}
	}
	return out
}

func taggedSynwall(fields []string) bool {
	for i := 0; i+1 < len(fields); i++ {
		if fields[i] == "--comment" && strings.Trim(fields[i+1], `"'`) == Comment {
			return true
		}
	}
	return false
}

// NFTables returns the rules as an nft -f script that replaces the table
// "inet synwall" atomically. The nft queue expression needs nft_queue in the
// kernel.
func (r Rules) NFTables() (string, error) {
	if err := r.Validate(); err != nil {
		return "", err
	}
	mark := fmt.Sprintf("meta mark 0x%x", r.mark())
	target := func(first, last uint16) string {
		var flags []string
		if r.FailOpen {
			flags = append(flags, "bypass")
		}
		if r.CPUFanout && first != last {
			flags = append(flags, "fanout")
		}
		q := "queue"
		if len(flags) > 0 {
			q += " flags " + strings.Join(flags, ",")
		}
		if first == last {
			return q + fmt.Sprintf(" to %d", first)
		}
		return q + fmt.Sprintf(" to %d-%d", first, last)
	}
	q, synq := target(r.QueueFirst+r.SYNQueues, r.QueueLast), ""
	if r.splitSYN() {
		synq = target(r.QueueFirst, r.QueueFirst+r.SYNQueues-1)
	}
	match := func(s Service, dir string) string {
		ip := "ip"
		if s.Prefix.Addr().Is6() {
			ip = "ip6"
		}
		addr, port := "daddr", "dport"
		if dir == "src" {
			addr, port = "saddr", "sport"
		}
		return fmt.Sprintf("%s %s %s tcp %s %s", ip, addr, s.Prefix, port, s.Ports.nft())
	}
	icmp := func(s Service) string {
		if s.Prefix.Addr().Is6() {
			return fmt.Sprintf("ip6 daddr %s icmpv6 type { destination-unreachable, packet-too-big }", s.Prefix)
		}
		return fmt.Sprintf("ip daddr %s icmp type destination-unreachable", s.Prefix)
	}
	fwd, in := r.hook(HookForward), r.hook(HookInput)
	var b strings.Builder
	c := fmt.Sprintf(" comment %q", Comment)
	synRule := func(s Service) {
		if synq != "" {
			fmt.Fprintf(&b, "\t\t%s tcp flags & (fin|syn|rst|ack) == syn %s%s\n", match(s, "dst"), synq, c)
		}
	}
	b.WriteString("# synwall rules: nft -f FILE (replaces the table inet synwall)\n")
	b.WriteString("table inet synwall\ndelete table inet synwall\n")
	b.WriteString("table inet synwall {\n")
	chain := func(name, hook, prio string, body func()) {
		fmt.Fprintf(&b, "\tchain %s {\n\t\ttype filter hook %s priority %s; policy accept;\n", name, hook, prio)
		body()
		b.WriteString("\t}\n")
	}
	chain("raw-pre", "prerouting", "raw", func() {
		for _, s := range r.Services {
			fmt.Fprintf(&b, "\t\t%s notrack%s\n", match(s, "dst"), c)
			if fwd {
				fmt.Fprintf(&b, "\t\t%s notrack%s\n", match(s, "src"), c)
			}
		}
	})
	chain("raw-out", "output", "raw", func() {
		fmt.Fprintf(&b, "\t\t%s notrack%s\n\t\t%s return%s\n", mark, c, mark, c)
		if in {
			for _, s := range r.Services {
				fmt.Fprintf(&b, "\t\t%s notrack%s\n", match(s, "src"), c)
			}
		}
	})
	if fwd {
		chain("forward", "forward", "filter - 10", func() {
			fmt.Fprintf(&b, "\t\t%s return%s\n", mark, c)
			for _, s := range r.Services {
				synRule(s)
				fmt.Fprintf(&b, "\t\t%s %s%s\n\t\t%s %s%s\n", match(s, "dst"), q, c, match(s, "src"), q, c)
				fmt.Fprintf(&b, "\t\t%s %s%s\n", icmp(s), q, c)
			}
		})
	}
	if in {
		chain("input", "input", "filter - 10", func() {
			fmt.Fprintf(&b, "\t\t%s return%s\n\t\tiifname \"lo\" return%s\n", mark, c, c)
			for _, s := range r.Services {
				synRule(s)
				fmt.Fprintf(&b, "\t\t%s %s%s\n", match(s, "dst"), q, c)
				fmt.Fprintf(&b, "\t\t%s %s%s\n", icmp(s), q, c)
			}
		})
		chain("output", "output", "filter - 10", func() {
			fmt.Fprintf(&b, "\t\t%s return%s\n\t\toifname \"lo\" return%s\n", mark, c, c)
			for _, s := range r.Services {
				fmt.Fprintf(&b, "\t\t%s %s%s\n", match(s, "src"), q, c)
			}
		})
	}
	b.WriteString("}\n")
	return b.String(), nil
}
