package queue

import (
	"encoding/binary"
	"errors"
)

// nfnetlink_queue wire format, from include/uapi/linux/netlink.h,
// include/uapi/linux/netfilter/nfnetlink.h and nfnetlink_queue.h. Netlink
// and attribute headers are in host byte order; nfqueue attribute values are
// big endian. Defined here rather than taken from x/sys/unix so the codec
// builds and is tested on every OS.
const (
	nlmsgHdrLen = 16 // struct nlmsghdr
	nfgenLen    = 4  // struct nfgenmsg
	nlaHdrLen   = 4  // struct nlattr
	nlaTypeMask = 0x3fff

	nlmsgError = 0x2 // NLMSG_ERROR
	nlmsgDone  = 0x3 // NLMSG_DONE

	nlmFRequest = 0x1 // NLM_F_REQUEST
	nlmFAck     = 0x4 // NLM_F_ACK

	nfnlSubsysQueue = 3

	nfqnlMsgPacket       = 0
	nfqnlMsgVerdict      = 1
	nfqnlMsgConfig       = 2
	nfqnlMsgVerdictBatch = 3

	nfqaPacketHdr  = 1
	nfqaVerdictHdr = 2
	nfqaMark       = 3
	nfqaPayload    = 10
	nfqaCapLen     = 13
	nfqaSkbInfo    = 14

	nfqaCfgCmd         = 1
	nfqaCfgParams      = 2
	nfqaCfgQueueMaxLen = 3
	nfqaCfgMask        = 4
	nfqaCfgFlags       = 5

	nfqnlCfgCmdBind   = 1
	nfqnlCfgCmdUnbind = 2

	nfqnlCopyPacket = 2

	nfqaCfgFFailOpen = 1 << 0
	nfqaCfgFGSO      = 1 << 2

	// SkbInfo bits (NFQA_SKB_INFO).
	SkbCsumNotReady = 1 << 0 // NFQA_SKB_CSUMNOTREADY
	SkbGSO          = 1 << 1 // NFQA_SKB_GSO
	SkbCsumCorrupt  = 1 << 2 // NFQA_SKB_CSUM_NOTVERIFIED

	// MaxCopyRange is the kernel's NFQNL_MAX_COPY_RANGE (0xffff - NLA_HDRLEN):
	// the largest packet a message or a verdict payload can carry whole.
	MaxCopyRange = 0xffff - nlaHdrLen

	// Verdicts (include/uapi/linux/netfilter.h).
	nfDrop   = 0
	nfAccept = 1
)

// Errors of the netlink codec. They are values, so the per-packet path never
// allocates to report one.
var (
	ErrShortMessage   = errors.New("queue: netlink message shorter than its header")
	ErrMessageLength  = errors.New("queue: netlink message length out of bounds")
	ErrAttribute      = errors.New("queue: malformed nfqueue attribute")
	ErrNoPacketHeader = errors.New("queue: packet message without NFQA_PACKET_HDR")
	ErrNoPayload      = errors.New("queue: packet message without NFQA_PAYLOAD")
	ErrPayloadTooLong = errors.New("queue: verdict payload longer than MaxCopyRange")
)

// MsgKind classifies a netlink message from the kernel. Zero is invalid.
type MsgKind uint8

const (
	MsgInvalid MsgKind = iota
	MsgPacket          // NFQNL_MSG_PACKET: a queued packet
	MsgError           // NLMSG_ERROR: an error, or an ack when Errno is 0
	MsgOther           // anything else (NLMSG_DONE, unknown types): ignored
)

// Message is one parsed netlink message. Packet.Payload points into the
// buffer given to ParseMessage.
type Message struct {
	Kind  MsgKind
	Seq   uint32
	Errno int32 // MsgError: the positive errno, 0 for an ack
	// Queue is the res_id of a MsgPacket (the queue number).
	Queue  uint16
	Packet Packet
}

// Packet is a queued packet as the kernel describes it.
type Packet struct {
	ID         uint32 // NFQA_PACKET_HDR packet_id
	HwProtocol uint16 // NFQA_PACKET_HDR hw_protocol (ethertype)
	Hook       uint8  // NFQA_PACKET_HDR hook
	Mark       uint32 // NFQA_MARK
	SkbInfo    uint32 // NFQA_SKB_INFO
	// CapLen is the packet's full length when the kernel copied only part
	// of it (NFQA_CAP_LEN); 0 when Payload is the whole packet.
	CapLen  uint32
	Payload []byte // NFQA_PAYLOAD: the IP packet
}

