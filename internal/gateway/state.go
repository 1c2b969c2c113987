package gateway

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"github.com/synwall/synwall/internal/cookies"
)

// A state file carries what a graceful restart hands from one process to
// the next: the cookie keys and every live flow with its sequence and
// timestamp offsets, window-scale facts and timers. Layout (integers little
// endian):
//
//	magic    8 bytes  "SYNWALL\x1a"
//	version  u16      StateVersion
//	reserved u16      zero
//	saved    i64      Unix nanoseconds of SaveState's clock
//	keys     cookies.KeysLen bytes (cookies.Keys.AppendBinary)
//	nflows   u32
//	flows    nflows records of flowRecordLen bytes (see appendFlow)
//	crc      u32      CRC-32C (Castagnoli) of everything before it
//
// SYN-cache entries are not saved: every SYN-ACK sequence number is a
// cookie, and with the keys carried over an ACK to a SYN-ACK of the old
// process is accepted by cookie alone (RFC 4987 §3.6). Client data held
// for a handshaking flow is not saved either; the client retransmits it.

// StateVersion is the version of the state file layout SaveState writes
// and ReadState accepts.
const StateVersion = 1

// MaxStateAge is how old a state file may be when read. A graceful restart
// takes seconds; an older file is left over from a restart that did not
// come back (or the clock moved), and its flows and keys are not trusted.
const MaxStateAge = 5 * time.Minute

// maxStateSkew is how far in the future a state file's time may be.
const maxStateSkew = 10 * time.Second

const (
	stateMagic     = "SYNWALL\x1a"
	stateHeaderLen = 8 + 2 + 2 + 8 + cookies.KeysLen + 4
	flowRecordLen  = 37 + 1 + 2 + 4 + 4 + 4 + 4*8 + 3*4 + 3*4 + 2 + 2 + 1 + 1
	maxStateFlows  = 1 << 28 // the largest flow table New builds
)

