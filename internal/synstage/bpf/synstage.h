/* Layouts shared by the SYN stage's BPF program (synstage.c) and its Go
 * loader (package synstage). bpf2go generates the Go declarations from this
 * file's types; nothing here is written twice by hand. */
#ifndef SYNSTAGE_H
#define SYNSTAGE_H

/* Counters, one PERCPU_ARRAY slot each. Slots 0..SYNSTAGE_NUM_REASONS-1 are
 * drops by reason and carry the values of the engine's header.Reason (a Go
 * test holds the two to each other); the others count what the stage did
 * with the rest. */
enum synstage_counter {
	SYNSTAGE_REASON_INVALID = 0,
	SYNSTAGE_REASON_OK = 1,
	SYNSTAGE_REASON_TRUNCATED = 2,
	SYNSTAGE_REASON_BAD_VERSION = 3,
	SYNSTAGE_REASON_BAD_IHL = 4,
	SYNSTAGE_REASON_BAD_TOTAL_LENGTH = 5,
	SYNSTAGE_REASON_FRAGMENT = 6,
	SYNSTAGE_REASON_BAD_EXT_HEADER = 7,
	SYNSTAGE_REASON_NOT_TCP = 8,
	SYNSTAGE_REASON_BAD_DATA_OFFSET = 9,
	SYNSTAGE_REASON_BAD_OPTION = 10,
	SYNSTAGE_REASON_SYN_FIN = 11,
	SYNSTAGE_REASON_SYN_RST = 12,
	SYNSTAGE_REASON_FIN_NO_ACK = 13,
	SYNSTAGE_REASON_NULL_FLAGS = 14,
	SYNSTAGE_REASON_XMAS = 15,
	SYNSTAGE_REASON_NO_ACK = 16,
	SYNSTAGE_REASON_SYN_ACK_FROM_CLIENT = 17,
	SYNSTAGE_REASON_SERVER_SYN = 18,
	SYNSTAGE_REASON_RST_FIN = 19,
	SYNSTAGE_NUM_REASONS = 20,

	SYNSTAGE_ANSWERED = 32,        /* SYN answered with a cookie SYN-ACK */
	SYNSTAGE_PASS_UNGUARDED,       /* not IP/TCP to a guarded address and port */
	SYNSTAGE_PASS_UNPARSED,        /* VLAN, IPv4 options, IPv6 extension headers, fragments, short */
	SYNSTAGE_PASS_MODE,            /* service in pass mode */
	SYNSTAGE_PASS_NOT_SYN,         /* proxied service, no SYN: handshake ACKs and flows */
	SYNSTAGE_PASS_INVALID_COUNTED, /* invalid flags under invalid_flags: count */
	SYNSTAGE_PASS_NO_KEY,          /* no cookie key for the current counter */
	SYNSTAGE_PASS_BAD_IP_CSUM,     /* IPv4 header checksum wrong: the kernel drops it */
	SYNSTAGE_PASS_MARTIAN,         /* source that is never answered (multicast, loopback, ...) */
	SYNSTAGE_PASS_OTHER_HOST,      /* frame not addressed to this host */
	SYNSTAGE_PASS_TOO_MANY_RANGES, /* prefix whose port ranges do not fit the map value */
	SYNSTAGE_PASS_ERROR,           /* resizing or sending the SYN-ACK failed */
	SYNSTAGE_DROP_DENIED,          /* source in the deny list */
	SYNSTAGE_DROP_POLICY,          /* service in drop mode */
	SYNSTAGE_DROP_SYN_LIMITED,     /* per-source SYN limit */
	SYNSTAGE_DROP_SYNACK_LIMITED,  /* global SYN-ACK limit */
	SYNSTAGE_PASS_LIVE_FLOW,       /* SYN on the tuple of a flow the engine holds: the engine's */
	SYNSTAGE_NUM_COUNTERS = 64,
};

/* synstage_state.flags */
enum synstage_flags {
	SYNSTAGE_F_KEYS = 1,         /* the key ring is filled */
	SYNSTAGE_F_FIXED_CLOCK = 2,  /* TSval clock is ts_ms exactly (tests) */
};

/* The stage's state, element 0 of the state array. The daemon rewrites it
 * whole at every key rotation and policy swap. */
struct synstage_state {
	__u64 counter; /* cookie counter now (cookies: floor(unix time / period)) */
	__u32 gen;     /* policy generation in force: 0 or 1 */
	__u32 flags;   /* enum synstage_flags */
};

/* One slot of the key ring, indexed by counter & 3: the per-counter cookie
 * key K(counter) as the two SipHash key words, and the anchor of the
 * millisecond TSval clock (Unix milliseconds ts_ms at CLOCK_MONOTONIC ts_ns),
 * written by the daemon before the counter comes into force. */
struct synstage_key {
	__u64 counter;
	__u64 k0;
	__u64 k1;
	__u64 ts_ms;
	__u64 ts_ns;
};

/* Policy scalars of one generation. */
struct synstage_policy {
	__u32 invalid_flags_count; /* 1: count invalid flags and let them through */
	__u32 synack_limit;        /* 1: global SYN-ACK limit in force */
	__u32 has_deny;            /* 1: the deny list is not empty */
	__u32 pad;
	__u64 synack_interval_ns;  /* GCRA emission interval */
	__u64 synack_tau_ns;       /* interval * burst */
};

