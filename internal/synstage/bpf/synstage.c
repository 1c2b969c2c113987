// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* synwall's SYN stage: answers SYNs to guarded services with the engine's own
 * SipHash cookie SYN-ACK before they reach the stack, and drops malformed
 * and invalid-flag segments with the engine's reasons. Everything it cannot
 * parse safely passes to the stack and the NFQUEUE path. See the Go
 * package's doc.go for the design; the Go engine (internal/gateway) is the
 * reference this program is tested against byte for byte. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "synstage.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the cookie message is read as little-endian words: build for bpfel"
#endif

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* ---- maps ---- */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SYNSTAGE_NUM_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct synstage_state);
} state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct synstage_key);
} keys SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct synstage_policy);
} policy SEC(".maps");

/* Templates of the inner maps below; the loader makes the real ones, sized
 * to the policy. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct synstage_lpm_key);
	__type(value, struct synstage_ports);
} services_trie SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct synstage_lpm_key);
	__type(value, __u8);
} prefix_trie SEC(".maps");

/* One inner map per policy generation (index = synstage_state.gen). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, typeof(services_trie));
} services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, typeof(prefix_trie));
} deny SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, typeof(prefix_trie));
} allow SEC(".maps");

/* The per-source SYN limiters (limit.PerSource): a fixed table of token
 * buckets, a slot per keyed hash of the limiter id and masked prefix, a
 * new prefix taking a slot over with a full bucket. Fixed memory and no
 * allocation whatever the sources: a random-source flood costs one slot
 * write per SYN, where a hash map would insert and evict an element each.
 * The size is set by the loader (a power of two). */
struct limit_slot {
	__u64 tag; /* the keyed hash of its limiter id and prefix, | 1; 0: unused */
	__u64 tat; /* GCRA arrival time, CLOCK_MONOTONIC ns */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct limit_slot);
} source_limits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct synstage_limit_config);
} limit_config SEC(".maps");

/* The global SYN-ACK limit's GCRA word (CLOCK_MONOTONIC ns): one budget
 * for the stage and the engine, which charges it through its own mapping
 * of the map (Stage.SynAckBudget). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} synack_tat SEC(".maps");

/* The SYN cache shared with the engine (see synstage_cache_entry): the
 * ring position of each bucket, a word per slot (seq<<32 | tag) and the
 * entries, all mmapped by the engine. The sizes are set by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 512);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} cache_heads SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 512 * 30);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} cache_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 512 * 30);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct synstage_cache_entry);
} cache_entries SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct synstage_cache_config);
} cache_config SEC(".maps");

/* The pins of the shared SYN cache's entries (gateway synCache.pins),
 * one word per slot: tag<<32 | Unix ms when pinned, 0 when not. Sized
 * by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 512 * 30);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} cache_pins SEC(".maps");

/* The engine's flow table's slot tags (gateway flowTable.tags, mmapped by
 * the engine), one element per bucket of 16 slots: a tag is 0 when the
 * slot is free, else the tuple's hash bits with bit 0 set and bit 1 the
 * view flag. (An element per bucket: array elements are 8-byte aligned, so
 * 32-bit elements would not lie as the engine's array does.) The size is
 * set by the loader. */
#define FLOW_BUCKET_SIZE 16
struct flow_bucket {
	__u32 tag[FLOW_BUCKET_SIZE];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct flow_bucket);
} flow_tags SEC(".maps");

/* The tcx attachments that answer through their veth's peer: slot
 * ifindex & 255 holds the ifindex when the interface is a veth whose peer
 * is in another network namespace (the loader checks; 0 elsewhere). There
 * bpf_redirect_peer hands the SYN-ACK straight to the peer's ingress, as
 * if it had arrived there, instead of transmitting it through the veth
 * and the backlog queue. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u32);
} peer_ifs SEC(".maps");

/* Samples of dropped packets for the daemon's pcap file (Stage.Samples):
 * struct synstage_sample records, at most sample_config's rate (a GCRA
 * word per stage, like the SYN-ACK limit). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} samples SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct synstage_sample_config);
} sample_config SEC(".maps");

/* The enums of synstage.h, kept in the object's type information so that
 * bpf2go generates them for Go; the map itself is never used. */
struct synstage_enums {
	struct synstage_sample sample;
	enum synstage_counter counter;
	enum synstage_flags flags;
	enum synstage_mode mode;
	enum synstage_adv adv;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct synstage_enums);
} enums SEC(".maps");

/* ---- helpers ---- */

enum act { ACT_PASS, ACT_DROP, ACT_TX };

static __always_inline void count(__u32 i)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &i);
	if (c)
		*c += 1;
}

/* TCP flag bits (RFC 9293 §3.1, RFC 3168). */
#define F_FIN 0x01
#define F_SYN 0x02
#define F_RST 0x04
#define F_PSH 0x08
#define F_ACK 0x10
#define F_URG 0x20
#define F_ECE 0x40
#define F_CWR 0x80

/* check_flags is the engine's header.CheckFlags (conntrack and pf rules). */
static __always_inline __u32 check_flags(__u8 flags, int from_server)
{
	__u8 f = flags & 0x3f;
	if (f & F_SYN) {
		if (f & F_FIN)
			return SYNSTAGE_REASON_SYN_FIN;
		if (f & F_RST)
			return SYNSTAGE_REASON_SYN_RST;
		if (f & F_ACK)
			return from_server ? SYNSTAGE_REASON_OK : SYNSTAGE_REASON_SYN_ACK_FROM_CLIENT;
		return from_server ? SYNSTAGE_REASON_SERVER_SYN : SYNSTAGE_REASON_OK;
	}
	if (f & F_RST)
		return (f & F_FIN) ? SYNSTAGE_REASON_RST_FIN : SYNSTAGE_REASON_OK;
	if (f & F_ACK)
		return SYNSTAGE_REASON_OK;
	if (f == 0)
		return SYNSTAGE_REASON_NULL_FLAGS;
	if (f == (F_FIN | F_PSH | F_URG))
		return SYNSTAGE_REASON_XMAS;
	if (f & F_FIN)
		return SYNSTAGE_REASON_FIN_NO_ACK;
	return SYNSTAGE_REASON_NO_ACK;
}

