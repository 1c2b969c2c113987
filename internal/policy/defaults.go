package policy

import "time"

// Defaults and allowed ranges. deploy/policies/README.md lists the same.
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
