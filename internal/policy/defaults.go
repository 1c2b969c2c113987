package policy

import "time"

// This file is the one source of synwall's policy defaults. Parse starts
// every file from defaultPolicy and every service from defaultService; New
// starts from defaultPolicy too; the embedded default.yaml names only its
// service and takes everything else from here. deploy/policies/README.md
// documents the same values, and TestDocumentedDefaults fails when the two
// drift apart.

// Defaults and allowed ranges.
const (
	DefaultCacheBuckets     = 512             // SYN cache buckets (FreeBSD's default)
	DefaultCacheEntries     = 30              // entries per bucket (FreeBSD's default)
	DefaultFlows            = 256 << 10       // flow table capacity
	DefaultHandshakeTimeout = 5 * time.Second // server SYN-ACK wait
	DefaultIdleTimeout      = 10 * time.Minute
	DefaultLinger           = 10 * time.Second
	DefaultCookiePeriod     = 30 * time.Second

	MinCacheBuckets, MaxCacheBuckets         = 1, 1 << 20
	MinCacheEntries, MaxCacheEntries         = 1, 64
	MinFlows, MaxFlows                       = 1 << 10, 16 << 20
	MinHandshakeTimeout, MaxHandshakeTimeout = time.Second, time.Minute
	MinIdleTimeout, MaxIdleTimeout           = 10 * time.Second, 24 * time.Hour
	MinLinger, MaxLinger                     = time.Second, 5 * time.Minute
	MinCookiePeriod, MaxCookiePeriod         = 5 * time.Second, 5 * time.Minute

	DefaultMSS4, DefaultMSS6 = 1460, 1440
	MinMSS4, MinMSS6         = 536, 1220 // RFC 9293 §3.7.1; IPv6 minimum MTU 1280 (RFC 8200 §5) - 60
	MaxWScale                = 14        // RFC 7323 §2.3
	DefaultWScale            = 7
	DefaultWindow            = 65535

	DefaultSourceRate          = 1000 // SYNs per second per source prefix
	DefaultSourceBurst         = 2000
	DefaultPrefix4             = 32
	DefaultPrefix6             = 64
	MinPrefix4, MaxPrefix4     = 16, 32
	MinPrefix6, MaxPrefix6     = 48, 128
	MinBurst, MaxBurst         = 1, 16 << 20
	MaxRatePerSecond           = 100_000_000
	DefaultSynAckRate          = 200_000 // SYN-ACKs per second, all services
	DefaultSynAckBurst         = 50_000
	DefaultQueueMaxLen         = 4096
	MinQueueMaxLen, MaxQueueML = 16, 1 << 20
	MaxQueues                  = 64
	MaxServices                = 1 << 20
)

// DefaultQueueNumbers returns the default NFQUEUE numbers, 0 to 3: four
// workers, the first half (SYNQueuesHalf) taking the clients' SYNs spread
// by address hash, the others everything else, so that a SYN flood never
// delays established flows and, on NFQUEUE alone, no single worker carries
// the whole flood. The slice is the caller's.
func DefaultQueueNumbers() []uint16 { return []uint16{0, 1, 2, 3} }

// SYNQueuesHalf (`half` in a file, the default) gives the clients' SYNs
// half of the queues, rounded down: none of their own with one queue.
const SYNQueuesHalf = -1

// ResolveSYNQueues returns how many of n queues take the clients' SYNs for
// a setting v (SYNQueuesHalf or a count).
func ResolveSYNQueues(v, n int) int {
	if v == SYNQueuesHalf {
		return n / 2
	}
	return v
}

// defaultPolicy returns a Policy holding every default and no services:
// what a file with only version and services, or New with zero Tables,
// starts from.
func defaultPolicy() *Policy {
	p := &Policy{}
	fillTables(&p.Tables)
	p.Cookies.Period = p.Tables.CookiePeriod
	p.Limits = Limits{SynAckRate: PerSecond(DefaultSynAckRate), SynAckBurst: DefaultSynAckBurst}
	p.InvalidFlags = InvalidFlagsDrop
	p.Queue = Queue{Numbers: DefaultQueueNumbers(), MaxLen: DefaultQueueMaxLen, SYNQueues: SYNQueuesHalf}
	return p
}

// defaultService returns a service holding the defaults of a file.
func defaultService() *Service {
	return &Service{
		Mode: ModeProxy,
		Advertise: Advertise{
			MSS4: DefaultMSS4, MSS6: defaultMSS6(DefaultMSS4), WScale: DefaultWScale,
			SACK: true, Timestamps: true, Window: DefaultWindow,
		},
		Limit: defaultSourceLimit(),
	}
}

func defaultSourceLimit() SourceLimit {
	return SourceLimit{Rate: PerSecond(DefaultSourceRate), Burst: DefaultSourceBurst, Prefix4: DefaultPrefix4, Prefix6: DefaultPrefix6}
}

// defaultMSS6 is the IPv6 MSS that goes with an IPv4 MSS: 20 bytes less
// for the longer IPv6 header (RFC 8200 §3), at least MinMSS6.
func defaultMSS6(mss4 uint16) uint16 {
	return max(mss4-20, MinMSS6)
}

// fillTables sets every zero field of t to its default.
func fillTables(t *Tables) {
	fill := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	fillD := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	fill(&t.CacheBuckets, DefaultCacheBuckets)
	fill(&t.CacheEntries, DefaultCacheEntries)
	fill(&t.Flows, DefaultFlows)
	fillD(&t.HandshakeTimeout, DefaultHandshakeTimeout)
	fillD(&t.IdleTimeout, DefaultIdleTimeout)
	fillD(&t.Linger, DefaultLinger)
	fillD(&t.CookiePeriod, DefaultCookiePeriod)
}
