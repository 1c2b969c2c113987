// Package queue is synwall's packet path through the kernel: it takes
// guarded TCP packets from NFQUEUE, hands each to a Processor (the engine's
// gateway.Worker), tells the kernel the verdict, and sends the packets the
// engine asks for through raw sockets. It decides nothing itself. The
// firewall rules that steer traffic into the queues are package firewall's;
// the backend probes of advertise.discover are package probe's.
//
// # Backends
//
// Two receive backends implement Queue. BackendRaw (the default) is a
// hand-written nfnetlink_queue loop on an AF_NETLINK/NETLINK_NETFILTER
// socket: up to 32 messages per recvmmsg call into reused 128 KiB slots,
// messages parsed in place and handled in arrival order, verdicts written
// into a reused send buffer and sent with one write per drain, no
// allocation per packet. BackendNFQ uses github.com/florianl/go-nfqueue and
// is kept as the reference implementation; it allocates per packet and is
// slower.
//
// Each queue number in Config.Queues gets its own worker goroutine and its
// own Processor (from the factory given to Open). The generated rules
// (firewall.Rules) can send the clients' SYNs to queues of their own and
// everything else to the others, so a SYN flood that fills its queues does
// not drop the packets of established flows. Verdicts are issued in the
// order the packets arrived. Runs of plain ACCEPT (or of DROP) verdicts are
// folded into one NFQNL_MSG_VERDICT_BATCH message, which applies to every
// packet of the queue with an id up to the one named; a verdict that carries
// an altered packet is always sent on its own. Pending verdicts and injected
// packets are flushed when a receive drain finds the socket empty, when 64
// packets are pending, and at the latest after Config.FlushInterval.
//
// An altered packet replaces the queued one as is, and the kernel then
// treats its TCP checksum as final (measured on kernel 6.18: a payload
// rewritten under NFQA_SKB_CSUMNOTREADY with only the pseudo-header sum left
// in the checksum field was never delivered; with the full checksum it was).
// A Processor must therefore set a complete checksum in Result.Packet even
// when gateway.Meta.CsumNotReady is set for the original.
//
// # Fail modes
//
// synwall is fail-closed by default. The kernel's NFQUEUE target and the
// queue configuration decide what happens to traffic synwall cannot take:
//
//   - Fail-closed (default, FailOpen false). The queue is bound without
//     NFQA_CFG_F_FAIL_OPEN and the rules use NFQUEUE without --queue-bypass.
//     A packet that finds the queue full (Config.MaxQueueLen) is dropped by
//     the kernel and counted as queue_dropped in
//     /proc/net/netfilter/nfnetlink_queue; a packet whose message does not
//     fit the netlink socket buffer is dropped and counted as
//     queue_user_dropped. If the daemon dies, its rules stay in place and,
//     with no program bound to the queue, the kernel drops every guarded
//     packet: the services are unreachable until synwall runs again or the
//     rules are removed (synwall removes them on a clean exit).
//   - Fail-open (FailOpen true). The queue is bound with
//     NFQA_CFG_F_FAIL_OPEN: packets that find the queue full are ACCEPTED
//     unexamined. Under a flood that lets the excess SYNs reach the servers,
//     which is what fail-open means. The rules get --queue-bypass, which in
//     the kernel covers only the case "no program bound to the queue": if
//     the daemon dies, guarded traffic flows to the servers unprotected (and,
//     being notracked, without conntrack) until synwall runs again.
//
// A clean shutdown (context cancelled) unbinds the queues; the caller then
// removes the rules with firewall.Installer.Remove. Between the unbind and the removal
// the mode's "no program bound" behaviour applies.
//
// A graceful restart need not unbind at all: with Config.Handoff and
// Handoff.Keep called before the context is cancelled, the raw backend's
// workers send the verdicts of what they read and leave their sockets
// bound and open, for the next process to adopt after execve (see
// Handoff). Packets arriving meanwhile wait in the kernel queue; only a
// full queue applies the fail mode.
//
// # Injection
//
// RawInjector sends complete IPv4 and IPv6 packets through
// socket(AF_INET, SOCK_RAW, IPPROTO_RAW) and socket(AF_INET6, SOCK_RAW,
// IPPROTO_RAW) with sendmmsg, the destination taken from each packet's IP
// header. Both sockets carry SO_MARK (DefaultMark, which is
// firewall.DefaultMark, 0x5359 "SY"), and the rules let marked packets
// RETURN before any queue rule and skip conntrack, so synwall never sees its
// own packets again.
package queue
