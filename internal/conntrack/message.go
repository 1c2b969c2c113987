package conntrack

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// ctnetlink wire format, from include/uapi/linux/netlink.h,
// include/uapi/linux/netfilter/nfnetlink.h, nfnetlink_conntrack.h,
// nf_conntrack_common.h and nf_conntrack_tcp.h. Netlink and attribute
// headers are in host byte order; ctnetlink attribute values are big
// endian. Defined here rather than taken from x/sys/unix so that the codec
// builds and is tested on every OS.
const (
	nlmsgHdrLen = 16 // struct nlmsghdr
	nfgenLen    = 4  // struct nfgenmsg
	nlaHdrLen   = 4  // struct nlattr
	nlaTypeMask = 0x3fff
	nlaFNested  = 0x8000

	nlmsgError = 0x2 // NLMSG_ERROR
	nlmsgDone  = 0x3 // NLMSG_DONE

	nlmFRequest = 0x001 // NLM_F_REQUEST
	nlmFAck     = 0x004 // NLM_F_ACK
	nlmFDump    = 0x300 // NLM_F_ROOT|NLM_F_MATCH
	nlmFExcl    = 0x200 // NLM_F_EXCL (on a NEW request)
	nlmFCreate  = 0x400 // NLM_F_CREATE

	nfnlSubsysCTNetlink = 1

	ipctnlMsgCtNew    = 0
	ipctnlMsgCtGet    = 1
	ipctnlMsgCtDelete = 2

	afInet  = 2
	afInet6 = 10

	ipprotoTCP = 6

	// enum ctattr_type
	ctaTupleOrig   = 1
	ctaTupleReply  = 2
	ctaStatus      = 3
	ctaProtoinfo   = 4
	ctaTimeout     = 7
	ctaMark        = 8
	ctaID          = 12
	ctaSeqAdjOrig  = 15
	ctaSeqAdjReply = 16
	ctaMarkMask    = 21
	ctaSynproxy    = 24

	// enum ctattr_tuple, ctattr_ip, ctattr_l4proto
	ctaTupleIP    = 1
	ctaTupleProto = 2
	ctaIPV4Src    = 1
	ctaIPV4Dst    = 2
	ctaIPV6Src    = 3
	ctaIPV6Dst    = 4
	ctaProtoNum   = 1
	ctaProtoSrc   = 2
	ctaProtoDst   = 3

	// enum ctattr_protoinfo, ctattr_protoinfo_tcp
	ctaProtoinfoTCP            = 1
	ctaProtoinfoTCPState       = 1
	ctaProtoinfoTCPWScaleOrig  = 2
	ctaProtoinfoTCPWScaleReply = 3
	ctaProtoinfoTCPFlagsOrig   = 4
	ctaProtoinfoTCPFlagsReply  = 5

	// enum ctattr_seqadj
	ctaSeqAdjCorrectionPos = 1
	ctaSeqAdjOffsetBefore  = 2
	ctaSeqAdjOffsetAfter   = 3

	// enum ctattr_synproxy
	ctaSynproxyISN   = 1
	ctaSynproxyITS   = 2
	ctaSynproxyTSOff = 3

	// enum ip_conntrack_status
	ipsSeenReply = 1 << 1
	ipsAssured   = 1 << 2
	ipsConfirmed = 1 << 3
	ipsSeqAdjust = 1 << 6

	// IP_CT_TCP_FLAG_* (struct nf_ct_tcp_flags, per direction)
	tcpFlagWindowScale = 0x01
	tcpFlagSACKPerm    = 0x02
	tcpFlagBeLiberal   = 0x08
)

// Errors of the codec. They are values, so decoding never allocates to
// report one.
var (
	errShortMessage  = errors.New("conntrack: netlink message shorter than its header")
	errMessageLength = errors.New("conntrack: netlink message length out of bounds")
	errAttribute     = errors.New("conntrack: malformed ctnetlink attribute")
)

// encoder appends netlink messages to a buffer. With enough capacity it
// never allocates.
type encoder struct{ b []byte }

func align4(n int) int { return (n + 3) &^ 3 }

// begin starts a ctnetlink message and returns its offset for end.
func (e *encoder) begin(msg uint16, flags uint16, seq uint32, family uint8) int {
	start := len(e.b)
	var h [nlmsgHdrLen + nfgenLen]byte
	binary.NativeEndian.PutUint16(h[4:], nfnlSubsysCTNetlink<<8|msg)
	binary.NativeEndian.PutUint16(h[6:], flags)
	binary.NativeEndian.PutUint32(h[8:], seq)
	// pid 0: the kernel fills in the sender's port id.
	h[16] = family
	h[17] = 0 // NFNETLINK_V0
	// res_id 0
	e.b = append(e.b, h[:]...)
	return start
}

