package conntrack

import (
	"errors"
	"fmt"
	"net/netip"
)

// Options are the TCP options both ends of a handed-off connection agreed
// on. A bit is set only when the client's SYN and the server's SYN-ACK both
// carried the option (RFC 7323 §2.2 for window scaling, §3.2 for
// timestamps; RFC 2018 §2 for SACK).
type Options uint8

const (
	OptWindowScale Options = 1 << iota // both sides sent a window scale option
	OptSACK                            // both sides sent SACK-permitted
	OptTimestamps                      // both sides sent timestamps
)

// String lists the set options, e.g. "wscale,sack,ts", or "none".
func (o Options) String() string {
	s := ""
	add := func(name string) {
		if s != "" {
			s += ","
		}
		s += name
	}
	if o&OptWindowScale != 0 {
		add("wscale")
	}
	if o&OptSACK != 0 {
		add("sack")
	}
	if o&OptTimestamps != 0 {
		add("ts")
	}
	if s == "" {
		return "none"
	}
	return s
}

// Flow is one proxied TCP connection whose handshake synwall completed: the
// client saw a SYN-ACK from synwall (sequence number CookieISN, TSval ITS),
// the server answered synwall's SYN with its own SYN-ACK (sequence number
// ServerISN, TSval ServerTSval). The kernel carries such a connection with
// two offsets: server→client sequence numbers move by CookieISN − ServerISN
// (and client→server acknowledgements and SACK blocks back by the same), and
// server→client TSvals move by −(ServerTSval − ITS) (client→server TSecrs
// forward by the same).
//
// Flow is a fixed-size value without pointers to the heap (netip.Addr keeps
// its zone in a static handle for unzoned addresses), so the engine side can
// fill one in place and Submit it without allocating.
type Flow struct {
	// Client is the connection's initiator, Server the guarded service. Both
	// must be of one family; IPv4-mapped IPv6 addresses are treated as IPv4.
	Client, Server netip.AddrPort
	// ClientWScale and ServerWScale are the window scale shift counts of
	// the client's SYN and of the SYN-ACK the client saw (RFC 7323 §2.3);
	// used only when Opts has OptWindowScale.
	ClientWScale, ServerWScale uint8
	// Opts are the options both sides agreed on.
	Opts Options
	// CookieISN is the sequence number of synwall's SYN-ACK to the client;
	// ServerISN that of the server's SYN-ACK.
	CookieISN, ServerISN uint32
	// ITS is the TSval of synwall's SYN-ACK to the client, ServerTSval the
	// TSval of the server's SYN-ACK. Used only with OptTimestamps.
	ITS, ServerTSval uint32
	// Token is the caller's own reference to the flow, handed back
	// unchanged in the Result.
	Token uint64
}

// SeqOffset is what the kernel adds to the sequence numbers of
// server→client segments (and subtracts from client→server
// acknowledgements and SACK blocks): CookieISN − ServerISN, modulo 2^32.
func (f *Flow) SeqOffset() uint32 { return f.CookieISN - f.ServerISN }

// TSOffset is what the kernel subtracts from server→client TSvals (and adds
// to client→server TSecrs): ServerTSval − ITS, modulo 2^32, or 0 without
// timestamps.
func (f *Flow) TSOffset() uint32 {
	if f.Opts&OptTimestamps == 0 {
		return 0
	}
	return f.ServerTSval - f.ITS
}

// IPv6 reports whether the flow's addresses are IPv6 (not IPv4-mapped).
func (f *Flow) IPv6() bool { return !f.Client.Addr().Unmap().Is4() }

// String names the flow for logs: "198.18.1.2:40000->198.18.3.2:80".
func (f *Flow) String() string {
	return fmt.Sprintf("%s->%s", addrPort(f.Client), addrPort(f.Server))
}

func addrPort(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// Errors of Flow.Validate.
var (
	ErrFamily = errors.New("conntrack: client and server must both be valid addresses of one family")
	ErrPort   = errors.New("conntrack: ports must be non-zero")
	ErrWScale = errors.New("conntrack: window scale above 14 (RFC 7323 §2.3)")
	ErrZone   = errors.New("conntrack: addresses with a zone cannot be handed off")
)

// maxWScale is the largest shift count RFC 7323 §2.3 allows.
const maxWScale = 14

// Validate reports why the kernel could not carry f, or nil.
func (f *Flow) Validate() error {
	c, s := f.Client.Addr(), f.Server.Addr()
	if !c.IsValid() || !s.IsValid() || c.Unmap().Is4() != s.Unmap().Is4() {
		return ErrFamily
	}
	if c.Zone() != "" || s.Zone() != "" {
		return ErrZone
	}
	if f.Client.Port() == 0 || f.Server.Port() == 0 {
		return ErrPort
	}
	if f.Opts&OptWindowScale != 0 && (f.ClientWScale > maxWScale || f.ServerWScale > maxWScale) {
		return ErrWScale
	}
	return nil
}

// TCPState is conntrack's TCP state (enum tcp_conntrack in
// include/uapi/linux/netfilter/nf_conntrack_tcp.h). Zero (NONE) is not a
// state an entry is ever in.
type TCPState uint8

const (
	StateNone        TCPState = iota // TCP_CONNTRACK_NONE
	StateSynSent                     // TCP_CONNTRACK_SYN_SENT
	StateSynRecv                     // TCP_CONNTRACK_SYN_RECV
	StateEstablished                 // TCP_CONNTRACK_ESTABLISHED
	StateFinWait                     // TCP_CONNTRACK_FIN_WAIT
	StateCloseWait                   // TCP_CONNTRACK_CLOSE_WAIT
	StateLastAck                     // TCP_CONNTRACK_LAST_ACK
	StateTimeWait                    // TCP_CONNTRACK_TIME_WAIT
	StateClose                       // TCP_CONNTRACK_CLOSE
	StateSynSent2                    // TCP_CONNTRACK_SYN_SENT2
)

var stateNames = [...]string{
	StateNone: "none", StateSynSent: "syn_sent", StateSynRecv: "syn_recv",
	StateEstablished: "established", StateFinWait: "fin_wait",
	StateCloseWait: "close_wait", StateLastAck: "last_ack",
	StateTimeWait: "time_wait", StateClose: "close", StateSynSent2: "syn_sent2",
}

// String returns conntrack's name of the state in lower case.
func (s TCPState) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Stale reports whether an entry in state s belongs to a connection that has
// ended (TIME_WAIT or CLOSE): a new handshake on its tuple may replace it.
func (s TCPState) Stale() bool { return s == StateTimeWait || s == StateClose }
