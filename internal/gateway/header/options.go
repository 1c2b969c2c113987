package header

import "encoding/binary"

// TCP option kinds (RFC 9293 §3.2, RFC 7323, RFC 2018).
const (
	OptEOL           = 0
	OptNOP           = 1
	OptMSS           = 2 // length 4
	OptWindowScale   = 3 // length 3, RFC 7323 §2.2
	OptSACKPermitted = 4 // length 2, RFC 2018 §2
	OptSACK          = 5 // length 2+8n, RFC 2018 §3
	OptTimestamps    = 8 // length 10, RFC 7323 §3.2
)

// MaxWScale is the largest window-scale shift (RFC 7323 §2.3).
const MaxWScale = 14

// MaxSACKBlocks is the most SACK blocks that fit in 40 option bytes
// (RFC 2018 §3).
const MaxSACKBlocks = 4

// Options are the parsed TCP options of a segment (RFC 9293 §3.2, RFC 7323,
// RFC 2018). Offsets are from the start of the TCP header, 0 when absent, so
// that a translator can rewrite fields in place. When an option appears more
// than once the last one counts.
type Options struct {
	MSS       uint16
	HasMSS    bool
	WScale    uint8 // already clamped to MaxWScale
	HasWScale bool
	// WScaleClamped says the segment asked for a shift above MaxWScale; RFC
	// 7323 §2.3 says to log it and use 14.
	WScaleClamped bool
	SACKPermitted bool
	HasTS         bool
	TSVal, TSEcr  uint32
	TSOffset      int // offset of the TSval field (TSecr follows at +4)
	SACKOffset    int // offset of the first SACK block's left edge
	SACKBlocks    int // number of SACK blocks (each 8 bytes)
}

// ParseOptions parses the options of a TCP header whose data offset was
// already validated. It returns BadOption when an option's length is below
// 2, runs past the header, or is wrong for MSS, window scale, SACK-permitted,
// SACK (2+8n, n in 1..4) or timestamps; BadDataOffset when t is shorter than
// its data offset says. Unknown options are skipped by their length.
func ParseOptions(t TCP, o *Options) Reason {
	if len(t) < TCPMinimumSize {
		*o = Options{}
		return Truncated
	}
	end := t.DataOffset()
	if end < TCPMinimumSize || end > len(t) {
		*o = Options{}
		return BadDataOffset
	}
	// The two layouts of nearly every segment past the handshake: no
	// options, or NOP, NOP, timestamps (RFC 7323 Appendix A); and the SYN
	// of Linux.
	switch {
	case end == TCPMinimumSize:
		*o = Options{}
		return OK
	case end == TCPMinimumSize+12 && binary.BigEndian.Uint32(t[20:]) == 0x0101080a:
		*o = Options{
			HasTS:    true,
			TSVal:    binary.BigEndian.Uint32(t[24:]),
			TSEcr:    binary.BigEndian.Uint32(t[28:]),
			TSOffset: 24,
		}
		return OK
	case end == TCPMinimumSize+20:
		if parseLinuxSYN(t[:end], o) {
			return OK
		}
	}
	if end > TCPMinimumSize+12 && parseTSSACK(t[:end], o) {
		return OK
	}
	return parseOptions(t[:end], o)
}

// parseLinuxSYN parses the options of a SYN as Linux lays them out (MSS;
// SACK-permitted, or two NOPs, then timestamps; NOP and window scale) and
// reports true, or reports false without touching o for any other layout.
// t is a TCP header of 40 bytes.
func parseLinuxSYN(t TCP, o *Options) bool {
	_ = t[39]
	mss := binary.BigEndian.Uint32(t[20:])
	sts := binary.BigEndian.Uint32(t[24:])
	ws := binary.BigEndian.Uint32(t[36:])
	if mss>>16 != 0x0204 || (sts != 0x0402080a && sts != 0x0101080a) || ws>>8 != 0x010303 {
		return false
	}
	// Cleared, then field by field, not as a literal (store forwarding:
	// see the note in package gateway's doc).
	*o = Options{}
	w := uint8(ws)
	o.MSS, o.HasMSS = uint16(mss), true
	o.WScale, o.HasWScale, o.WScaleClamped = min(w, MaxWScale), true, w > MaxWScale
	o.SACKPermitted = sts == 0x0402080a
	o.HasTS, o.TSOffset = true, 28
	o.TSVal, o.TSEcr = binary.BigEndian.Uint32(t[28:]), binary.BigEndian.Uint32(t[32:])
	return true
}

// parseTSSACK parses NOP, NOP, timestamps, NOP, NOP, SACK (1 to 3
// blocks), as Linux lays out a segment that carries SACK blocks, and
// reports true, or reports false without touching o for any other layout.
// t is a TCP header longer than 32 bytes.
func parseTSSACK(t TCP, o *Options) bool {
	n := (len(t) - 36) / 8
	if len(t) < 44 || (len(t)-36)%8 != 0 || n > MaxSACKBlocks ||
		binary.BigEndian.Uint32(t[20:]) != 0x0101080a ||
		binary.BigEndian.Uint32(t[32:]) != 0x01010500|uint32(2+8*n) {
		return false
	}
	*o = Options{} // then field by field, as in parseLinuxSYN
	o.HasTS, o.TSOffset = true, 24
	o.TSVal, o.TSEcr = binary.BigEndian.Uint32(t[24:]), binary.BigEndian.Uint32(t[28:])
	o.SACKOffset, o.SACKBlocks = 36, n
	return true
}

// parseOptions is ParseOptions for any layout; b is the header cut to its
// data offset.
func parseOptions(b TCP, o *Options) Reason {
	*o = Options{}
	for i := TCPMinimumSize; i < len(b); {
		kind := b[i]
		if kind <= OptNOP {
			if kind == OptEOL {
				return OK
			}
			i++
			continue
		}
		if i+1 >= len(b) {
			return BadOption
		}
		l := int(b[i+1])
		if l < 2 || l > len(b)-i {
			return BadOption
		}
		opt := b[i : i+l]
		switch kind {
		case OptMSS:
			if l != 4 {
				return BadOption
			}
			o.MSS = binary.BigEndian.Uint16(opt[2:4])
			o.HasMSS = true
		case OptWindowScale:
			if l != 3 {
				return BadOption
			}
			ws := opt[2]
			o.WScaleClamped = ws > MaxWScale
			if o.WScaleClamped {
				ws = MaxWScale
			}
			o.WScale = ws
			o.HasWScale = true
		case OptSACKPermitted:
			if l != 2 {
				return BadOption
			}
			o.SACKPermitted = true
		case OptSACK:
			n := (l - 2) / 8
			if (l-2)%8 != 0 || n < 1 || n > MaxSACKBlocks {
				return BadOption
			}
			o.SACKOffset = i + 2
			o.SACKBlocks = n
		case OptTimestamps:
			if l != 10 {
				return BadOption
			}
			o.TSVal = binary.BigEndian.Uint32(opt[2:6])
			o.TSEcr = binary.BigEndian.Uint32(opt[6:10])
			o.TSOffset = i + 2
			o.HasTS = true
		}
		i += l
	}
	return OK
}

// SACKBlock returns the left and right edges of SACK block k
// (0 <= k < o.SACKBlocks) of the header o was parsed from.
func (t TCP) SACKBlock(o *Options, k int) (left, right uint32) {
	off := o.SACKOffset + 8*k
	return binary.BigEndian.Uint32(t[off:]), binary.BigEndian.Uint32(t[off+4:])
}