// end sets the length of the message begun at start.
func (e *encoder) end(start int) {
	binary.NativeEndian.PutUint32(e.b[start:], uint32(len(e.b)-start))
}

// nest starts a nested attribute and returns its offset for endNest.
func (e *encoder) nest(typ uint16) int {
	off := len(e.b)
	e.b = append(e.b, 0, 0, 0, 0)
	binary.NativeEndian.PutUint16(e.b[off+2:], typ|nlaFNested)
	return off
}

func (e *encoder) endNest(off int) {
	binary.NativeEndian.PutUint16(e.b[off:], uint16(len(e.b)-off))
}

// attr appends an attribute of n payload bytes, padded to 4, and returns
// the payload to fill in.
func (e *encoder) attr(typ uint16, n int) []byte {
	off := len(e.b)
	total := align4(nlaHdrLen + n)
	for i := 0; i < total; i++ {
		e.b = append(e.b, 0)
	}
	binary.NativeEndian.PutUint16(e.b[off:], uint16(nlaHdrLen+n))
	binary.NativeEndian.PutUint16(e.b[off+2:], typ)
	return e.b[off+nlaHdrLen : off+nlaHdrLen+n]
}

func (e *encoder) u8(typ uint16, v uint8) { e.attr(typ, 1)[0] = v }
func (e *encoder) be16(typ uint16, v uint16) {
	binary.BigEndian.PutUint16(e.attr(typ, 2), v)
}
func (e *encoder) be32(typ uint16, v uint32) {
	binary.BigEndian.PutUint32(e.attr(typ, 4), v)
}

// tuple appends a CTA_TUPLE_* attribute for src → dst over TCP.
func (e *encoder) tuple(typ uint16, src, dst netip.AddrPort) {
	t := e.nest(typ)
	ip := e.nest(ctaTupleIP)
	s, d := src.Addr().Unmap(), dst.Addr().Unmap()
	if s.Is4() {
		a, b := s.As4(), d.As4()
		copy(e.attr(ctaIPV4Src, 4), a[:])
		copy(e.attr(ctaIPV4Dst, 4), b[:])
	} else {
		a, b := s.As16(), d.As16()
		copy(e.attr(ctaIPV6Src, 16), a[:])
		copy(e.attr(ctaIPV6Dst, 16), b[:])
	}
	e.endNest(ip)
	p := e.nest(ctaTupleProto)
	e.u8(ctaProtoNum, ipprotoTCP)
	e.be16(ctaProtoSrc, src.Port())
	e.be16(ctaProtoDst, dst.Port())
	e.endNest(p)
	e.endNest(t)
}

func family(f *Flow) uint8 {
	if f.IPv6() {
		return afInet6
	}
	return afInet
}

// tcpFlags is the struct nf_ct_tcp_flags value for one direction: the
// flags, then the mask of flags to change (all of them).
func tcpFlags(opts Options) [2]byte {
	fl := byte(tcpFlagBeLiberal)
	if opts&OptWindowScale != 0 {
		fl |= tcpFlagWindowScale
	}
	if opts&OptSACK != 0 {
		fl |= tcpFlagSACKPerm
	}
	return [2]byte{fl, 0xff}
}

// seqAdjPosition is the CTA_SEQADJ_CORRECTION_POS sent with the reply
// direction's offset. The kernel picks offset_after for a sequence number
// after the position and offset_before otherwise (nf_ct_seq_adjust); synwall
// sends the same offset for both, so the position is never consulted. It is
// still sent non-zero: github.com/ti-mo/conntrack treats a SequenceAdjust
// whose position, offset-before or offset-after is zero as absent, and
// whoever reads synwall's entries with it would otherwise not see the
// offset. The server's ISN itself is non-zero but for one value in 2^32.
func seqAdjPosition(f *Flow) uint32 {
	if f.ServerISN != 0 {
		return f.ServerISN
	}
	return 1
}