/* SipHash-2-4 (Aumasson, Bernstein) on whole 64-bit words, as the Go
 * cookies package computes it: message words, then the final word (length
 * in the top byte). */
#define ROTL(x, b) (__u64)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                               \
	do {                                                                   \
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);      \
		v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                         \
		v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                         \
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);      \
	} while (0)
#define SIPWORD(m)                                                             \
	do {                                                                   \
		v3 ^= (m); SIPROUND; SIPROUND; v0 ^= (m);                      \
	} while (0)

static __always_inline __u64 siphash(__u64 k0, __u64 k1, const __u64 *w, int n)
{
	__u64 v0 = k0 ^ 0x736f6d6570736575ULL;
	__u64 v1 = k1 ^ 0x646f72616e646f6dULL;
	__u64 v2 = k0 ^ 0x6c7967656e657261ULL;
	__u64 v3 = k1 ^ 0x7465646279746573ULL;
#pragma unroll
	for (int i = 0; i < 6; i++)
		if (i < n)
			SIPWORD(w[i]);
	v2 ^= 0xff;
	SIPROUND; SIPROUND; SIPROUND; SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

static __always_inline __u64 le64(const __u8 *b)
{
	__u64 v;
	__builtin_memcpy(&v, b, 8);
	return v;
}

static __always_inline __u32 le32(const __u8 *b)
{
	__u32 v;
	__builtin_memcpy(&v, b, 4);
	return v;
}

static __always_inline __u16 be16(const __u8 *b) { return (__u16)b[0] << 8 | b[1]; }

static __always_inline __u32 be32(const __u8 *b)
{
	return (__u32)b[0] << 24 | (__u32)b[1] << 16 | (__u32)b[2] << 8 | b[3];
}

static __always_inline void put16(__u8 *b, __u16 v) { b[0] = v >> 8; b[1] = v; }

static __always_inline void put32(__u8 *b, __u32 v)
{
	b[0] = v >> 24; b[1] = v >> 16; b[2] = v >> 8; b[3] = v;
}

/* sum32 adds the n (a multiple of 4, at most max) bytes at b to a
 * one's-complement sum as native 32-bit words, as bpf_csum_diff would
 * (RFC 1071 §2: the sum is independent of byte order when folded and
 * stored the same way), without a helper call. */
static __always_inline __u64 sum32(const __u8 *b, __u32 n, __u32 max)
{
	__u64 s = 0;
#pragma unroll
	for (__u32 i = 0; i < max; i += 4)
		if (i < n)
			s += le32(b + i);
	return s;
}

static __always_inline __u16 fold(__u64 s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* GCRA step on *tat (the limit package's algorithm): true when an event at
 * now conforms. Lock-free: a lost race is retried, and after a few losses
 * the event is let through. */
static __always_inline int gcra(__u64 *tat, __u64 now, __u64 interval, __u64 tau)
{
#pragma unroll
	for (int i = 0; i < 4; i++) {
		__u64 old = *(volatile __u64 *)tat;
		__u64 t = (old > now ? old : now) + interval;
		if (t - now > tau)
			return 0;
		if (__sync_val_compare_and_swap(tat, old, t) == old)
			return 1;
	}
	return 1;
}

/* ---- the packet ---- */

/* Parsed TCP options, as the engine's header.ParseOptions reads them. */
struct opts {
	__u32 tsval;
	__u16 mss;
	__u8 has_mss, wscale, has_wscale, sack_ok, has_ts;
};

/* What the program keeps of a packet: the Ethernet, IP and TCP headers with
 * options, copied out of the packet, and the output being built. */
struct pkt {
	__u8 eth[14];
	__u8 pad[2];
	__u8 ip[40];
	__u8 tcp[20];
	__u8 opt[40]; /* up to 40 option bytes */
	/* The option walk's state (parse_options). */
	__u32 at, kind, rem, pos, acc, n;
	struct opts op; /* its result */
};

struct out {
	__u8 b[14 + 40 + 60 + 2];
};

/* The engine's flow key (gateway flowKey): the addresses as little-endian
 * words, then sport<<32 | dport<<16 | v6. */
struct flowkey {
	__u64 w[5];
	__u64 fp; /* its hash (flow_hash) */
};

/* Per-CPU scratch memory for one packet: more than the BPF stack holds. */
struct scratch {
	__u32 drop; /* the counter of the last drop (drop) */
	__u32 pad;
	struct pkt p;
	struct out o;
	struct synstage_cache_entry ce; /* the cache entry of an answered SYN */
	struct flowkey fk;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");


/* parse_options is header.ParseOptions for the n (<= 40) option bytes in
 * pk->opt: the last of a repeated option counts, EOL ends the list, unknown
 * options are skipped by their length. It returns SYNSTAGE_REASON_OK or
 * SYNSTAGE_REASON_BAD_OPTION.
 *
 * It is a global function, verified once on its own, and works on the
 * per-CPU scratch buffer, where the caller put the options.
 *
 * It walks the bytes at fixed positions as a state machine (what the
 * current byte is: a kind, a length, or a value byte) instead of jumping
 * from option to option: no offset into the buffer depends on the data, so
 * the verifier treats the state as imprecise scalars and prunes every step
 * instead of following each possible layout of 40 bytes. */
__attribute__((noinline)) int parse_options(__u32 n)
{
	enum { AT_KIND, AT_LEN, AT_VALUE, DONE };
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return SYNSTAGE_REASON_BAD_OPTION;
	struct pkt *pk = &s->p;
	/* The state lives in the map value and is read back through volatile
	 * loads, so the verifier sees unknown scalars at every step. */
	volatile struct pkt *v = pk;
	/* n, too: the load that filled opt made it precise, and each step's
	 * comparisons would narrow it. */
	v->n = n;
	v->at = AT_KIND;
	v->kind = v->rem = v->pos = v->acc = 0;
	volatile struct opts *p = &v->op;
#pragma unroll
	for (__u32 j = 0; j < 40; j++) {
		__u32 b = pk->opt[j];
		__u32 at = v->at;
		n = v->n; /* afresh: a range narrowed by earlier steps would decide branches */
		if (at == DONE || j >= n)
			continue;
		if (at == AT_KIND) {
			if (b == 0) /* EOL */
				v->at = DONE;
			else if (b != 1) { /* not NOP */
				v->kind = b;
				v->at = AT_LEN;
			}
			continue;
		}
		__u32 kind = v->kind;
		if (at == AT_LEN) {
			/* b is the length of the option whose kind is at j-1. */
			if (b < 2 || b > n - j + 1)
				return SYNSTAGE_REASON_BAD_OPTION;
			if ((kind == 2 && b != 4) ||   /* MSS, RFC 9293 §3.2 */
			    (kind == 3 && b != 3) ||   /* window scale, RFC 7323 §2.2 */
			    (kind == 4 && b != 2) ||   /* SACK-permitted, RFC 2018 §2 */
			    (kind == 5 && ((b - 2) % 8 != 0 || b < 10 || b > 34)) || /* SACK, RFC 2018 §3 */
			    (kind == 8 && b != 10))    /* timestamps, RFC 7323 §3.2 */
				return SYNSTAGE_REASON_BAD_OPTION;
			if (kind == 4)
				p->sack_ok = 1;
			v->rem = b - 2;
			v->pos = 0;
			v->acc = 0;
			v->at = b > 2 ? AT_VALUE : AT_KIND;
			continue;
		}
		/* A value byte: the first four are gathered big-endian. */
		__u32 pos = v->pos, rem = v->rem - 1;
		__u32 acc = v->acc;
		if (pos < 4)
			acc = acc << 8 | b;
		v->acc = acc;
		v->pos = pos + 1;
		v->rem = rem;
		if (rem)
			continue;
		v->at = AT_KIND;
		if (kind == 2) {
			p->mss = acc;
			p->has_mss = 1;
		} else if (kind == 3) { /* above 14 means 14 (RFC 7323 §2.3) */
			p->wscale = acc > 14 ? 14 : acc;
			p->has_wscale = 1;
		} else if (kind == 8) {
			p->tsval = acc;
			p->has_ts = 1;
		}
	}
	/* A kind byte last, without its length. */
	if (v->at == AT_LEN)
		return SYNSTAGE_REASON_BAD_OPTION;
	return SYNSTAGE_REASON_OK;
}

/* find_range returns the index of the range of ports that holds port, or
 * -1. A global function, verified once: inlined, each index found would
 * make a verifier state of its own for the rest of the program. */
__attribute__((noinline)) int find_range(struct synstage_ports *ports, __u32 port)
{
	if (!ports)
		return -1;
	__u32 nr = ports->n;
#pragma unroll
	for (int i = 0; i < SYNSTAGE_MAX_RANGES; i++)
		if (i < nr && ports->r[i].lo <= port && port <= ports->r[i].hi)
			return i;
	return -1;
}

/* mask_prefix keeps the first bits bits of the len-byte address in a and
 * clears the rest. A global function, for the reason find_range is. */
__attribute__((noinline)) int mask_prefix(struct synstage_limit_key *k, __u32 bits, __u32 len)
{
	if (!k)
		return 0;
#pragma unroll
	for (__u32 i = 0; i < 16; i++) {
		if (i >= len || bits >= 8 * (i + 1))
			continue;
		if (bits <= 8 * i)
			k->prefix[i] = 0;
		else
			k->prefix[i] &= (__u8)(0xff << (8 - (bits - 8 * i)));
	}
	return 0;
}

/* mix is the engine's multiply-fold (the high and low words of the 128-bit
 * product, XORed), from 32-bit halves. */
static __always_inline __u64 mix(__u64 a, __u64 b)
{
	__u64 al = (__u32)a, ah = a >> 32, bl = (__u32)b, bh = b >> 32;
	__u64 p0 = al * bl, p1 = al * bh, p2 = ah * bl, p3 = ah * bh;
	__u64 mid = (p0 >> 32) + (__u32)p1 + (__u32)p2;
	__u64 lo = (__u32)p0 | mid << 32;
	__u64 hi = p3 + (p1 >> 32) + (p2 >> 32) + (mid >> 32);
	return hi ^ lo;
}

/* source_allow takes a token from the bucket of k (a limiter id and a
 * masked prefix) at now and reports whether there was one: the engine's
 * limit.PerSource.Allow, in a table of its own. A slot belongs to the
 * prefix whose 63-bit keyed hash it holds (the engine compares the prefix
 * itself; two prefixes of one hash are as likely as a guessed key).
 *
 * Unlike the engine's table, which sees only the SYNs that reach it, this
 * one sees the whole spoofed flood, whose sources would take over every
 * slot many times a second: a new prefix takes a slot over (with a full
 * bucket, as in the engine) only when the owner's bucket is full again
 * (its arrival time not ahead of now). A source over its limit keeps its
 * slot, and a prefix that hashes to it is charged to its bucket (one
 * prefix in as many as there are slots). Lock-free: the owner changes
 * with a compare-and-swap, and a SYN that loses that race is charged to
 * the slot's bucket, whoever owns it by then. A global function, verified
 * once. */
__attribute__((noinline)) int source_allow(struct synstage_limit_key *k, __u64 now, __u64 interval, __u64 tau)
{
	__u32 zero = 0;
	if (!k)
		return 1;
	struct synstage_limit_config *cfg = bpf_map_lookup_elem(&limit_config, &zero);
	if (!cfg)
		return 1;
	__u64 k0 = le64(&k->prefix[0]), k1 = le64(&k->prefix[8]);
	__u64 h = mix(mix(k0 ^ cfg->seed[0], k1 ^ cfg->seed[1]), cfg->seed[2] ^ (k->family | (__u64)k->limit_id << 8));
	__u32 i = (__u32)h & cfg->mask;
	struct limit_slot *sl = bpf_map_lookup_elem(&source_limits, &i);
	if (!sl)
		return 1;
	__u64 tag = h | 1;
	__u64 cur = *(volatile __u64 *)&sl->tag;
	if (cur != tag && *(volatile __u64 *)&sl->tat <= now &&
	    __sync_val_compare_and_swap(&sl->tag, cur, tag) == cur) {
		/* A new prefix takes the slot over with a full bucket: this
		 * SYN's token is the first. */
		*(volatile __u64 *)&sl->tat = now + interval;
		return 1;
	}
	return gcra(&sl->tat, now, interval, tau);
}

/* flow_hash sets fk->fp to the engine's tuple hash (flowTable.hash) with
 * the seed of the shared SYN cache's configuration, and returns 0, or -1
 * when no engine shares its memory yet. A global function, verified
 * once. */
__attribute__((noinline)) int flow_hash(struct flowkey *fk)
{
	__u32 zero = 0;
	if (!fk)
		return -1;
	struct synstage_cache_config *cfg = bpf_map_lookup_elem(&cache_config, &zero);
	if (!cfg || !cfg->enabled)
		return -1;
	const __u64 *k = fk->w;
	const __u64 *s = cfg->seed;
	__u64 h = mix(k[0] ^ s[0], k[1] ^ s[1]) ^ mix(k[2] ^ s[2], k[3] ^ s[3]) ^ mix(k[4] ^ s[0], s[1] ^ s[2]);
	fk->fp = mix(h, s[3]);
	return 0;
}

/* flow_live reports whether the engine's flow table may hold the tuple of
 * hash fp (gateway flowTable.mayHave): a slot of its bucket carries its
 * tag. A false positive (another tuple with the same 30 tag bits in the
 * bucket) only sends the SYN to the engine. A global function, verified
 * once. */
__attribute__((noinline)) int flow_live(struct flowkey *fk)
{
	__u32 zero = 0;
	if (!fk)
		return 0;
	struct synstage_cache_config *cfg = bpf_map_lookup_elem(&cache_config, &zero);
	if (!cfg || !cfg->enabled || !cfg->flows)
		return 0;
	__u64 fp = fk->fp;
	__u32 i = (__u32)fp & cfg->flow_mask;
	__u32 tag = ((__u32)(fp >> 32) & ~2U) | 1;
	struct flow_bucket *b = bpf_map_lookup_elem(&flow_tags, &i);
	if (!b)
		return 0;
#pragma unroll
	for (__u32 j = 0; j < FLOW_BUCKET_SIZE; j++)
		if ((*(volatile __u32 *)&b->tag[j] & ~2U) == tag)
			return 1;
	return 0;
}

/* cache_put writes e into the shared SYN cache under the tag of its cookie
 * (the engine's synCache: bucket from the cookie's MAC bits; for an entry
 * to pin, the slot of the same SYN's entry if there is one; else the next
 * slot of the bucket's ring that holds no pinned entry) and pins it when pin is set
 * (tag<<32 | now_ms, the engine's pins). The slot is claimed by making its
 * sequence odd, from the word the scan read, and published by making it
 * even with the tag; a slot changed or being written meanwhile is left
 * alone. It returns 1 when the entry was written, 0 when not (no engine
 * shares the memory, every slot pinned, or a lost race): a client without
 * timestamps is then offered none of the options only an entry keeps.
 * e->fp is filled by flow_hash. A global function, verified once. */

__attribute__((noinline)) int cache_put(struct synstage_cache_entry *e, struct flowkey *fk, __u32 now_ms, __u32 pin)
{
	__u32 zero = 0;
	if (!e || !fk)
		return 0;
	struct synstage_cache_config *cfg = bpf_map_lookup_elem(&cache_config, &zero);
	if (!cfg || !cfg->enabled || cfg->per == 0 || cfg->per > SYNSTAGE_MAX_CACHE_PER)
		return 0;
	e->fp = fk->fp;

	__u32 bucket = (e->cookie >> 4) & cfg->mask; /* cookies.MAC */
	__u64 *head = bpf_map_lookup_elem(&cache_heads, &bucket);
	if (!head)
		return 0;
	__u64 pos = __sync_fetch_and_add(head, 1);
	__u32 per = cfg->per;
	__u32 pin_ms = cfg->pin_ms;
	/* The entry of a retransmitted SYN to be pinned (same cookie, same
	 * tuple) is written again in its slot, so that its SYN-ACK agrees
	 * with the first one; else the victim (gateway synCache.victim): the
	 * ring's next slot, passing over entries pinned less than pin_ms
	 * ago. */
	__u32 mytag = e->cookie | 1;
	__u32 slot = 0, victim = 0;
	__u64 old = 0, victim_w = 0; /* slot words as scanned: claimed only unchanged */
	int own = 0, found = 0;
	for (__u32 j = 0; j < SYNSTAGE_MAX_CACHE_PER; j++) {
		if (j >= per)
			break;
		__u32 k = bucket * per + (__u32)((pos + j) % per);
		__u64 *wk = bpf_map_lookup_elem(&cache_slots, &k);
		__u64 *pk = bpf_map_lookup_elem(&cache_pins, &k);
		if (!wk || !pk)
			return 0;
		__u64 wv = *(volatile __u64 *)wk;
		__u32 tag = (__u32)wv;
		if (pin && tag == mytag && !(wv & (1ULL << 32))) {
			struct synstage_cache_entry *ek = bpf_map_lookup_elem(&cache_entries, &k);
			if (ek && ek->fp == e->fp) {
				slot = k;
				old = wv;
				own = 1;
				break;
			}
		}
		__u64 pn = *(volatile __u64 *)pk;
		if (tag != 0 && pn != 0 && (__u32)(pn >> 32) == tag && now_ms - (__u32)pn < pin_ms)
			continue;
		if (!found) {
			victim = k;
			victim_w = wv;
			found = 1;
			/* Only a pinned entry must agree with a retransmission's
			 * SYN-ACK: the rest need not look further. */
			if (!pin)
				break;
		}
	}
	if (!own) {
		if (!found)
			return 0;
		slot = victim;
		old = victim_w;
	}
	__u64 *w = bpf_map_lookup_elem(&cache_slots, &slot);
	if (!w)
		return 0;
	struct synstage_cache_entry *dst = bpf_map_lookup_elem(&cache_entries, &slot);
	__u64 *pp = bpf_map_lookup_elem(&cache_pins, &slot);
	if (!dst || !pp)
		return 0;
	if (old & (1ULL << 32))
		return 0;
	__u64 claimed = (old & ~0xffffffffULL) + (1ULL << 32);
	if (__sync_val_compare_and_swap(w, old, claimed) != old)
		return 0;
	__builtin_memcpy(dst, e, sizeof(*e));
	*(volatile __u64 *)pp = pin ? ((__u64)mytag << 32 | (now_ms ? now_ms : 1)) : 0;
	__sync_fetch_and_add(w, (1ULL << 32) | mytag);
	return 1;
}

static __always_inline int load(void *ctx, int xdp, __u32 off, void *to, __u32 len)
{
	if (xdp)
		return bpf_xdp_load_bytes(ctx, off, to, len);
	return bpf_skb_load_bytes(ctx, off, to, len);
}

/* trie_lookup looks key up in the inner map of generation gen of outer. */
static __always_inline void *trie_lookup(void *outer, __u32 gen, struct synstage_lpm_key *key)
{
	void *inner = bpf_map_lookup_elem(outer, &gen);
	if (!inner)
		return 0;
	return bpf_map_lookup_elem(inner, key);
}

/* martian reports a source the stage must never answer: the kernel drops
 * such packets (ip_rcv, ip_route_input; ipv6_rcv) and a SYN-ACK to it would
 * be a reflection. */
static __always_inline int martian(const __u8 *a, int v6)
{
	if (!v6)
		return a[0] == 0 || a[0] == 127 || a[0] >= 224; /* 0/8, 127/8, 224/4, 240/4 */
	if (a[0] == 0xff) /* multicast */
		return 1;
	__u64 hi = le64(a), lo = le64(a + 8);
	if (hi == 0 && (lo == 0 || lo == 1ULL << 56)) /* ::, ::1 */
		return 1;
	if (hi == 0 && le32(a + 8) == bpf_htonl(0xffff)) /* ::ffff:0:0/96 */
		return 1;
	return 0;
}

/* drop counts a drop for counter c and keeps c for the entry point, which
 * may sample the packet (sample). */
static __always_inline int drop(struct scratch *sc, __u32 c)
{
	count(c);
	sc->drop = c;
	return ACT_DROP;
}

/* synstage decides what happens to one frame. pktlen is its length,
 * host says it was addressed to this host. The SYN-ACK, when there is one,
 * is left in *o with its length in *olen. */
static __always_inline int synstage(void *ctx, int xdp, __u32 pktlen, int host,
				    struct scratch *sc, __u32 *olen)
{
	struct pkt *p = &sc->p;
	struct out *o = &sc->o;
	if (pktlen < 14 + 40 || load(ctx, xdp, 0, p->eth, 14) < 0) {
		count(SYNSTAGE_PASS_UNGUARDED);
		return ACT_PASS;
	}
	__u16 proto = be16(&p->eth[12]);
	__u32 iplen = pktlen - 14;
	int v6;
	__u32 l3; /* IP header length */
	if (proto == 0x0800) {
		v6 = 0;
		l3 = 20;
		if (load(ctx, xdp, 14, p->ip, 40) < 0) {
			count(SYNSTAGE_PASS_UNPARSED);
			return ACT_PASS;
		}
		/* IPv4 with options, or not version 4: the stack's business. */
		if (p->ip[0] != 0x45) {
			count(SYNSTAGE_PASS_UNPARSED);
			return ACT_PASS;
		}
		/* A fragment (RFC 791 §3.2) carries no ports to look up. */
		if ((be16(&p->ip[6]) & 0x3fff) != 0) {
			count(SYNSTAGE_PASS_UNPARSED);
			return ACT_PASS;
		}
		if (p->ip[9] != 6) {
			count(SYNSTAGE_PASS_UNGUARDED);
			return ACT_PASS;
		}
		__builtin_memcpy(p->tcp, &p->ip[20], 20);
	} else if (proto == 0x86DD) {
		v6 = 1;
		l3 = 40;
		if (pktlen < 14 + 60 || load(ctx, xdp, 14, p->ip, 40) < 0 ||
		    load(ctx, xdp, 14 + 40, p->tcp, 20) < 0) {
			count(SYNSTAGE_PASS_UNPARSED);
			return ACT_PASS;
		}
		if (p->ip[0] >> 4 != 6) {
			count(SYNSTAGE_PASS_UNPARSED);
			return ACT_PASS;
		}
		/* Extension headers (RFC 8200 §4) are left to the engine. */
		__u8 nh = p->ip[6];
		if (nh != 6) {
			count(nh == 0 || nh == 43 || nh == 44 || nh == 50 || nh == 51 || nh == 60 || nh == 135 || nh == 139 || nh == 140 ?
			      SYNSTAGE_PASS_UNPARSED : SYNSTAGE_PASS_UNGUARDED);
			return ACT_PASS;
		}
	} else {
		/* VLAN tags, ARP, anything else. */
		count(proto == 0x8100 || proto == 0x88a8 ? SYNSTAGE_PASS_UNPARSED : SYNSTAGE_PASS_UNGUARDED);
		return ACT_PASS;
	}

	__u32 zero = 0;
	struct synstage_state *st = bpf_map_lookup_elem(&state, &zero);
	if (!st) {
		count(SYNSTAGE_PASS_UNGUARDED);
		return ACT_PASS;
	}
	__u32 gen = st->gen & 1;

	/* Is the destination a guarded service? */
	const __u8 *src = v6 ? &p->ip[8] : &p->ip[12];
	const __u8 *dst = v6 ? &p->ip[24] : &p->ip[16];
	struct synstage_lpm_key k = {};
	k.family = v6 ? 6 : 4;
	if (v6) {
		__builtin_memcpy(k.addr, dst, 16);
		k.prefixlen = 8 + 128;
	} else {
		__builtin_memcpy(k.addr, dst, 4);
		k.prefixlen = 8 + 32;
	}
	struct synstage_ports *ports = trie_lookup(&services, gen, &k);
	if (!ports) {
		count(SYNSTAGE_PASS_UNGUARDED);
		return ACT_PASS;
	}
	__u32 nr = ports->n;
	if (nr > SYNSTAGE_MAX_RANGES) {
		count(SYNSTAGE_PASS_TOO_MANY_RANGES);
		return ACT_PASS;
	}
	__u16 sport = be16(&p->tcp[0]), dport = be16(&p->tcp[2]);
	int ri = find_range(ports, dport);
	if (ri < 0 || ri >= SYNSTAGE_MAX_RANGES) {
		count(SYNSTAGE_PASS_UNGUARDED);
		return ACT_PASS;
	}
	struct synstage_range *svc = &ports->r[ri];
	if (!host) {
		count(SYNSTAGE_PASS_OTHER_HOST);
		return ACT_PASS;
	}
	struct synstage_policy *pol = bpf_map_lookup_elem(&policy, &gen);
	if (!pol) {
		count(SYNSTAGE_PASS_UNGUARDED);
		return ACT_PASS;
	}

	/* The engine's early flag check (Worker.dropInvalidFlagsEarly): flags
	 * invalid whichever way the segment goes are dropped before the rest
	 * of the headers are looked at. */
	__u8 flags = p->tcp[13];
	__u32 reason = check_flags(flags, 0);
	if (reason != SYNSTAGE_REASON_OK && check_flags(flags, 1) != SYNSTAGE_REASON_OK &&
	    !pol->invalid_flags_count) {
		return drop(sc, reason);
	}

	/* header.Parse, in its order. */
	__u32 tl;
	if (v6) {
		tl = 40 + be16(&p->ip[4]); /* RFC 8200 §3 */
		if (tl > iplen) {
			return drop(sc, SYNSTAGE_REASON_BAD_TOTAL_LENGTH);
		}
	} else {
		tl = be16(&p->ip[2]); /* RFC 791 §3.1 */
		if (tl < 20 || tl > iplen) {
			return drop(sc, SYNSTAGE_REASON_BAD_TOTAL_LENGTH);
		}
	}
	if (tl < l3 + 20) {
		return drop(sc, SYNSTAGE_REASON_TRUNCATED);
	}
	__u32 doff = (p->tcp[12] >> 4) * 4;
	if (doff < 20 || doff > tl - l3) {
		return drop(sc, SYNSTAGE_REASON_BAD_DATA_OFFSET);
	}
	volatile struct opts *vop = &p->op;
	vop->mss = vop->tsval = 0;
	vop->has_mss = vop->wscale = vop->has_wscale = vop->sack_ok = vop->has_ts = 0;
	__u32 optlen = doff - 20;
	if (optlen > 0) {
		if (optlen > 40 || load(ctx, xdp, 14 + l3 + 20, p->opt, optlen) < 0) {
			count(SYNSTAGE_PASS_UNPARSED);
			return ACT_PASS;
		}
		/* The two layouts of nearly every segment, as the engine's
		 * ParseOptions takes them first: NOP, NOP, timestamps (RFC 7323
		 * Appendix A), and a Linux SYN (MSS; SACK-permitted or two
		 * NOPs; timestamps; NOP, window scale). */
		__u32 w0 = be32(&p->opt[0]);
		if (optlen == 12 && w0 == 0x0101080a) {
			vop->has_ts = 1;
			vop->tsval = be32(&p->opt[4]);
		} else if (optlen == 20 && w0 >> 16 == 0x0204 &&
			   (be32(&p->opt[4]) == 0x0402080a || be32(&p->opt[4]) == 0x0101080a) &&
			   be32(&p->opt[16]) >> 8 == 0x010303) {
			__u8 ws = p->opt[19];
			vop->mss = w0 & 0xffff;
			vop->has_mss = 1;
			vop->sack_ok = p->opt[4] == 4;
			vop->has_ts = 1;
			vop->tsval = be32(&p->opt[8]);
			vop->wscale = ws > 14 ? 14 : ws;
			vop->has_wscale = 1;
		} else {
			reason = parse_options(optlen);
			if (reason != SYNSTAGE_REASON_OK) {
				return drop(sc, reason);
			}
		}
	}

	reason = check_flags(flags, 0);
	if (reason != SYNSTAGE_REASON_OK) {
		if (pol->invalid_flags_count) {
			count(SYNSTAGE_PASS_INVALID_COUNTED);
			return ACT_PASS;
		}
		return drop(sc, reason);
	}

	struct synstage_lpm_key sk = {};
	sk.family = k.family;
	if (v6) {
		__builtin_memcpy(sk.addr, src, 16);
		sk.prefixlen = 8 + 128;
	} else {
		__builtin_memcpy(sk.addr, src, 4);
		sk.prefixlen = 8 + 32;
	}
	if (pol->has_deny && trie_lookup(&deny, gen, &sk)) {
		return drop(sc, SYNSTAGE_DROP_DENIED);
	}
	switch (svc->mode) {
	case SYNSTAGE_MODE_PROXY:
		break;
	case SYNSTAGE_MODE_PASS:
		count(SYNSTAGE_PASS_MODE);
		return ACT_PASS;
	default:
		return drop(sc, SYNSTAGE_DROP_POLICY);
	}
	if (!(flags & F_SYN)) {
		count(SYNSTAGE_PASS_NOT_SYN);
		return ACT_PASS;
	}

	/* From here on the stage answers: nothing the kernel would drop. */
	if (martian(src, v6)) {
		count(SYNSTAGE_PASS_MARTIAN);
		return ACT_PASS;
	}
	if (!v6 && fold(sum32(p->ip, 20, 20)) != 0xffff) {
		count(SYNSTAGE_PASS_BAD_IP_CSUM);
		return ACT_PASS;
	}

	/* A SYN on the tuple of a flow the engine holds is the engine's: it
	 * answers it but replaces an established flow only when a valid ACK
	 * for the new ISN arrives (gateway Worker.syn), and it applies the
	 * limits itself. */
	struct flowkey *fk = &sc->fk;
	if (v6) {
		fk->w[0] = le64(src);
		fk->w[1] = le64(src + 8);
		fk->w[2] = le64(dst);
		fk->w[3] = le64(dst + 8);
	} else {
		fk->w[0] = le32(src);
		fk->w[1] = 0;
		fk->w[2] = le32(dst);
		fk->w[3] = 0;
	}
	fk->w[4] = (__u64)sport << 32 | (__u64)dport << 16 | (v6 ? 1 : 0);
	int shared = flow_hash(fk) == 0;
	if (shared && flow_live(fk)) {
		count(SYNSTAGE_PASS_LIVE_FLOW);
		return ACT_PASS;
	}

	/* Rate limits (gateway syn): per source prefix for the service unless
	 * the source is allowed, then the global SYN-ACK bound. */
	__u64 now = bpf_ktime_get_ns();
	if (svc->limit_id != 0) {
		struct synstage_limit_key lk = {};
		lk.limit_id = svc->limit_id;
		lk.family = k.family;
		if (v6)
			__builtin_memcpy(lk.prefix, src, 16);
		else
			__builtin_memcpy(lk.prefix, src, 4);
		mask_prefix(&lk, v6 ? svc->limit_prefix6 : svc->limit_prefix4, v6 ? 16 : 4);
		if (!source_allow(&lk, now, svc->limit_interval_ns, svc->limit_tau_ns) &&
		    !trie_lookup(&allow, gen, &sk)) {
			return drop(sc, SYNSTAGE_DROP_SYN_LIMITED);
		}
	}
	if (pol->synack_limit) {
		__u64 *tat = bpf_map_lookup_elem(&synack_tat, &zero);
		if (tat && !gcra(tat, now, pol->synack_interval_ns, pol->synack_tau_ns)) {
			return drop(sc, SYNSTAGE_DROP_SYNACK_LIMITED);
		}
	}

	/* The key of the current counter, written before it came into force. */
	__u64 c = st->counter;
	__u32 slot = c & 3;
	struct synstage_key *key = bpf_map_lookup_elem(&keys, &slot);
	if (!key || !(st->flags & SYNSTAGE_F_KEYS) || key->counter != c) {
		count(SYNSTAGE_PASS_NO_KEY);
		return ACT_PASS;
	}

	/* The options agreed (gateway Worker.syn). */
	__u32 isn = be32(&p->tcp[4]);
	struct opts op;
	op.mss = vop->mss;
	op.tsval = vop->tsval;
	op.has_mss = vop->has_mss;
	op.wscale = vop->wscale;
	op.has_wscale = vop->has_wscale;
	op.sack_ok = vop->sack_ok;
	op.has_ts = vop->has_ts;
	__u16 client_mss = op.has_mss ? op.mss : 0;
	int ws = -1, adv_ws = -1;
	if (op.has_wscale && svc->adv_wscale >= 0) {
		ws = op.wscale; /* clamped to 14 by parse_options */
		adv_ws = svc->adv_wscale > 14 ? 14 : svc->adv_wscale;
	}
	int sack_ok = op.sack_ok && (svc->adv & SYNSTAGE_ADV_SACK);
	int ts_ok = op.has_ts && (svc->adv & SYNSTAGE_ADV_TS);
	int ecn_ok = (flags & (F_ECE | F_CWR)) == (F_ECE | F_CWR) && (svc->adv & SYNSTAGE_ADV_ECN); /* RFC 3168 §6.1.1 */

	/* The cookie (cookies.Jar.ISN): MSS class, SipHash MAC, layout. */
	__u32 idx = 0;
	if (v6)
		idx = client_mss >= 8940 ? 3 : client_mss >= 1440 ? 2 : client_mss >= 1420 ? 1 : 0;
	else
		idx = client_mss >= 1460 ? 3 : client_mss >= 1440 ? 2 : client_mss >= 1300 ? 1 : 0;
	__u64 w[6];
	__u64 ports_word = (__u64)sport | (__u64)dport << 16 | (__u64)isn << 32;
	__u64 tail = (__u64)idx | (__u64)(v6 ? 6 : 4) << 8 | (c & ((1ULL << 40) - 1)) << 16;
	__u64 mac;
	if (v6) {
		w[0] = le64(src);
		w[1] = le64(src + 8);
		w[2] = le64(dst);
		w[3] = le64(dst + 8);
		w[4] = ports_word;
		w[5] = tail | (__u64)47 << 56;
		mac = siphash(key->k0, key->k1, w, 6);
	} else {
		w[0] = (__u64)le32(src) | (__u64)le32(dst) << 32;
		w[1] = ports_word;
		w[2] = tail | (__u64)23 << 56;
		mac = siphash(key->k0, key->k1, w, 3);
	}
	__u32 hi = (__u32)(mac >> 32) & 0xfffffff0;
	__u32 cookie = hi | ((idx << 2 | (__u32)(c & 3)) ^ hi >> 28);

	/* Our TSval (cookies.EncodeTS): the millisecond clock, its low six
	 * bits the client's window scale, SACK-permitted and ECN. */
	__u64 ms = key->ts_ms; /* Unix milliseconds, the engine's clock */
	if (!(st->flags & SYNSTAGE_F_FIXED_CLOCK) && now > key->ts_ns)
		ms += (now - key->ts_ns) / 1000000;
	__u32 our_ts = 0;
	if (ts_ok) {
		__u32 bits = ws >= 0 ? (__u32)ws : 0x0f;
		if (sack_ok)
			bits |= 0x10;
		if (ecn_ok)
			bits |= 0x20;
		our_ts = ((__u32)ms & ~0x3fU) | bits;
	}

	/* The client's options go into the shared SYN cache, as the engine's
	 * Worker.syn writes them. */
	struct synstage_cache_entry *ce = &sc->ce;
	ce->fp = 0;
	ce->client_isn = isn;
	ce->cookie = cookie;
	ce->our_ts = our_ts;
	ce->client_ts = op.tsval;
	ce->mss = client_mss;
	ce->ws = ws;
	ce->adv_ws = adv_ws;
	ce->sack = sack_ok;
	ce->ts = ts_ok;
	ce->ecn = ecn_ok;
	ce->pad = 0;
	/* Without timestamps, window scale, SACK and ECN live only in the
	 * cache entry: offered only with a pinned entry (kept until the
	 * cookie expires), none when no entry is written (gateway
	 * Worker.syn). */
	if (shared) {
		int pin = !ts_ok && (ws >= 0 || sack_ok || ecn_ok);
		if (!cache_put(ce, fk, (__u32)ms, pin) && !ts_ok) {
			ws = -1;
			adv_ws = -1;
			sack_ok = 0;
			ecn_ok = 0;
		}
	}

	/* The SYN-ACK (gateway buildSegment), sent as the server. */
	__u8 *b = o->b;
	__builtin_memcpy(b, &p->eth[6], 6);
	__builtin_memcpy(b + 6, &p->eth[0], 6);
	__builtin_memcpy(b + 12, &p->eth[12], 2);

	/* Options as Linux lays them out on a SYN (writeOptions). */
	__u8 *t = b + 14 + l3;
	__u8 *opt = t + 20;
	__u32 n = 0;
	__u16 adv_mss = v6 ? svc->adv_mss6 : svc->adv_mss4;
	if (adv_mss) {
		opt[0] = 2; opt[1] = 4;
		put16(opt + 2, adv_mss);
		n = 4;
	}
	if (ts_ok) {
		if (sack_ok) {
			opt[n] = 4; opt[n + 1] = 2;
		} else {
			opt[n] = 1; opt[n + 1] = 1;
		}
		opt[n + 2] = 8; opt[n + 3] = 10;
		put32(opt + n + 4, our_ts);
		put32(opt + n + 8, op.tsval);
		n += 12;
	} else if (sack_ok) {
		opt[n] = 1; opt[n + 1] = 1; opt[n + 2] = 4; opt[n + 3] = 2;
		n += 4;
	}
	if (adv_ws >= 0) {
		opt[n] = 1; opt[n + 1] = 3; opt[n + 2] = 3; opt[n + 3] = adv_ws;
		n += 4;
	}
	__u32 thl = 20 + n;
	__u8 fl = F_SYN | F_ACK | (ecn_ok ? F_ECE : 0);
	__builtin_memcpy(t, &p->tcp[2], 2); /* source port: the service's */
	__builtin_memcpy(t + 2, &p->tcp[0], 2);
	put32(t + 4, cookie);
	put32(t + 8, isn + 1);
	t[12] = (thl / 4) << 4;
	t[13] = fl;
	put16(t + 14, svc->adv_window);
	put32(t + 16, 0); /* checksum, urgent pointer */

	__u8 *ip = b + 14;
	__u64 sum;
	if (v6) {
		put32(ip, 6U << 28); /* traffic class 0, flow label 0 */
		put16(ip + 4, thl);
		ip[6] = 6;
		ip[7] = 64;
		__builtin_memcpy(ip + 8, dst, 16);
		__builtin_memcpy(ip + 24, src, 16);
		/* RFC 8200 §8.1 pseudo-header: addresses, length, next header. */
		sum = sum32(ip + 8, 32, 32);
		sum += bpf_htonl(thl) + bpf_htonl(6);
	} else {
		__u32 total = 20 + thl;
		ip[0] = 0x45;
		ip[1] = 0;
		put16(ip + 2, total);
		put32(ip + 4, 0x00004000); /* ID 0, DF (RFC 791 §3.1) */
		ip[8] = 64;
		ip[9] = 6;
		put16(ip + 10, 0);
		__builtin_memcpy(ip + 12, dst, 4);
		__builtin_memcpy(ip + 16, src, 4);
		__u16 ipsum = ~fold(sum32(ip, 20, 20));
		__builtin_memcpy(ip + 10, &ipsum, 2);
		sum = sum32(ip + 12, 8, 8);
		sum += bpf_htons(thl) + bpf_htons(6);
	}
	sum += sum32(t, thl & 0x3c, 60);
	__u16 tsum = ~fold(sum);
	__builtin_memcpy(t + 16, &tsum, 2);

	*olen = 14 + l3 + thl;
	return ACT_TX;
}

/* sample copies the first bytes of a dropped frame of len bytes into the
 * samples ring buffer with the counter of its drop, when sampling is on
 * and its token bucket allows. */
static __always_inline void sample(void *ctx, int xdp, __u32 len, __u32 c)
{
	__u32 zero = 0;
	struct synstage_sample_config *cfg = bpf_map_lookup_elem(&sample_config, &zero);
	if (!cfg || !cfg->interval_ns)
		return;
	if (!gcra(&cfg->tat, bpf_ktime_get_ns(), cfg->interval_ns, cfg->tau_ns))
		return;
	struct synstage_sample *r = bpf_ringbuf_reserve(&samples, sizeof(*r), 0);
	if (!r)
		return;
	__u32 n = len < SYNSTAGE_SNAPLEN ? len : SYNSTAGE_SNAPLEN;
	r->counter = c;
	r->len = len;
	r->caplen = 0;
	if (n >= 14) {
		n &= 0x1ff;
		if (n > SYNSTAGE_SNAPLEN)
			n = SYNSTAGE_SNAPLEN;
		if (load(ctx, xdp, 0, r->data, n) == 0)
			r->caplen = n;
	}
	bpf_ringbuf_submit(r, 0);
}

SEC("tc")
int synstage_tc(struct __sk_buff *skb)
{
	__u32 zero = 0, olen = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return TC_ACT_OK;
	if (skb->vlan_present) {
		count(SYNSTAGE_PASS_UNPARSED);
		return TC_ACT_OK;
	}
	switch (synstage(skb, 0, skb->len, skb->pkt_type == 0 /* PACKET_HOST */, s, &olen)) {
	case ACT_DROP:
		sample(skb, 0, skb->len, s->drop);
		return TC_ACT_SHOT;
	case ACT_TX:
		break;
	default:
		return TC_ACT_OK;
	}
	/* A SYN-ACK as long as the SYN (the usual Linux SYN) needs no
	 * resizing. */
	if (olen > sizeof(s->o.b) || olen < 14 + 40 ||
	    (olen != skb->len && bpf_skb_change_tail(skb, olen, 0) < 0) ||
	    bpf_skb_store_bytes(skb, 0, s->o.b, olen, 0) < 0) {
		/* Nothing was changed unless the store failed half way, which
		 * leaves a packet the stack's checksums reject. */
		count(SYNSTAGE_PASS_ERROR);
		return TC_ACT_OK;
	}
	count(SYNSTAGE_ANSWERED);
	__u32 ifx = skb->ifindex, pk = ifx & 255;
	__u32 *peer = bpf_map_lookup_elem(&peer_ifs, &pk);
	if (peer && *peer == ifx)
		return bpf_redirect_peer(ifx, 0);
	return bpf_redirect(ifx, 0);
}

SEC("xdp")
int synstage_xdp(struct xdp_md *ctx)
{
	__u32 zero = 0, olen = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return XDP_PASS;
	__u32 len = bpf_xdp_get_buff_len(ctx);
	switch (synstage(ctx, 1, len, 1, s, &olen)) {
	case ACT_DROP:
		sample(ctx, 1, len, s->drop);
		return XDP_DROP;
	case ACT_TX:
		break;
	default:
		return XDP_PASS;
	}
	if (olen > sizeof(s->o.b) || olen < 14 + 40 ||
	    bpf_xdp_adjust_tail(ctx, (int)olen - (int)len) < 0 ||
	    bpf_xdp_store_bytes(ctx, 0, s->o.b, olen) < 0) {
		count(SYNSTAGE_PASS_ERROR);
		return XDP_PASS;
	}
	count(SYNSTAGE_ANSWERED);
	return XDP_TX;
}