/* Key of the LPM tries (services, deny, allow): prefixlen counts the family
 * byte's 8 bits plus the address prefix. IPv4 addresses fill addr[0..3]. */
struct synstage_lpm_key {
	__u32 prefixlen;
	__u8 family; /* 4 or 6 */
	__u8 addr[16];
	__u8 pad[3];
};

enum synstage_mode {
	SYNSTAGE_MODE_INVALID = 0,
	SYNSTAGE_MODE_PROXY = 1,
	SYNSTAGE_MODE_PASS = 2,
	SYNSTAGE_MODE_DROP = 3,
};

enum synstage_adv {
	SYNSTAGE_ADV_SACK = 1,
	SYNSTAGE_ADV_TS = 2,
	SYNSTAGE_ADV_ECN = 4,
};

/* A guarded port range of a prefix and the service behind it. */
struct synstage_range {
	__u16 lo, hi;
	__u8 mode;       /* enum synstage_mode */
	__s8 adv_wscale; /* 0..14; -1 offers none */
	__u8 adv;        /* enum synstage_adv */
	__u8 limit_prefix4;
	__u16 adv_mss4, adv_mss6; /* 0: no MSS option */
	__u16 adv_window;
	__u8 limit_prefix6;
	__u8 pad;
	__u32 limit_id; /* per-source SYN limit: 0 none, else its bucket namespace */
	__u32 pad2;
	__u64 limit_interval_ns;
	__u64 limit_tau_ns;
};

#define SYNSTAGE_MAX_RANGES 16

/* Value of the services trie: every port range that an address in the
 * prefix resolves to, the more specific prefixes' first (the Go side merges
 * the ranges of the shorter prefixes that contain it, as the policy's
 * longest-prefix-first lookup falls back to them). n above
 * SYNSTAGE_MAX_RANGES marks a prefix left to the NFQUEUE path. */
struct synstage_ports {
	__u32 n;
	__u32 pad;
	struct synstage_range r[SYNSTAGE_MAX_RANGES];
};

/* Key of the per-source SYN limiter: the service's limiter and the source
 * address masked to its prefix. */
struct synstage_limit_key {
	__u32 limit_id;
	__u8 family;
	__u8 pad[3];
	__u8 prefix[16];
};

/* The per-source limiter table's slot hash (limit.PerSource's seeded
 * multiply-fold) and size: slot = hash & mask. Written once by the loader
 * (random seed); a graceful restart that adopts the maps keeps it. */
struct synstage_limit_config {
	__u64 seed[3];
	__u32 mask; /* slots - 1 (a power of two) */
	__u32 pad;
};

/* One entry of the SYN cache the program shares with the engine
 * (internal/gateway syncache.go: cacheEntry, CacheMemory): what the engine
 * needs of an answered SYN to open the server side with the client's exact
 * options. Booleans are 0 or 1. */
struct synstage_cache_entry {
	__u64 fp;         /* the engine's tuple hash (flowTable.hash) */
	__u32 client_isn; /* the SYN's sequence number */
	__u32 cookie;     /* our SYN-ACK's sequence number */
	__u32 our_ts;     /* our TSval, when timestamps were agreed */
	__u32 client_ts;  /* the client's TSval */
	__u16 mss;        /* the client's MSS, 0 when it sent none */
	__s8 ws;          /* the client's window scale when agreed, else -1 */
	__s8 adv_ws;      /* the scale our SYN-ACK offered, -1 none */
	__u8 sack, ts, ecn;
	__u8 pad;
};

/* Where the program writes SYN-cache entries: the cache's geometry and the
 * engine's tuple-hash seed. enabled is 0 until an engine uses the memory.
 * flows is 1 when the engine keeps its flow table's slot tags in the
 * flow_tags map (gateway Config.FlowTagMemory), flow_mask its buckets - 1. */
struct synstage_cache_config {
	__u32 mask; /* buckets - 1 (a power of two) */
	__u32 per;  /* entries per bucket */
	__u32 enabled;
	__u32 flows;
	__u32 flow_mask;
	__u32 pin_ms; /* how long a pinned entry is kept (gateway Engine.CachePinMs) */
	__u64 seed[4];
};

/* The largest number of entries per SYN cache bucket the program walks
 * (the engine's default is 30); the loader refuses larger buckets. */
#define SYNSTAGE_MAX_CACHE_PER 64

/* A sampled dropped frame (the samples ring buffer): the counter of its
 * drop (a reason below SYNSTAGE_NUM_REASONS, else DROP_DENIED, DROP_POLICY,
 * DROP_SYN_LIMITED or DROP_SYNACK_LIMITED), its length and the first
 * caplen bytes, from the Ethernet header on. */
#define SYNSTAGE_SNAPLEN 256
struct synstage_sample {
	__u32 counter;
	__u32 len;
	__u32 caplen;
	__u32 pad;
	__u8 data[SYNSTAGE_SNAPLEN];
};

/* Sampling of dropped frames: off while interval_ns is 0; tat is the
 * token bucket's word (GCRA, CLOCK_MONOTONIC ns). */
struct synstage_sample_config {
	__u64 interval_ns;
	__u64 tau_ns;
	__u64 tat;
};

#endif