// Status bits sent with a create. ctnetlink refuses (EBUSY) a CTA_STATUS
// that differs from the new entry's status in an unchangeable bit
// (nf_ct_change_status_common: EXPECTED, CONFIRMED, DYING), and whether
// the entry is already CONFIRMED at that point depends on the kernel:
// ctnetlink_create_conntrack on 6.18 sets IPS_CONFIRMED before it applies
// CTA_STATUS (measured: SEEN_REPLY|ASSURED alone fails with EBUSY), other
// versions confirm only on insertion. The Handoff sends createStatus first
// and switches to createStatusUnconfirmed for good on EBUSY.
const (
	createStatus            = ipsSeenReply | ipsAssured | ipsConfirmed
	createStatusUnconfirmed = ipsSeenReply | ipsAssured
)

// appendCreate appends an IPCTNL_MSG_CT_NEW request that creates f's
// entry (NLM_F_CREATE|NLM_F_EXCL: an existing entry for the tuple is an
// error, EEXIST, never changed).
//
// The entry is what kernel SYNPROXY leaves behind once its handshake is
// done (nf_synproxy_core.c, the SYN_RECV case of ipv4_synproxy_hook):
//   - both tuples, TCP state ESTABLISHED, status SEEN_REPLY|ASSURED
//     (see createStatus for CONFIRMED);
//   - both window scales, with IP_CT_TCP_FLAG_WINDOW_SCALE in both
//     directions when scaling was agreed (nlattr_to_tcp ignores the scales
//     otherwise), SACK_PERM likewise, and BE_LIBERAL both ways: the entry
//     has no window history, and conntrackd creates entries the same way;
//   - the reply direction's sequence offset CookieISN − ServerISN as
//     offset-before and offset-after (omitted when zero: nothing to adjust);
//   - the synproxy extension: ISN = CookieISN, ITS = TSval of synwall's
//     SYN-ACK, TSOFF = server TSval − ITS (0 without timestamps, which the
//     kernel reads as "do not touch timestamps");
//   - timeout and mark.
func appendCreate(b []byte, seq uint32, f *Flow, status, timeout, mark uint32) []byte {
	e := encoder{b}
	m := e.begin(ipctnlMsgCtNew, nlmFRequest|nlmFAck|nlmFCreate|nlmFExcl, seq, family(f))
	e.tuple(ctaTupleOrig, f.Client, f.Server)
	e.tuple(ctaTupleReply, f.Server, f.Client)
	e.be32(ctaTimeout, timeout)
	e.be32(ctaStatus, status)
	if mark != 0 {
		e.be32(ctaMark, mark)
	}
	pi := e.nest(ctaProtoinfo)
	tcp := e.nest(ctaProtoinfoTCP)
	e.u8(ctaProtoinfoTCPState, uint8(StateEstablished))
	var ws, wr uint8
	if f.Opts&OptWindowScale != 0 {
		ws, wr = f.ClientWScale, f.ServerWScale
	}
	e.u8(ctaProtoinfoTCPWScaleOrig, ws)
	e.u8(ctaProtoinfoTCPWScaleReply, wr)
	fl := tcpFlags(f.Opts)
	copy(e.attr(ctaProtoinfoTCPFlagsOrig, 2), fl[:])
	copy(e.attr(ctaProtoinfoTCPFlagsReply, 2), fl[:])
	e.endNest(tcp)
	e.endNest(pi)
	if off := f.SeqOffset(); off != 0 {
		sa := e.nest(ctaSeqAdjReply)
		e.be32(ctaSeqAdjCorrectionPos, seqAdjPosition(f))
		e.be32(ctaSeqAdjOffsetBefore, off)
		e.be32(ctaSeqAdjOffsetAfter, off)
		e.endNest(sa)
	}
	sp := e.nest(ctaSynproxy)
	e.be32(ctaSynproxyISN, f.CookieISN)
	var its uint32
	if f.Opts&OptTimestamps != 0 {
		its = f.ITS
	}
	e.be32(ctaSynproxyITS, its)
	e.be32(ctaSynproxyTSOff, f.TSOffset())
	e.endNest(sp)
	e.end(m)
	return e.b
}

// appendGet appends an IPCTNL_MSG_CT_GET request for the entry whose
// original tuple is client → server.
func appendGet(b []byte, seq uint32, client, server netip.AddrPort) []byte {
	e := encoder{b}
	fam := uint8(afInet)
	if !client.Addr().Unmap().Is4() {
		fam = afInet6
	}
	m := e.begin(ipctnlMsgCtGet, nlmFRequest|nlmFAck, seq, fam)
	e.tuple(ctaTupleOrig, client, server)
	e.end(m)
	return e.b
}

