// Package firewall renders and installs the netfilter rules that steer the
// guarded services' TCP traffic into synwall's NFQUEUE queues. It imports
// nothing of synwall: the daemon turns the policy's services into Rules,
// and the queue package binds the queues the rules name.
//
// # What the rules do
//
// Rules describes the guarded services (prefix and port range), where their
// traffic passes (HookForward: a router in front of the servers, both
// directions in FORWARD; HookInput: the protected host itself, clients in
// INPUT and the server's answers in OUTPUT) and the queue numbers. Per
// family it produces two tables:
//
//   - raw: guarded traffic is exempted from conntrack (CT --notrack; synwall
//     keeps its own flow table, and the translated sequence numbers would
//     look out of window to conntrack), and packets carrying DefaultMark
//     (0x5359, "SY": what synwall injects and its discover probes) are
//     never tracked and RETURN before any other rule.
//   - filter: marked packets RETURN, then guarded traffic goes to NFQUEUE,
//     and so do ICMP errors toward a guarded prefix that can quote a
//     proxied segment (ICMP destination unreachable, ICMPv6 destination
//     unreachable and packet too big): a router beyond the gateway quotes
//     the server's segment translated, and the engine moves the quoted
//     sequence number back, or the server discards the error and path MTU
//     discovery breaks. (The gateway's own errors quote the packet before
//     the FORWARD hook, untranslated, and need nothing.)
//     With one queue everything uses --queue-num; with Rules.SYNQueues set,
//     the clients' SYNs (FIN,SYN,RST,ACK = SYN) go to the first SYNQueues
//     queues and everything else to the others, each group spread with
//     --queue-balance (or --queue-cpu-fanout), so a SYN flood that fills
//     its queues never delays the packets of established flows (with one
//     shared queue a full-rate flood cut an iperf3 stream through synwall
//     from 5.2 to 0.8 Gbit/s on the project's lab), and a flood on the
//     NFQUEUE path alone is spread over several workers (the policy's
//     default: four queues, two for SYNs). --queue-balance hashes
//     addresses only, so one source always lands on one queue; a spoofed
//     flood spreads. With HookInput, loopback traffic
//     RETURNs: the host talking to itself needs no guard, and a discover
//     probe of the host's own service must see the real SYN-ACK.
//
// Rules.FailOpen adds --queue-bypass, which covers only "no program bound
// to the queue" (the daemon died or is restarting without socket
// handoff): guarded traffic then passes unprotected instead of being
// dropped. A full queue is the queue's own fail mode (see package queue).
//
// # Ownership and installation
//
// Every rule carries the comment "synwall" (Comment) and lives in
// synwall's own chains, SYNWALL-RAW-PRE and SYNWALL-RAW-OUT in raw,
// SYNWALL-FWD, SYNWALL-IN and SYNWALL-OUT in filter, each reached by a jump
// inserted at the top of its built-in chain. Installer.Install reads
// iptables-save, and feeds iptables-restore --noflush (and
// ip6tables-restore) one transaction per family that deletes whatever an
// earlier synwall left (chains and tagged jumps) and adds the new rules:
// installing twice never duplicates a rule, a reload that changes the
// services never leaves a moment without rules, and other programs' rules
// survive. Installer.Remove deletes exactly what carries the tag.
//
// NFTables renders the same rules as an nft script replacing the table
// "inet synwall", for operators who manage nftables themselves (synwall
// rules prints both). synwall installs with iptables because the nft queue
// expression is not built into every kernel; the iptables commands work
// through the nf_tables compat layer.
package firewall
