// Package synstage is synwall's SYN stage in the kernel: a BPF program on
// the ingress of the interfaces that face clients which answers SYNs to
// guarded services with the engine's own cookie SYN-ACK, in place, before
// they reach the stack, and drops malformed and invalid-flag segments with
// the engine's reasons. Everything else goes on to the stack and, for
// guarded traffic, to NFQUEUE and the engine (internal/gateway) as before.
// Under a SYN flood no SYN crosses into user space.
//
// The program is C (bpf/synstage.c; the layouts Go shares with it are in
// bpf/synstage.h), compiled by bpf2go into synstage_bpfel.o and Go
// bindings, both committed: `make generate` rebuilds them where clang is
// installed, TestObjectSources notices sources changed since, and
// TestObjectFresh rebuilds and compares byte for byte where clang exists.
//
// # One program, two attachments
//
// The same logic has two entry points: synstage_tc for tcx ingress (kernel
// 6.6 or later, any device: bpf_redirect of the SYN-ACK out the interface
// it came in on) and synstage_xdp for native XDP (XDP_TX), for NICs whose
// driver supports it. On veth, XDP_TX needs NAPI on the peer and strips
// GSO from it, so the lab and the default use tcx. On a veth whose peer is
// in another namespace (a container's or a lab's link) the tcx program
// hands the SYN-ACK to the peer's ingress with bpf_redirect_peer instead,
// skipping the veth's transmit and the backlog queue (0.4-0.8 µs less per
// SYN-ACK in the lab; Stage.Attach checks the link over rtnetlink and
// marks it in the peer_ifs map, Attachment.Peer; Stage.RecheckPeers, on
// the daemon's housekeeping tick, unmarks a link whose peer has moved
// into the same namespace, where bpf_redirect_peer would drop). Such a
// SYN-ACK skips the gateway veth's egress: its qdisc and tc egress
// programs do not see it. Stage.Attach picks one;
// if the program cannot be loaded or attached (no BPF, no privileges, an
// old kernel, a driver without native XDP) Load and Attach return an error
// that wraps ErrUnavailable and synwall runs on NFQUEUE alone.
//
// # Per packet, in the engine's order
//
// The program reproduces gateway.Worker.Process for client packets to a
// guarded service, in the same order, so that what it decides is what the
// engine would decide (the differential tests hold it to that):
//
//  1. Ethernet, IPv4 without options (IHL 5) or IPv6 with TCP right after
//     the fixed header, not a fragment, a whole TCP header: anything else
//     passes (TC_ACT_OK / XDP_PASS), never dropped and never answered.
//     VLAN-tagged frames, IPv4 options, IPv6 extension headers and
//     fragments are the engine's.
//  2. The destination address and port are looked up in the policy's
//     services (an LPM trie of prefixes, each entry holding every port
//     range an address of it resolves to, see servicePrefixes); traffic
//     to anything else passes.
//  3. Flags invalid whichever way the segment goes are dropped first
//     (Worker.dropInvalidFlagsEarly), then header.Parse's checks in its
//     order (total length, truncation, data offset, options, with
//     header.ParseOptions' rules), then header.CheckFlags for a client
//     segment. Drops are counted per reason with the engine's reason
//     values and names (Stats.Drops is indexed by header.Reason). Under
//     invalid_flags: count, such segments pass for the engine to count.
//  4. The deny list drops; a service in pass mode passes; in drop mode
//     drops; segments without SYN pass (handshake ACKs and flows need the
//     engine's flow table).
//  5. A SYN to a proxied service from a source the kernel would accept (not
//     multicast, broadcast, loopback, unspecified or IPv4-mapped; an IPv4
//     header checksum that holds; a frame for this host) is checked
//     against the per-source SYN limit and the global SYN-ACK limit, and
//     then rewritten in place into the SYN-ACK of gateway Worker.syn and
//     buildSegment: cookie, MSS class, timestamp bits, the service's
//     advertised options, IP header fields, complete checksums.
//
// # Keys and clocks
//
// The program never derives keys and never reads the wall clock for the
// cookie counter. The daemon calls Stage.Rotate (SetKeys) every second
// with the engine's Jar, which writes what changed at a rotation: the
// per-counter keys K(c) of counters cur-2 .. cur+1 go into a
// ring of four slots indexed by c mod 4, each with its counter, and cur
// into the state. A slot is written a period before its counter comes into
// force (as cur+1), so a SYN never reads a key being written, and the
// program checks that the slot holds the counter it wants (else the SYN
// passes to the engine). The TSval clock is Unix milliseconds anchored in
// each slot (ts_ms at CLOCK_MONOTONIC ts_ns) plus bpf_ktime_get_ns since;
// tests freeze it at the anchor (SYNSTAGE_F_FIXED_CLOCK) so that the
// program's output does not depend on when it runs.
//
// # Policy swaps
//
// The services, deny and allow tries are inner maps of ARRAY_OF_MAPS with
// two slots, one per generation, and the policy's scalars (invalid_flags,
// the SYN-ACK limit) an array of two. SetPolicy builds new tries beside the
// ones in force, sized to the new policy, fills them, installs them and
// the scalars in the idle generation's slots, and then flips the
// generation number in the state: one write, and every packet sees either
// the old policy or the new one, never a mix. Map-in-map lets each
// generation have the size its policy needs and frees a replaced trie
// only after the programs that might hold it are done (RCU); the
// generation index makes the three tries and the scalars change together,
// which swapping three outer slots one by one would not. A packet that
// read the old generation keeps using it to the end; the old maps are
// replaced only by the next SetPolicy but one.
//
// # One SYN cache
//
// The engine's SYN cache (gateway synCache) can live in the program's maps:
// Stage.CacheMemory maps the three BPF_F_MMAPABLE arrays (a ring position
// per bucket, a word per slot, the entries; the layout is
// synstage_cache_entry in bpf/synstage.h, held by tests on both sides to
// gateway's CacheEntrySize and Cache*Offset constants) into the process
// for gateway.Config.CacheMemory, and Stage.ShareCache gives the program
// the engine's tuple-hash seed (Engine.FlowSeed), with which an entry names
// its tuple. From then on the program writes, for every SYN it answers, the
// entry the engine's Worker.syn would write: bucket from the cookie's MAC
// bits, the next slot of the bucket's ring, the client's ISN, MSS, window
// scale, SACK, ECN and TSval, our TSval. The handshake ACK finds it in the
// engine (a cache hit), which opens the server side with the client's
// exact options, timestamps or not, and a SYN retransmitted to the engine
// gets the program's SYN-ACK again.
//
// A client without timestamps keeps window scale, SACK and ECN only in
// its entry, so the engine offers them only with an entry pinned until the
// cookie expires (gateway doc.go). The pins are shared too (a fourth
// mmapped array, CacheMemory.Pins, tag<<32 | Unix ms): the program passes
// over pinned slots when it picks one, pins the entries it writes for such
// clients (with the engine's CachePinMs and the millisecond clock of its
// TSval, which is the engine's Unix clock), writes a retransmitted SYN's
// entry again in its own slot, and offers such a client none of those
// options when it writes no entry (every slot pinned, or a slot changed
// under it), byte for byte what the engine sends then. The walk covers at
// most 64 entries per bucket (SYNSTAGE_MAX_CACHE_PER; Load refuses larger
// buckets, the default is 30).
//
// Both sides write without a common lock. A bucket's ring position is an
// atomic counter that every writer increments to take a slot. Each slot
// has a 64-bit word, seq<<32 | tag: a writer claims the slot with a
// compare-and-swap that makes seq odd and the tag 0, writes the entry, and
// publishes it with an atomic add that makes seq even and sets the tag; a
// slot whose seq is odd is being written, and a writer that finds it so (or
// loses the compare-and-swap) leaves the entry uncached, which costs only
// precision (the cookie and the timestamp bits still serve the ACK). A
// reader (the engine) reads the word, the entry and the word again, and
// trusts the entry only if the word is unchanged; it takes an entry for a
// handshake with a compare-and-swap from that word. Engine workers keep
// their per-bucket mutex among themselves. The program's atomics are full
// barriers, the engine's Go atomics sequentially consistent, so an entry's
// fields are visible before the word that publishes them.
//
// # Limits
//
// Per-source SYN limits have the engine's semantics (gateway buildActive,
// limit.PerSource): a GCRA token bucket per service and source prefix
// (/24 and /64 unless set), a new prefix starting with a full bucket,
// sources in the allow list exempt (their token is still taken, as in
// Worker.syn), proxy services only. The buckets live in a fixed table
// (65536 slots of 16 bytes, Options.SourceLimitSlots), a slot per keyed
// hash of a limiter id and the masked prefix, as limit.PerSource keeps
// them (lock-free: the slot holds the hash, the bucket is a GCRA word): a
// new prefix takes its slot over with a full bucket, but only once the
// owner's bucket is full again. The engine's table sees only the SYNs that
// reach it; this one sees the whole spoofed flood, whose random sources
// would otherwise hand a source over its limit a fresh burst many times a
// second; a prefix that hashes to such a source's slot is charged to its
// bucket (TestLimiterTakeover). A random-source flood costs a slot write
// per SYN and no allocation (an LRU hash inserted and evicted an element
// per SYN: about 0.45 µs more per SYN from 2^17 sources in
// BenchmarkProgramSources). Ids stay with a service name and prefix
// lengths across reloads, so a reload keeps the buckets as the engine
// keeps its limiters. Both use the monotonic clock. The engine
// keeps its own per-source limiters for the SYNs that reach it (those the
// program passes).
//
// The global SYN-ACK limit is one budget for the program and the engine:
// one GCRA word (the synack_tat map, BPF_F_MMAPABLE) shared by all CPUs
// with compare-and-swap, which the engine charges too through its own
// mapping of the map (Stage.SynAckBudget as gateway Config.SynAckLimiter,
// the same algorithm on CLOCK_MONOTONIC, read without a system call from
// Go's monotonic clock anchored once), so that together they send no more
// SYN-ACKs than the policy allows. The engine falls back to its own bucket
// once the stage is closed.
//
// # In the daemon
//
// synwall run --syn-stage auto|tc|xdp|off on the client-facing interfaces,
// which --syn-stage-if names or, left empty, the daemon picks: every up,
// non-loopback interface but those the kernel routes guarded prefixes
// through (internal/daemon stageif.go, synstage.go). The stage is
// loaded before the engine (whose SYN cache lives in its maps), given the
// policy, the keys and the engine's seed, and attached once the firewall
// rules are in place; reloads give it the new policy; Close detaches it
// when the daemon stops. A graceful restart hands it over instead (below).
// auto falls back to NFQUEUE alone when the stage cannot load or attach,
// and says so in the log, the status (syn_stage) and synwall_syn_stage_up.
//
// # Graceful restart
//
// A graceful restart re-executes the daemon with the same PID. The stage
// goes across the execve the way the NFQUEUE sockets do (internal/queue
// Handoff): Stage.Handover duplicates the descriptors of the programs,
// every map and every link without close-on-exec and names them in
// HandoverEnv (with the object's SHA-256, the SYN cache's size and the
// per-source limiter ids); the old process then closes its own
// descriptors, which detaches nothing, because the duplicates hold every
// object. The next process's InheritFromEnv wraps them
// (ebpf.NewMapFromFD, NewProgramFromFD, link.NewFromFD) and Load adopts
// them when they are what it would load itself: same object, same sizes,
// each map compatible with the spec. It reads the state and the key ring
// back, so that SetKeys and SetPolicy go on from them; the keys do not
// change (the daemon restores the same jar from its state file), so
// SYN-ACKs sent before the restart validate after it, and CacheSeed gives
// the new engine the tuple-hash seed the cache's entries were written
// with (gateway Config.FlowSeed), so that it finds them in the same
// memory. Attach claims an inherited link instead of attaching again:
// the tcx link, and with it the program on the interface, stays the same
// throughout, and the stage answers SYNs while no engine runs. When the
// binary brings another object, or the cache's size changed, Load loads
// its own program and maps and moves each inherited link onto them with
// one link update (never detached; the SYN cache then starts empty).
// ReleaseInherited detaches links no longer configured; a next process
// with the stage off detaches what it was handed.
//
// Handing descriptors over rather than pinning under bpffs: the objects
// live exactly as long as a synwall process holds them. A plain stop, a
// crash or a failed execve closes the last descriptor and detaches the
// program, so that a stage never keeps answering with keys nobody rotates
// and a cookie counter nobody advances, and nothing is left to unpin. No
// bpffs mount (and no write access to one, which the hardened unit does
// not grant) is needed, and it is the mechanism the queue sockets already
// use across the same execve.
//
// # Sampled drops
//
// SetSampling turns on sampling of the frames the program drops: a GCRA
// token bucket in the program (sample_config, at the rate of the daemon's
// pcap sampler, a second's worth of burst) lets a frame through into the
// samples ring buffer (BPF_MAP_TYPE_RINGBUF) as a synstage_sample: the
// counter of its drop and its first 256 bytes. ReadSamples reads them;
// the daemon offers each to its pcap sampler (internal/observe Sampler)
// with the class the engine's drop of the same reason would have, so the
// pcap file shows the stage's drops beside the engine's. A flood of drops
// costs the kernel one token check per drop and no more records than the
// rate allows; a full ring loses samples, never delays a packet.
//
// # What the stage does not do
//
//   - ACKs are never dropped here, even with an invalid cookie: telling an
//     ACK of an established flow from a forged handshake ACK needs the
//     engine's flow table, and every ACK passes a cookie check in the
//     engine anyway (one SipHash, no state). An ACK flood therefore still
//     crosses into user space; dropping it here needs a table of live flows
//     the engine keeps in a map.
//   - A SYN on the tuple of a flow the engine holds is not answered here.
//     The engine keeps its flow table's slot tags in the program's
//     flow_tags map (BPF_F_MMAPABLE, one element per bucket of
//     gateway.FlowBucketSize tags; gateway Config.FlowTagMemory from
//     Stage.FlowTagMemory), and the program, which hashes the tuple as the
//     engine does for the SYN cache, passes a SYN whose tag is in its
//     bucket to NFQUEUE (Stats.LiveFlow), before its limits. The engine
//     then applies its rule: it answers, and replaces an established flow
//     (a client that lost the old connection without a FIN or RST) only
//     when a valid ACK for the new ISN arrives; otherwise the handshake ACK
//     after a SYN-ACK of the program would be translated into the old
//     flow. A tag collision (30 bits within a bucket) only sends a SYN to
//     the engine. During a graceful restart the new engine clears the
//     tags before it restores its flows: for those milliseconds such SYNs
//     are answered here.
//   - A SYN sent by a local stack through a veth arrives checksum-partial;
//     the SYN-ACK carries a complete checksum and keeps the partial state,
//     which the receiving stack trusts without checking. Forwarded further
//     through a device that completes checksums it would come out wrong;
//     clients on the gateway host itself are not a deployment the stage
//     serves.
//
// # Verifier
//
// The program keeps what it parses in a per-CPU scratch map (more than the
// 512-byte stack holds). The TCP option walk, the search of a prefix's port
// ranges and the masking of a source prefix are global functions, verified
// once on their own: inlined, every layout of 40 option bytes and every
// range index would be a verifier state of its own for the rest of the
// program. The option walk also keeps its state in the scratch map and
// reads it back through volatile loads, so that the verifier sees unknown
// values at every step and prunes.
//
// # Cost
//
// BenchmarkProgram measures the program alone with BPF_PROG_TEST_RUN
// (single repetitions on fresh copies of the packet, less the cost of an
// empty program): a few hundred nanoseconds for a SYN answered, about a
// hundred for a drop or an unguarded packet, against microseconds for a
// SYN through NFQUEUE, the engine and a raw socket.
package synstage