// Truncated reports whether the kernel copied only part of the packet.
func (p *Packet) Truncated() bool { return p.CapLen != 0 && int(p.CapLen) > len(p.Payload) }

func align4(n int) int { return (n + 3) &^ 3 }

// ParseMessage parses the netlink message at the start of b into m and
// returns what follows it. It does not allocate. On error rest is what
// follows the bad message when its length could be read, or nil when the
// rest of b cannot be trusted.
func ParseMessage(b []byte, m *Message) (rest []byte, err error) {
	*m = Message{}
	if len(b) < nlmsgHdrLen {
		return nil, ErrShortMessage
	}
	n := int(binary.NativeEndian.Uint32(b[0:4]))
	if n < nlmsgHdrLen || n > len(b) {
		return nil, ErrMessageLength
	}
	typ := binary.NativeEndian.Uint16(b[4:6])
	m.Seq = binary.NativeEndian.Uint32(b[8:12])
	msg := b[nlmsgHdrLen:n]
	if next := align4(n); next < len(b) {
		rest = b[next:]
	}
	switch {
	case typ == nlmsgError:
		m.Kind = MsgError
		if len(msg) < 4 {
			return rest, ErrShortMessage
		}
		m.Errno = -int32(binary.NativeEndian.Uint32(msg[0:4]))
		return rest, nil
	case typ == uint16(nfnlSubsysQueue<<8|nfqnlMsgPacket):
		m.Kind = MsgPacket
	default:
		m.Kind = MsgOther
		return rest, nil
	}
	if len(msg) < nfgenLen {
		return rest, ErrShortMessage
	}
	m.Queue = binary.BigEndian.Uint16(msg[2:4])
	attrs := msg[nfgenLen:]
	p := &m.Packet
	var haveHdr, havePayload bool
	for len(attrs) >= nlaHdrLen {
		alen := int(binary.NativeEndian.Uint16(attrs[0:2]))
		atyp := binary.NativeEndian.Uint16(attrs[2:4]) & nlaTypeMask
		if alen < nlaHdrLen || alen > len(attrs) {
			return rest, ErrAttribute
		}
		v := attrs[nlaHdrLen:alen]
		switch atyp {
		case nfqaPacketHdr:
			if len(v) < 7 {
				return rest, ErrAttribute
			}
			p.ID = binary.BigEndian.Uint32(v[0:4])
			p.HwProtocol = binary.BigEndian.Uint16(v[4:6])
			p.Hook = v[6]
			haveHdr = true
		case nfqaMark:
			if len(v) < 4 {
				return rest, ErrAttribute
			}
			p.Mark = binary.BigEndian.Uint32(v)
		case nfqaSkbInfo:
			if len(v) < 4 {
				return rest, ErrAttribute
			}
			p.SkbInfo = binary.BigEndian.Uint32(v)
		case nfqaCapLen:
			if len(v) < 4 {
				return rest, ErrAttribute
			}
			p.CapLen = binary.BigEndian.Uint32(v)
		case nfqaPayload:
			p.Payload = v
			havePayload = true
		}
		if a := align4(alen); a < len(attrs) {
			attrs = attrs[a:]
		} else {
			attrs = nil
		}
	}
	if !haveHdr {
		return rest, ErrNoPacketHeader
	}
	if !havePayload {
		return rest, ErrNoPayload
	}
	return rest, nil
}

// appendNlmsgHdr appends a netlink header with a zero length and an
// nfgenmsg; finishMsg fills in the length.
func appendNlmsgHdr(b []byte, typ uint16, flags uint16, seq uint32, family uint8, resID uint16) []byte {
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0) // port id: the kernel fills it in
	b = append(b, family, 0)                   // nfgenmsg family, version NFNETLINK_V0
	return binary.BigEndian.AppendUint16(b, resID)
}

func finishMsg(b []byte, start int) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	binary.NativeEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