// appendDelete appends an IPCTNL_MSG_CT_DELETE request for the entry whose
// original tuple is client → server and whose id is id (the kernel refuses
// with ENOENT when the entry found has another id: it was replaced).
func appendDelete(b []byte, seq uint32, client, server netip.AddrPort, id uint32) []byte {
	e := encoder{b}
	fam := uint8(afInet)
	if !client.Addr().Unmap().Is4() {
		fam = afInet6
	}
	m := e.begin(ipctnlMsgCtDelete, nlmFRequest|nlmFAck, seq, fam)
	e.tuple(ctaTupleOrig, client, server)
	e.be32(ctaID, id)
	e.end(m)
	return e.b
}

// appendDumpMark appends a dump request for every entry (both families)
// whose mark matches mark under mask.
func appendDumpMark(b []byte, seq uint32, mark, mask uint32) []byte {
	e := encoder{b}
	m := e.begin(ipctnlMsgCtGet, nlmFRequest|nlmFDump, seq, 0)
	e.be32(ctaMark, mark)
	e.be32(ctaMarkMask, mask)
	e.end(m)
	return e.b
}

// message is one netlink message found in a receive buffer.
type message struct {
	typ   uint16
	flags uint16
	seq   uint32
	data  []byte // after the nlmsghdr
}

// nextMessage splits the first netlink message off b.
func nextMessage(b []byte) (message, []byte, error) {
	if len(b) < nlmsgHdrLen {
		return message{}, nil, errShortMessage
	}
	n := int(binary.NativeEndian.Uint32(b))
	if n < nlmsgHdrLen || n > len(b) {
		return message{}, nil, errMessageLength
	}
	m := message{
		typ:   binary.NativeEndian.Uint16(b[4:]),
		flags: binary.NativeEndian.Uint16(b[6:]),
		seq:   binary.NativeEndian.Uint32(b[8:]),
		data:  b[nlmsgHdrLen:n],
	}
	rest := b[min(align4(n), len(b)):]
	return m, rest, nil
}

// ackErrno returns the errno of an NLMSG_ERROR message (0 for an
// acknowledgement).
func ackErrno(m message) (int32, error) {
	if len(m.data) < 4 {
		return 0, errShortMessage
	}
	return -int32(binary.NativeEndian.Uint32(m.data)), nil
}

// isCtNew reports whether m is a ctnetlink entry message (the answer to a
// get or one message of a dump).
func isCtNew(m message) bool {
	return m.typ == nfnlSubsysCTNetlink<<8|ipctnlMsgCtNew
}

// entry is what synwall reads back of a kernel entry.
type entry struct {
	ID     uint32
	Mark   uint32
	Status uint32
	State  TCPState
}

// walkAttrs calls fn for each attribute of b.
func walkAttrs(b []byte, fn func(typ uint16, v []byte) error) error {
	for len(b) > 0 {
		if len(b) < nlaHdrLen {
			return errAttribute
		}
		n := int(binary.NativeEndian.Uint16(b))
		if n < nlaHdrLen || n > len(b) {
			return errAttribute
		}
		if err := fn(binary.NativeEndian.Uint16(b[2:])&nlaTypeMask, b[nlaHdrLen:n]); err != nil {
			return err
		}
		b = b[min(align4(n), len(b)):]
	}
	return nil
}

// parseEntry reads id, mark, status and TCP state of a ctnetlink entry
// message's payload (after the nlmsghdr).
func parseEntry(data []byte) (entry, error) {
	var en entry
	if len(data) < nfgenLen {
		return en, errShortMessage
	}
	err := walkAttrs(data[nfgenLen:], func(typ uint16, v []byte) error {
		switch typ {
		case ctaID, ctaMark, ctaStatus:
			if len(v) != 4 {
				return errAttribute
			}
			x := binary.BigEndian.Uint32(v)
			switch typ {
			case ctaID:
				en.ID = x
			case ctaMark:
				en.Mark = x
			default:
				en.Status = x
			}
		case ctaProtoinfo:
			return walkAttrs(v, func(typ uint16, v []byte) error {
				if typ != ctaProtoinfoTCP {
					return nil
				}
				return walkAttrs(v, func(typ uint16, v []byte) error {
					if typ == ctaProtoinfoTCPState {
						if len(v) < 1 {
							return errAttribute
						}
						en.State = TCPState(v[0])
					}
					return nil
				})
			})
		}
		return nil
	})
	return en, err
}

