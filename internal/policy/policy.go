package policy

import (
	"net/netip"
	"time"
)

// Mode is what synwall does with a service's traffic. The zero value is
// invalid.
type Mode uint8

const (
	ModeInvalid Mode = iota
	ModeProxy        // SYN proxy: answer SYNs with cookies, admit completed handshakes
	ModePass         // flag sanitation only; SYNs go straight to the server
	ModeDrop         // drop all of it
)

// String returns the policy-file spelling of m.
func (m Mode) String() string {
	switch m {
	case ModeProxy:
		return "proxy"
	case ModePass:
		return "pass"
	case ModeDrop:
		return "drop"
	}
	return "invalid"
}

// InvalidFlags is what happens to guarded packets with an invalid TCP flag
// combination. The zero value is invalid.
type InvalidFlags uint8

const (
	InvalidFlagsInvalid InvalidFlags = iota
	InvalidFlagsDrop                 // drop and count them (default)
	InvalidFlagsCount                // count them and let them through
)

// String returns the policy-file spelling of f.
func (f InvalidFlags) String() string {
	switch f {
	case InvalidFlagsDrop:
		return "drop"
	case InvalidFlagsCount:
		return "count"
	}
	return "invalid"
}

// Advertise is what synwall's SYN-ACK says on the server's behalf.
type Advertise struct {
	MSS4, MSS6 uint16 // MSS for IPv4 and IPv6 clients
	WScale     int8   // window scale offered; -1 offers none
	SACK       bool
	Timestamps bool
	ECN        bool
	Window     uint16 // SYN-ACK window (unscaled, RFC 7323 §2.2)
	Discover   bool   // learn the above from the backend (probe) at start and reload
}

// NoWScale is the Advertise.WScale value that offers no window-scale option.
const NoWScale int8 = -1

// PortRange is an inclusive range of TCP ports, 1 <= Lo <= Hi.
type PortRange struct{ Lo, Hi uint16 }

// Contains reports whether port is in r.
func (r PortRange) Contains(port uint16) bool { return r.Lo <= port && port <= r.Hi }

// Overlaps reports whether r and o share a port.
func (r PortRange) Overlaps(o PortRange) bool { return r.Lo <= o.Hi && o.Lo <= r.Hi }

// Service is one guarded service, immutable once in a Policy.
type Service struct {
	Name     string
	ID       int // index in Policy.Services, stable within one Policy
	Mode     Mode
	Prefixes []netip.Prefix
	// PortLo and PortHi are the lowest and highest guarded port. When Ports
	// is empty (a service built in Go) they are the one guarded range; in a
	// validated Policy they span Ports.
	PortLo uint16
	PortHi uint16
	// Ports are the guarded port ranges, sorted and disjoint. New fills it
	// from PortLo..PortHi when it is empty.
	Ports     []PortRange
	Advertise Advertise
	// Limit is the per-source SYN rate limit of this service. A zero Rate
	// means no per-source limit.
	Limit SourceLimit
}

// SourceLimit limits the SYNs a service accepts per source prefix: a token
// bucket of Rate tokens per second and Burst tokens, shared by all sources
// within the same /Prefix4 (IPv4) or /Prefix6 (IPv6).
type SourceLimit struct {
	Rate    Rate   // SYNs per second; 0 means no limit
	Burst   uint32 // bucket depth, 1..DefaultMaxBurst
	Prefix4 uint8  // 16..32
	Prefix6 uint8  // 48..128
}

// Limits are the gateway-wide rate limits.
type Limits struct {
	// SynAckRate bounds the SYN-ACKs synwall sends per second, over all
	// services, so that the gateway cannot be used as a reflector of more
	// than this. 0 means no limit.
	SynAckRate  Rate
	SynAckBurst uint32
}

// Cookies configures the SYN cookies.
type Cookies struct {
	// Period is how often the cookie counter ticks and the key rotates
	// (5s..5m). It equals Tables.CookiePeriod.
	Period time.Duration
	// KeyFile, when set, names a file holding the shared secret cookie keys
	// are derived from (read by the daemon). It must exist and must not be
	// readable by group or others.
	KeyFile string
}

// Queue configures the NFQUEUE side.
type Queue struct {
	Numbers []uint16 // NFQUEUE numbers, one worker each, ascending
	MaxLen  uint32   // kernel queue length (queue_maxlen)
	// SYNQueues is how many of Numbers, from the first, take the clients'
	// SYNs, spread over them by address hash; the others take everything
	// else, so that a SYN flood never delays established flows. Zero with
	// one queue: SYNs and the rest share it. By default half of the
	// queues (SYNQueuesHalf in a file).
	SYNQueues int
	// FailOpen makes the kernel accept packets the queue cannot take
	// (NfQaCfgFlagFailOpen). That lets a flood through when synwall falls
	// behind; the default, fail closed, drops them.
	FailOpen bool
}

// Policy is a validated policy. It is immutable and safe for concurrent use.
type Policy struct {
	Services     []*Service
	Tables       Tables
	Cookies      Cookies
	Limits       Limits
	Allow        []netip.Prefix // sources never rate limited
	Deny         []netip.Prefix // sources always dropped
	InvalidFlags InvalidFlags
	Queue        Queue
	// Name is the file the policy was read from, or "default" / "" when
	// built otherwise.
	Name string

	services prefixIndex // value: index into ports
	ports    [][]portEntry
	allow    prefixIndex
	deny     prefixIndex
}

// Tables are the sizes and timeouts of the engine's fixed tables.
type Tables struct {
	CacheBuckets     int           // SYN cache buckets (power of two, 1..1Mi; default 512)
	CacheEntries     int           // entries per bucket (1..64; default 30)
	Flows            int           // flow table capacity (1Ki..16Mi; default 256Ki)
	HandshakeTimeout time.Duration // flow waiting for the server's SYN-ACK (1s..1m; default 5s)
	IdleTimeout      time.Duration // established flow without packets (10s..24h; default 10m)
	Linger           time.Duration // after FIN both ways or RST (1s..5m; default 10s)
	CookiePeriod     time.Duration // same as Cookies.Period (5s..5m; default 30s)
}

// Allowed reports whether addr is in the allow list. It does not allocate.
func (p *Policy) Allowed(addr netip.Addr) bool { return p != nil && p.allow.contains(addr) }

// Denied reports whether addr is in the deny list. It does not allocate.
func (p *Policy) Denied(addr netip.Addr) bool { return p != nil && p.deny.contains(addr) }
