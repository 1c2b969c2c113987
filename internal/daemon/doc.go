// Package daemon runs synwall as a gateway: New(Config) loads the policy,
// probes the backends of advertise.discover services and restores the state
// of a graceful restart; Run(ctx) binds the NFQUEUE queues, installs the
// firewall rules and serves until ctx ends; Ready() is closed once it
// protects. cmd/synwall turns its flags into a Config and calls these; the
// logger and the Prometheus registry are injected through Config.
//
// # Lifecycle
//
// Run opens the raw injection sockets and, with Traffic.Conntrack, the
// conntrack hand-off (conntrack.go: ctnetlink sockets, a probe entry, the
// connections the kernel already carries for synwall; off, with a log
// line, where that fails), binds the queues (one worker
// goroutine and one engine worker per queue, each wrapped by the
// observer), waits until every queue is bound, and only then installs the
// firewall rules (firewall.Installer, one iptables-restore transaction per
// family): traffic is never sent to a queue nobody reads. Then it writes
// the pid file and the stats file and closes Ready. Should the rules of
// the hand-off be refused, it installs those of a user-space run instead
// and turns the hand-off off, with a log line. The running daemon's
// tasks share one errgroup and one context:
//
//   - the queue workers (queue.Queue.Run), each processor wrapped, with
//     the hand-off on, by the kernel path (kernelpath.go: hand-off records
//     to conntrack, stale entries before a SYN-ACK, servers' RSTs of
//     handed-off connections);
//   - the hand-off's batching goroutine (conntrack.Handoff.Run);
//   - housekeeping, every second: flow expiry and the stats file, every
//     5 s the count of the conntrack entries that carry synwall's mark;
//   - reloads (Config.Reload, SIGHUP), on a task of their own: a reload
//     probes backends for up to probe.DiscoverTimeout (2 s) per probe and
//     runs iptables-restore, and neither may stall expiry or the counters;
//   - the graceful restart request (Config.Restart, SIGUSR2);
//   - the observer's window summaries, the one-second rates behind the
//     status, the pcap writer, the control socket and the metrics server.
//
// When ctx ends the workers verdict what they read and unbind, and Run
// removes every rule tagged synwall and the pid file. Between the unbind
// and the removal the fail mode's "no program bound" behaviour applies
// (package queue).
//
// # Reload
//
// A reload re-reads the policy file and validates it before anything
// changes; it then swaps the engine's policy (one atomic pointer: flows
// and the SYN cache survive) and, if the rules differ, installs the new
// ones. A policy that does not parse, whose limits the engine cannot build
// or whose rules iptables refuses is refused, logged and counted
// (synwall_policy_reloads_total{result="failed"}), and the running policy
// stays (swapped back if the rules failed). Queue numbers and the fail mode
// are those bound at start; changes to them, and to table sizes or the
// cookie period, wait for a restart, as the reload's log says.
//
// # Graceful restart
//
// On the restart request Run drains the queues (with Config.Handoff and
// the raw backend the sockets stay bound, see queue.Handoff), writes the
// cookie keys and flow table to Config.StateDir/state (0600, through a
// temporary file and a rename; gateway.Engine.SaveState documents the
// versioned, checksummed format; connections handed to conntrack live on
// in the kernel and are left out: the new process learns them from
// conntrack), leaves the rules and the pid file, and
// returns ErrRestart; the caller calls Reexec, which executes the binary
// now on disk with the same arguments and PID. The new process's New reads
// and removes the state file, refusing (with a log line) one that is
// missing, corrupt, of another version, not a regular file, readable by
// others, owned by another user or older than gateway.MaxStateAge.
//
// # What operators see
//
// Three exporters read the same counters (plain atomics of the engine,
// the queues and the injector) when asked, so the packet path pays nothing
// for them: the Prometheus collector (metrics.go, at scrape time), the
// status document (Status, version StatusVersion, served as JSON at
// GET /v1/status on the control socket and decoded by FetchStatus, the
// client synwall status uses), and the stats file (stats.go, rewritten
// atomically every second).
package daemon
