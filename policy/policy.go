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

// Service is one guarded service, immutable once in a Policy.
type Service struct {
	Name      string
	ID        int // index in Policy.Services, stable within one Policy
	Mode      Mode
	Prefixes  []netip.Prefix
	PortLo    uint16
	PortHi    uint16
	Advertise Advertise
}

// Policy is a validated policy. It is immutable and safe for concurrent use.
type Policy struct {
	Services []*Service
	Tables   Tables
}

// Tables are the sizes and timeouts of the engine's fixed tables.
type Tables struct {
	CacheBuckets     int           // SYN cache buckets (power of two)
	CacheEntries     int           // entries per bucket
	Flows            int           // flow table capacity
	HandshakeTimeout time.Duration // flow waiting for the server's SYN-ACK
	IdleTimeout      time.Duration // established flow without packets
	Linger           time.Duration // after FIN both ways or RST
	CookiePeriod     time.Duration
}

// Lookup returns the service guarding addr:port, or nil. It does not allocate.
func (p *Policy) Lookup(addr netip.Addr, port uint16) *Service { panic("todo") }