// Errors of ReadState. A refused state file should be logged
// and the daemon started fresh.
var (
	ErrStateMagic     = errors.New("gateway: not a synwall state file")
	ErrStateVersion   = errors.New("gateway: state file of another version")
	ErrStateTruncated = errors.New("gateway: state file is truncated")
	ErrStateChecksum  = errors.New("gateway: state file checksum mismatch")
	ErrStateMalformed = errors.New("gateway: state file is malformed")
	ErrStateTooOld    = errors.New("gateway: state file is too old")
	ErrStateFuture    = errors.New("gateway: state file is from the future")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// State is a decoded and checked state file.
type State struct {
	Saved time.Time    // when it was saved
	Keys  cookies.Keys // the cookie keys of the saved engine
	flows []byte       // nflows checked records
}

// Flows returns how many flows s holds.
func (s *State) Flows() int { return len(s.flows) / flowRecordLen }

// SaveState writes the engine's cookie keys and flow table to w, in the
// format ReadState reads. now is the time recorded in the file. Each flow
// bucket is locked while it is read; for a consistent picture, stop the
// workers first (a packet processed after SaveState is not in the file).
func (e *Engine) SaveState(w io.Writer, now time.Time) error {
	// Room for the flows counted now and a few more; append grows it if
	// packets add flows meanwhile.
	b := make([]byte, 0, stateHeaderLen+flowRecordLen*(int(max(e.flows.st.active.Load(), 0))+64)+4)
	b = append(b, stateMagic...)
	b = binary.LittleEndian.AppendUint16(b, StateVersion)
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = binary.LittleEndian.AppendUint64(b, uint64(now.UnixNano()))
	b, _ = e.jar.Keys().AppendBinary(b)
	nAt := len(b)
	b = binary.LittleEndian.AppendUint32(b, 0)
	n := 0
	nowNs := now.UnixNano()
	for i := range e.flows.locks {
		mu := e.flows.lock(i)
		mu.Lock()
		fs := e.flows.slotsOf(i)
		for j := range fs {
			f := &fs[j]
			if f.state == stateInvalid || f.state == stateOutbound || e.flows.expired(f, nowNs) {
				continue // outbound connections are not saved: the format has no state for them
			}
			b = appendFlow(b, f)
			n++
		}
		mu.Unlock()
	}
	binary.LittleEndian.PutUint32(b[nAt:], uint32(n))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	_, err := w.Write(b)
	return err
}

// Flow flag bits of a record.
const (
	recUseTS = 1 << iota
	recRescaleC2S
	recRescaleS2C
	recFinClient
	recFinServer
	recNewSyn
	recClientTS
	recSACK
	recECN
	recFlagsMask = 1<<iota - 1
)

func appendFlow(b []byte, f *flow) []byte {
	t := &f.tuple
	b = append(b, t.Src[:]...)
	b = append(b, t.Dst[:]...)
	b = binary.LittleEndian.AppendUint16(b, t.SrcPort)
	b = binary.LittleEndian.AppendUint16(b, t.DstPort)
	b = append(b, boolByte(t.V6), byte(f.state))
	var fl uint16
	for i, v := range [...]bool{f.useTS, f.rescaleC2S, f.rescaleS2C, f.finClient, f.finServer, f.newSyn, f.clientTS, f.sack, f.ecn} {
		if v {
			fl |= 1 << i
		}
	}
	b = binary.LittleEndian.AppendUint16(b, fl)
	b = append(b, f.clientShift, f.serverBelievesClient, f.serverShift, f.clientBelievesServer)
	b = binary.LittleEndian.AppendUint32(b, f.delta)
	b = binary.LittleEndian.AppendUint32(b, f.tsOff)
	for _, v := range [...]int64{f.created, f.synSentAt, f.lastSeen, f.closeAt} {
		b = binary.LittleEndian.AppendUint64(b, uint64(v))
	}
	for _, v := range [...]uint32{f.clientISN, f.cookieISN, f.serverISN, f.ourTS, f.serverTS, f.lastTS} {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	b = binary.LittleEndian.AppendUint16(b, f.lastWin)
	b = binary.LittleEndian.AppendUint16(b, f.mss)
	return append(b, byte(f.sentWS), byte(f.advWS))
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// decodeFlow fills f (its key, tuple and saved fields; not slot or held
// data) from one record, or fails on values the engine never makes.
func decodeFlow(r []byte, f *flow) error {
	t := &f.tuple
	copy(t.Src[:], r[0:16])
	copy(t.Dst[:], r[16:32])
	t.SrcPort = binary.LittleEndian.Uint16(r[32:])
	t.DstPort = binary.LittleEndian.Uint16(r[34:])
	switch r[36] {
	case 0:
		if !allZero(t.Src[4:]) || !allZero(t.Dst[4:]) {
			return fmt.Errorf("%w: IPv4 flow with bytes past its addresses", ErrStateMalformed)
		}
	case 1:
		t.V6 = true
	default:
		return fmt.Errorf("%w: address family %d", ErrStateMalformed, r[36])
	}
	f.state = flowState(r[37])
	switch f.state {
	case stateSynSent, stateEstablished, stateClosing:
	default:
		return fmt.Errorf("%w: flow state %d", ErrStateMalformed, r[37])
	}
	fl := binary.LittleEndian.Uint16(r[38:])
	if fl&^recFlagsMask != 0 {
		return fmt.Errorf("%w: flow flags %#x", ErrStateMalformed, fl)
	}
	f.useTS, f.rescaleC2S, f.rescaleS2C = fl&recUseTS != 0, fl&recRescaleC2S != 0, fl&recRescaleS2C != 0
	f.finClient, f.finServer, f.newSyn = fl&recFinClient != 0, fl&recFinServer != 0, fl&recNewSyn != 0
	f.clientTS, f.sack, f.ecn = fl&recClientTS != 0, fl&recSACK != 0, fl&recECN != 0
	f.clientShift, f.serverBelievesClient, f.serverShift, f.clientBelievesServer = r[40], r[41], r[42], r[43]
	for _, s := range r[40:44] {
		if s > cookies.MaxWScale {
			return fmt.Errorf("%w: window scale shift %d", ErrStateMalformed, s)
		}
	}
	f.delta = binary.LittleEndian.Uint32(r[44:])
	f.tsOff = binary.LittleEndian.Uint32(r[48:])
	o := 52
	for _, p := range [...]*int64{&f.created, &f.synSentAt, &f.lastSeen, &f.closeAt} {
		*p = int64(binary.LittleEndian.Uint64(r[o:]))
		o += 8
	}
	for _, p := range [...]*uint32{&f.clientISN, &f.cookieISN, &f.serverISN, &f.ourTS, &f.serverTS, &f.lastTS} {
		*p = binary.LittleEndian.Uint32(r[o:])
		o += 4
	}
	f.lastWin = binary.LittleEndian.Uint16(r[o:])
	f.mss = binary.LittleEndian.Uint16(r[o+2:])
	f.sentWS, f.advWS = int8(r[o+4]), int8(r[o+5])
	for _, ws := range [...]int8{f.sentWS, f.advWS} {
		if ws < -1 || ws > cookies.MaxWScale {
			return fmt.Errorf("%w: window scale %d", ErrStateMalformed, ws)
		}
	}
	f.key.set(&t.Src, &t.Dst, t.SrcPort, t.DstPort, t.V6)
	f.up = f.state != stateSynSent
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// ReadState reads and checks a state file: magic, version, length,
// checksum, age at now (at most MaxStateAge, and not from the future) and
// every flow record. Any fault is an error wrapping one of the ErrState
// values; nothing is read past the file's own length.
func ReadState(r io.Reader, now time.Time) (*State, error) {
	var h [stateHeaderLen]byte
	if n, err := io.ReadFull(r, h[:]); err != nil {
		if n >= len(stateMagic) && string(h[:len(stateMagic)]) != stateMagic || n > 0 && n < len(stateMagic) && !bytes.HasPrefix([]byte(stateMagic), h[:n]) {
			return nil, ErrStateMagic
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: %d bytes, the header alone is %d", ErrStateTruncated, n, stateHeaderLen)
		}
		return nil, err
	}
	if string(h[:8]) != stateMagic {
		return nil, ErrStateMagic
	}
	if v := binary.LittleEndian.Uint16(h[8:]); v != StateVersion {
		return nil, fmt.Errorf("%w: version %d, this synwall reads %d", ErrStateVersion, v, StateVersion)
	}
	if res := binary.LittleEndian.Uint16(h[10:]); res != 0 {
		return nil, fmt.Errorf("%w: reserved field %#x", ErrStateMalformed, res)
	}
	nflows := binary.LittleEndian.Uint32(h[stateHeaderLen-4:])
	if nflows > maxStateFlows {
		return nil, fmt.Errorf("%w: %d flows", ErrStateMalformed, nflows)
	}
	// Read what is there, never more than the header promises, growing
	// the buffer beyond 4 MiB only as bytes arrive: a forged count costs
	// little memory.
	want := int64(nflows)*flowRecordLen + 4
	var buf bytes.Buffer
	buf.Grow(stateHeaderLen + int(min(want, 4<<20)))
	buf.Write(h[:])
	if _, err := buf.ReadFrom(io.LimitReader(r, want)); err != nil {
		return nil, err
	}
	body := buf.Bytes()
	if got := int64(len(body) - stateHeaderLen); got < want {
		return nil, fmt.Errorf("%w: %d of %d flow and checksum bytes", ErrStateTruncated, got, want)
	}
	end := len(body) - 4
	if got, want := crc32.Checksum(body[:end], castagnoli), binary.LittleEndian.Uint32(body[end:]); got != want {
		return nil, fmt.Errorf("%w: computed %#08x, stored %#08x", ErrStateChecksum, got, want)
	}
	var extra [1]byte
	if n, _ := io.ReadFull(r, extra[:]); n != 0 {
		return nil, fmt.Errorf("%w: bytes after the checksum", ErrStateMalformed)
	}
	s := &State{Saved: time.Unix(0, int64(binary.LittleEndian.Uint64(h[12:])))}
	if age := now.Sub(s.Saved); age > MaxStateAge {
		return nil, fmt.Errorf("%w: saved %v ago, at most %v is used", ErrStateTooOld, age.Round(time.Millisecond), MaxStateAge)
	} else if age < -maxStateSkew {
		return nil, fmt.Errorf("%w: saved %v after now", ErrStateFuture, (-age).Round(time.Millisecond))
	}
	if err := s.Keys.UnmarshalBinary(h[20 : 20+cookies.KeysLen]); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStateMalformed, err)
	}
	s.flows = body[stateHeaderLen:end]
	var f flow
	for o := 0; o < len(s.flows); o += flowRecordLen {
		if err := decodeFlow(s.flows[o:o+flowRecordLen], &f); err != nil {
			return nil, fmt.Errorf("flow %d: %w", o/flowRecordLen, err)
		}
	}
	return s, nil
}

// Restore puts the flows of s into the engine's flow table and returns how
// many it took: flows already expired at now are left out, and a flow whose
// tuple the engine already has keeps the engine's. Restoring into a smaller
// table may evict flows as new ones would (counted as evictions). The
// cookie keys of s are not touched here: build the engine's jar with
// cookies.NewFromKeys(cfg, s.Keys, now) first, so that SYN-ACKs sent before
// the restart are accepted after it.
func (e *Engine) Restore(s *State, now time.Time) int {
	nowNs := now.UnixNano()
	n := 0
	var rec flow
	for o := 0; o < len(s.flows); o += flowRecordLen {
		if decodeFlow(s.flows[o:o+flowRecordLen], &rec) != nil || e.flows.expired(&rec, nowNs) {
			continue
		}
		i, tag := e.flows.bucketKey(&rec.key)
		mu := e.flows.lock(i)
		mu.Lock()
		if e.flows.find(i, tag, &rec.key, nowNs) == nil {
			f := e.flows.add(i, tag, &rec.tuple, nowNs, nil)
			slot, src := f.slot, f.srcSlot
			*f = rec
			f.slot, f.srcSlot = slot, src
			f.npend = 0
			n++
		}
		mu.Unlock()
	}
	return n
}