func appendAttr(b []byte, typ uint16, v []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(nlaHdrLen+len(v)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func appendAttrU32(b []byte, typ uint16, v uint32) []byte {
	b = binary.NativeEndian.AppendUint16(b, nlaHdrLen+4)
	b = binary.NativeEndian.AppendUint16(b, typ)
	return binary.BigEndian.AppendUint32(b, v)
}

// verdictMsgLen is the size of a verdict message carrying payloadLen bytes.
func verdictMsgLen(payloadLen int) int {
	n := nlmsgHdrLen + nfgenLen + nlaHdrLen + 8
	if payloadLen > 0 {
		n += nlaHdrLen + align4(payloadLen)
	}
	return n
}

// AppendVerdict appends an NFQNL_MSG_VERDICT message for packet id of queue
// to b: verdict is NF_ACCEPT (accept true) or NF_DROP, with the packet
// replaced by payload when payload is non-nil. It does not allocate when b
// has room.
func AppendVerdict(b []byte, queue uint16, id uint32, accept bool, payload []byte) ([]byte, error) {
	if len(payload) > MaxCopyRange {
		return b, ErrPayloadTooLong
	}
	return appendVerdict(b, nfqnlMsgVerdict, queue, id, accept, payload), nil
}

// AppendVerdictBatch appends an NFQNL_MSG_VERDICT_BATCH message: the verdict
// applies to every packet of queue with an id up to and including id.
func AppendVerdictBatch(b []byte, queue uint16, id uint32, accept bool) []byte {
	return appendVerdict(b, nfqnlMsgVerdictBatch, queue, id, accept, nil)
}

func appendVerdict(b []byte, msg uint16, queue uint16, id uint32, accept bool, payload []byte) []byte {
	start := len(b)
	b = appendNlmsgHdr(b, nfnlSubsysQueue<<8|msg, nlmFRequest, 0, 0, queue)
	v := uint32(nfDrop)
	if accept {
		v = nfAccept
	}
	// struct nfqnl_msg_verdict_hdr { __be32 verdict; __be32 id; }
	b = binary.NativeEndian.AppendUint16(b, nlaHdrLen+8)
	b = binary.NativeEndian.AppendUint16(b, nfqaVerdictHdr)
	b = binary.BigEndian.AppendUint32(b, v)
	b = binary.BigEndian.AppendUint32(b, id)
	if payload != nil {
		b = appendAttr(b, nfqaPayload, payload)
	}
	return finishMsg(b, start)
}

// appendConfigCmd appends an NFQNL_MSG_CONFIG message with one command
// (e.g. NFQNL_CFG_CMD_UNBIND), asking for an ack.
func appendConfigCmd(b []byte, seq uint32, queue uint16, cmd uint8) []byte {
	start := len(b)
	b = appendNlmsgHdr(b, nfnlSubsysQueue<<8|nfqnlMsgConfig, nlmFRequest|nlmFAck, seq, 0, queue)
	// struct nfqnl_msg_config_cmd { __u8 command; __u8 _pad; __be16 pf; }
	b = appendAttr(b, nfqaCfgCmd, []byte{cmd, 0, 0, 0})
	return finishMsg(b, start)
}

// appendConfigBind appends the NFQNL_MSG_CONFIG message that binds queue
// (NFQNL_CFG_CMD_BIND) and, in the same message so that no packet is ever
// delivered with the defaults, sets copy mode packet with the largest range,
// the queue length and the flags (GSO, and fail-open when asked), asking
// for an ack.
func appendConfigBind(b []byte, seq uint32, queue uint16, maxLen uint32, failOpen bool) []byte {
	start := len(b)
	b = appendNlmsgHdr(b, nfnlSubsysQueue<<8|nfqnlMsgConfig, nlmFRequest|nlmFAck, seq, 0, queue)
	b = appendAttr(b, nfqaCfgCmd, []byte{nfqnlCfgCmdBind, 0, 0, 0})
	// struct nfqnl_msg_config_params { __be32 copy_range; __u8 copy_mode; } __packed
	var params [5]byte
	binary.BigEndian.PutUint32(params[:4], 0xffff)
	params[4] = nfqnlCopyPacket
	b = appendAttr(b, nfqaCfgParams, params[:])
	b = appendAttrU32(b, nfqaCfgQueueMaxLen, maxLen)
	flags := uint32(nfqaCfgFGSO)
	if failOpen {
		flags |= nfqaCfgFFailOpen
	}
	b = appendAttrU32(b, nfqaCfgMask, nfqaCfgFFailOpen|nfqaCfgFGSO)
	b = appendAttrU32(b, nfqaCfgFlags, flags)
	return finishMsg(b, start)
}
