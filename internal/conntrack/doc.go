// Package conntrack hands proxied TCP connections to the kernel: once
// synwall has completed a connection's handshake with the client (its
// cookie SYN-ACK) and with the server (the server's SYN-ACK), it creates
// the connection's conntrack entry over ctnetlink, with the sequence and
// timestamp offsets between the two halves, and the kernel translates every
// later packet of the connection itself, as it does for kernel SYNPROXY.
// The firewall rules accept packets of such entries (ESTABLISHED, synwall's
// mark) before the NFQUEUE rule, so synwall no longer sees them.
//
// # The entry
//
// appendCreate builds what kernel SYNPROXY leaves behind
// (net/netfilter/nf_synproxy_core.c, ipv4_synproxy_hook, SYN_RECV case):
// both tuples, TCP state ESTABLISHED, status SEEN_REPLY|ASSURED, both window
// scales, BE_LIBERAL both ways (the entry has no window history; conntrackd
// creates entries the same way), the reply direction's sequence adjustment
// CookieISN − ServerISN, and the synproxy extension ISN = CookieISN,
// ITS = TSval of synwall's SYN-ACK, TSOFF = server TSval − ITS. The mark
// (DefaultMark under DefaultMarkMask) tells synwall's entries from others,
// and the timeout is the entry's life until its first packet.
//
// What the kernel does with it, read in net/netfilter on 6.x:
//
//   - ctnetlink_create_conntrack adds the seqadj and synproxy extensions
//     before the entry is confirmed. Extensions cannot be added to an entry
//     that the packet path created first, so no packet of a guarded
//     connection may create one: the rules exempt the SYNs of guarded
//     services from conntrack (as SYNPROXY's own setup does), and
//     net.netfilter.nf_conntrack_tcp_loose=0 keeps a mid-stream packet from
//     creating an entry (it is INVALID instead, and goes to the queue).
//   - nf_confirm (the last hook of POSTROUTING and INPUT) calls
//     nf_ct_seq_adjust for every packet of an entry with IPS_SEQ_ADJUST:
//     server→client seq += offset, client→server ack −= offset, and SACK
//     blocks likewise (nf_ct_sack_adjust). The offset is sent as
//     offset-before and offset-after alike, so the correction position is
//     never consulted; it is sent non-zero all the same (see
//     seqAdjPosition), and is read back in the tests.
//   - Timestamps are adjusted only by the SYNPROXY hooks
//     (ipv4_synproxy_hook / ipv6_synproxy_hook → synproxy_tstamp_adjust:
//     reply TSval −= TSOFF, original TSecr += TSOFF), which the kernel
//     registers in a namespace only while a SYNPROXY target or expression
//     exists there. synwall's rules therefore carry a SYNPROXY rule that
//     never matches.
//   - The kernel never rescales windows: a flow whose server scales its
//     window differently from what synwall's SYN-ACK advertised cannot be
//     handed off, nor one whose server disagrees on SACK, timestamps or MSS.
//     The engine decides that; this package carries what it is given.
//   - A server RST on a handed-off connection moves the entry to CLOSE in
//     PREROUTING; the synproxy hook then re-initialises the reply offset
//     from the RST's own sequence number (the CLOSE case of the hook, meant
//     for a server refusing SYNPROXY's SYN). The kernel tests of this
//     package record what a client receives then.
//
// # Batches and failures
//
// The engine side calls Submit (or RemoveStale) with a fixed-size Flow
// value: a non-blocking send on a bounded channel, no allocation. Run, on
// its own goroutine, takes what is queued (up to Config.MaxBatch) and sends
// one create message per flow in a single sendmsg; the kernel handles the
// messages of a datagram one by one and acknowledges each with its sequence
// number, so every flow gets its own outcome. Under load the batches grow by
// themselves; a lone request is sent at once. A full queue refuses the flow
// (Submit returns false and counts), and a failed create is reported through
// Config.Done, counted by reason, and logged at most once per
// Config.LogWindow: in both cases the flow stays in user space, which keeps
// translating it.
//
// An entry of a connection that ended (TIME_WAIT, CLOSE) is stale: left in
// place it would accept the handshake ACK of a new connection on the same
// ports before synwall sees it. Run watches the kernel's UPDATE events and
// removes each of synwall's entries that reaches TIME_WAIT or CLOSE
// (RemoveStale: a get, then a delete by id, so that nothing else is; a
// live entry is never touched). Two more guards cover lost events: a
// create that finds an entry on its tuple (EEXIST) deletes a stale one and
// tries once more (a live one is ErrExists), and RemoveStaleNow checks a
// tuple Known reports before the SYN-ACK for a new SYN on it goes out.
//
// Count reports how many entries carry synwall's mark, from a dump the
// kernel filters by mark; nothing is counted per packet.
//
// # What synwall still knows of a handed-off connection
//
// Known answers, without a system call or an allocation, whether this
// process handed a connection off and the kernel still has its entry, and
// with which offsets. A registry records each connection when its create
// succeeds and forgets it on the kernel's DESTROY event for the entry (a
// third socket, subscribed to NFNLGRP_CONNTRACK_DESTROY; after lost events
// a dump by mark decides), bounded by Config.MaxKnown. The packet path
// uses it for the two things the kernel gets wrong: a new SYN on a tuple
// whose entry may be stale (RemoveStale before the handshake goes on), and
// a server's RST, whose sequence number the kernel would rewrite to
// cookie ISN + 1 (above) and which synwall therefore translates itself.
//
// # Namespaces
//
// New opens its netlink sockets in the network namespace of the calling
// thread. The tests build namespaces of their own, open the sockets inside
// with the thread locked, and never touch the root namespace's table.
package conntrack