// Message types of conntrack events: DESTROY is a delete message, NEW and
// UPDATE are new messages (NEW with NLM_F_CREATE|NLM_F_EXCL).
const (
	ipctnlMsgCtDeleteType = nfnlSubsysCTNetlink<<8 | ipctnlMsgCtDelete
	ipctnlMsgCtNewType    = nfnlSubsysCTNetlink<<8 | ipctnlMsgCtNew
)

// tupleKey is a connection's original tuple as a map key: client, server
// (IPv4 as IPv4-mapped IPv6), ports.
type tupleKey struct {
	client, server [16]byte
	cport, sport   uint16
}

// addrs returns the client and server of k (IPv4 unmapped).
func (k *tupleKey) addrs() (client, server netip.AddrPort) {
	return netip.AddrPortFrom(netip.AddrFrom16(k.client).Unmap(), k.cport),
		netip.AddrPortFrom(netip.AddrFrom16(k.server).Unmap(), k.sport)
}

func keyOf(client, server netip.AddrPort) tupleKey {
	return tupleKey{
		client: client.Addr().As16(), server: server.Addr().As16(),
		cport: client.Port(), sport: server.Port(),
	}
}

// parseTuple reads a CTA_TUPLE_* attribute's payload. ok is false for
// anything but TCP.
func parseTuple(v []byte) (k tupleKey, ok bool, err error) {
	var proto uint8
	err = walkAttrs(v, func(typ uint16, v []byte) error {
		switch typ {
		case ctaTupleIP:
			return walkAttrs(v, func(typ uint16, v []byte) error {
				switch typ {
				case ctaIPV4Src, ctaIPV4Dst:
					if len(v) != 4 {
						return errAttribute
					}
					a := netip.AddrFrom4([4]byte(v)).As16()
					if typ == ctaIPV4Src {
						k.client = a
					} else {
						k.server = a
					}
				case ctaIPV6Src, ctaIPV6Dst:
					if len(v) != 16 {
						return errAttribute
					}
					if typ == ctaIPV6Src {
						k.client = [16]byte(v)
					} else {
						k.server = [16]byte(v)
					}
				}
				return nil
			})
		case ctaTupleProto:
			return walkAttrs(v, func(typ uint16, v []byte) error {
				switch typ {
				case ctaProtoNum:
					if len(v) < 1 {
						return errAttribute
					}
					proto = v[0]
				case ctaProtoSrc, ctaProtoDst:
					if len(v) != 2 {
						return errAttribute
					}
					p := binary.BigEndian.Uint16(v)
					if typ == ctaProtoSrc {
						k.cport = p
					} else {
						k.sport = p
					}
				}
				return nil
			})
		}
		return nil
	})
	return k, err == nil && proto == ipprotoTCP, err
}

// parseOrigMark reads the original tuple and the mark of an entry message's
// payload (after the nlmsghdr).
func parseOrigMark(data []byte) (k tupleKey, mark uint32, ok bool, err error) {
	k, _, mark, ok, err = parseHanded(data)
	return k, mark, ok, err
}

// parseHanded reads, besides the original tuple and the mark, the offsets
// of an entry synwall created: the reply direction's sequence offset and
// the synproxy extension's timestamp offset.
func parseHanded(data []byte) (k tupleKey, off Offsets, mark uint32, ok bool, err error) {
	if len(data) < nfgenLen {
		return k, off, 0, false, errShortMessage
	}
	var its uint32
	err = walkAttrs(data[nfgenLen:], func(typ uint16, v []byte) error {
		switch typ {
		case ctaTupleOrig:
			var e error
			k, ok, e = parseTuple(v)
			return e
		case ctaMark:
			if len(v) != 4 {
				return errAttribute
			}
			mark = binary.BigEndian.Uint32(v)
		case ctaSeqAdjReply:
			return walkAttrs(v, func(typ uint16, v []byte) error {
				if typ == ctaSeqAdjOffsetAfter {
					if len(v) != 4 {
						return errAttribute
					}
					off.Seq = binary.BigEndian.Uint32(v)
				}
				return nil
			})
		case ctaSynproxy:
			return walkAttrs(v, func(typ uint16, v []byte) error {
				if typ != ctaSynproxyITS && typ != ctaSynproxyTSOff {
					return nil
				}
				if len(v) != 4 {
					return errAttribute
				}
				if typ == ctaSynproxyITS {
					its = binary.BigEndian.Uint32(v)
				} else {
					off.TS = binary.BigEndian.Uint32(v)
				}
				return nil
			})
		}
		return nil
	})
	off.Timestamps = its != 0 || off.TS != 0
	return k, off, mark, ok && err == nil, err
}
