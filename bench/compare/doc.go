// Command compare runs the same bounded SYN-flood workload against a drop
// baseline and five defenses in turn, in one namespace lab (deploy/lab), and
// reports them side by side:
//
//   - drop (baseline): the gateway drops the spoofed SYNs (raw PREROUTING);
//     the machine CPU of the other phases is reported above it, per SYN-ACK;
//
//   - none: the server's kernel without SYN cookies and with a small SYN
//     backlog and listen queue (lab.WeakServer);
//
//   - syncookies: the same server with net.ipv4.tcp_syncookies=1;
//
//   - SYNPROXY: the weak server behind netfilter's SYNPROXY target on the
//     gateway, configured as its documentation says (raw PREROUTING
//     `CT --notrack` for the server's SYNs, FORWARD `SYNPROXY` for INVALID
//     and UNTRACKED packets, then `DROP` for INVALID, and
//     nf_conntrack_tcp_loose=0);
//
//   - synwall: the weak server behind `synwall run` on its embedded default
//     policy;
//
//   - synwall + SYN stage: the same with the BPF SYN stage (--syn-stage tc)
//     on the gateway's client- and attacker-facing interfaces, which
//     answers the SYNs in the kernel.
//
//     cd bench && go run ./compare [-short] [-rate 100000] [-out COMPARE.md]
//
// The workload of every defense: one `hping3 -S --flood` and the
// bench/synflood generator (random sources in 198.19.0.0/16, -rate pps)
// from the attacker namespace against the server's HTTP port for 10 s (3 s
// with -short), while the client makes short HTTP connections spread over
// the flood. Measured per defense: SYN-ACKs sent per second as the
// defense's own counter tells (synwall's events.syn_answered,
// /proc/net/stat/synproxy syn_received, TcpExt SyncookiesSent) and as the
// attacker namespace receives them (an iptables counter), handshakes
// completed, legitimate success rate and connect latency, the machine's CPU
// (/proc/stat; the gateway namespace has no CPU of its own), synwall's CPU
// time and resident memory, and drops.
//
// It prints a markdown table and writes it, with the machine and the
// command, to -out. Everything runs inside the lab's namespaces with
// addresses from 198.18.0.0/15, every flood is bounded in time and count,
// and the lab (with the SYNPROXY rules) is removed on exit, error or
// Ctrl-C. It needs root, iproute2, iptables and hping3.
package main
