package queue

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/synwall/synwall/internal/engine"
)

// packetMsg builds an NFQNL_MSG_PACKET message as the kernel sends it.
func packetMsg(queue uint16, id uint32, skbInfo uint32, capLen uint32, payload []byte) []byte {
	b := appendNlmsgHdr(nil, nfnlSubsysQueue<<8|nfqnlMsgPacket, 0, 0, 2, queue)
	hdr := binary.BigEndian.AppendUint32(nil, id)
	hdr = binary.BigEndian.AppendUint16(hdr, 0x0800)
	hdr = append(hdr, 1) // NF_INET_LOCAL_IN
	b = appendAttr(b, nfqaPacketHdr, hdr)
	b = appendAttrU32(b, nfqaMark, 7)
	if skbInfo != 0 {
		b = appendAttrU32(b, nfqaSkbInfo, skbInfo)
	}
	if capLen != 0 {
		b = appendAttrU32(b, nfqaCapLen, capLen)
	}
	if payload != nil {
		b = appendAttr(b, nfqaPayload, payload)
	}
	return finishMsg(b, 0)
}

func errorMsg(seq uint32, errno int32) []byte {
	b := binary.NativeEndian.AppendUint32(nil, 0)
	b = binary.NativeEndian.AppendUint16(b, nlmsgError)
	b = binary.NativeEndian.AppendUint16(b, 0)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = binary.NativeEndian.AppendUint32(b, uint32(-errno))
	b = append(b, make([]byte, 16)...) // the original header
	return finishMsg(b, 0)
}

func TestParseMessage(t *testing.T) {
	payload := []byte{0x45, 0, 0, 20, 1, 2, 3} // odd length: padding follows
	good := packetMsg(3, 42, SkbCsumNotReady|SkbGSO, 0, payload)
	noPayload := packetMsg(3, 43, 0, 0, nil)
	badAttr := packetMsg(3, 44, 0, 0, payload)
	binary.NativeEndian.PutUint16(badAttr[nlmsgHdrLen+nfgenLen:], 200) // first attribute runs past the end
	noHdr := appendNlmsgHdr(nil, nfnlSubsysQueue<<8|nfqnlMsgPacket, 0, 0, 2, 3)
	noHdr = finishMsg(appendAttr(noHdr, nfqaPayload, payload), 0)
	tooLong := append([]byte(nil), good...)
	binary.NativeEndian.PutUint32(tooLong, uint32(len(good)+4))

	tests := []struct {
		name    string
		in      []byte
		want    Message
		wantErr error
	}{
		{"packet", good, Message{Kind: MsgPacket, Queue: 3, Packet: Packet{ID: 42, HwProtocol: 0x0800, Hook: 1, Mark: 7, SkbInfo: 3, Payload: payload}}, nil},
		{"truncated packet", packetMsg(1, 9, 0, 70000, payload), Message{Kind: MsgPacket, Queue: 1, Packet: Packet{ID: 9, HwProtocol: 0x0800, Hook: 1, Mark: 7, CapLen: 70000, Payload: payload}}, nil},
		{"ack", errorMsg(5, 0), Message{Kind: MsgError, Seq: 5}, nil},
		{"error", errorMsg(6, 16), Message{Kind: MsgError, Seq: 6, Errno: 16}, nil},
		{"no payload", noPayload, Message{Kind: MsgPacket, Queue: 3, Packet: Packet{ID: 43, HwProtocol: 0x0800, Hook: 1, Mark: 7}}, ErrNoPayload},
		{"no packet header", noHdr, Message{Kind: MsgPacket, Queue: 3, Packet: Packet{Payload: payload}}, ErrNoPacketHeader},
		{"bad attribute", badAttr, Message{Kind: MsgPacket, Queue: 3}, ErrAttribute},
		{"short", good[:10], Message{}, ErrShortMessage},
		{"length past end", tooLong, Message{}, ErrMessageLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Message
			_, err := ParseMessage(tt.in, &m)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseMessage() error = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, m); diff != "" {
				t.Errorf("ParseMessage() message mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseMessageSequence(t *testing.T) {
	var buf []byte
	buf = append(buf, packetMsg(0, 1, 0, 0, []byte{1})...)
	buf = append(buf, errorMsg(2, 0)...)
	buf = append(buf, packetMsg(0, 2, 0, 0, []byte{1, 2, 3, 4, 5})...)
	var ids []uint32
	var kinds []MsgKind
	for b := buf; len(b) > 0; {
		var m Message
		rest, err := ParseMessage(b, &m)
		if err != nil {
			t.Fatalf("ParseMessage() error = %v", err)
		}
		kinds = append(kinds, m.Kind)
		ids = append(ids, m.Packet.ID)
		b = rest
	}
	if diff := cmp.Diff([]MsgKind{MsgPacket, MsgError, MsgPacket}, kinds); diff != "" {
		t.Errorf("kinds (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]uint32{1, 0, 2}, ids); diff != "" {
		t.Errorf("ids (-want +got):\n%s", diff)
	}
}

// verdictOut is a decoded verdict message.
type verdictOut struct {
	Batch   bool
	Queue   uint16
	ID      uint32
	Accept  bool
	Payload []byte
}

// decodeVerdicts decodes what the pipeline writes, checking the framing.
func decodeVerdicts(t *testing.T, b []byte) []verdictOut {
	t.Helper()
	var out []verdictOut
	for len(b) > 0 {
		if len(b) < nlmsgHdrLen+nfgenLen {
			t.Fatalf("verdict stream: %d trailing bytes", len(b))
		}
		n := int(binary.NativeEndian.Uint32(b))
		if n%4 != 0 || n > len(b) {
			t.Fatalf("verdict message length %d (have %d)", n, len(b))
		}
		typ := binary.NativeEndian.Uint16(b[4:])
		if flags := binary.NativeEndian.Uint16(b[6:]); flags != nlmFRequest {
			t.Errorf("verdict flags = %#x, want NLM_F_REQUEST", flags)
		}
		v := verdictOut{Queue: binary.BigEndian.Uint16(b[18:])}
		switch typ {
		case nfnlSubsysQueue<<8 | nfqnlMsgVerdict:
		case nfnlSubsysQueue<<8 | nfqnlMsgVerdictBatch:
			v.Batch = true
		default:
			t.Fatalf("verdict message type %#x", typ)
		}
		attrs := b[nlmsgHdrLen+nfgenLen : n]
		for len(attrs) > 0 {
			alen := int(binary.NativeEndian.Uint16(attrs))
			val := attrs[4:alen]
			switch binary.NativeEndian.Uint16(attrs[2:]) {
			case nfqaVerdictHdr:
				v.Accept = binary.BigEndian.Uint32(val) == nfAccept
				v.ID = binary.BigEndian.Uint32(val[4:])
			case nfqaPayload:
				v.Payload = append([]byte(nil), val...)
			default:
				t.Errorf("unexpected verdict attribute %d", binary.NativeEndian.Uint16(attrs[2:]))
			}
			attrs = attrs[align4(alen):]
		}
		out = append(out, v)
		b = b[n:]
	}
	return out
}

func TestAppendVerdict(t *testing.T) {
	b, err := AppendVerdict(nil, 5, 77, true, []byte{9, 8, 7})
	if err != nil {
		t.Fatal(err)
	}
	b = AppendVerdictBatch(b, 5, 90, false)
	b, _ = AppendVerdict(b, 5, 91, false, nil)
	want := []verdictOut{
		{Queue: 5, ID: 77, Accept: true, Payload: []byte{9, 8, 7}},
		{Batch: true, Queue: 5, ID: 90},
		{Queue: 5, ID: 91},
	}
	if diff := cmp.Diff(want, decodeVerdicts(t, b)); diff != "" {
		t.Errorf("AppendVerdict() (-want +got):\n%s", diff)
	}
	if _, err := AppendVerdict(nil, 0, 1, true, make([]byte, MaxCopyRange+1)); !errors.Is(err, ErrPayloadTooLong) {
		t.Errorf("AppendVerdict(%d bytes) error = %v, want %v", MaxCopyRange+1, err, ErrPayloadTooLong)
	}
}

func TestAppendConfigBind(t *testing.T) {
	for _, failOpen := range []bool{false, true} {
		b := appendConfigBind(nil, 9, 4, 1000, failOpen)
		if got := binary.NativeEndian.Uint32(b); int(got) != len(b) {
			t.Fatalf("length field = %d, want %d", got, len(b))
		}
		attrs := map[uint16][]byte{}
		for a := b[nlmsgHdrLen+nfgenLen:]; len(a) > 0; {
			n := int(binary.NativeEndian.Uint16(a))
			attrs[binary.NativeEndian.Uint16(a[2:])] = a[4:n]
			a = a[align4(n):]
		}
		if got := attrs[nfqaCfgCmd][0]; got != nfqnlCfgCmdBind {
			t.Errorf("command = %d, want bind", got)
		}
		if got := attrs[nfqaCfgParams]; len(got) != 5 || got[4] != nfqnlCopyPacket || binary.BigEndian.Uint32(got) != 0xffff {
			t.Errorf("params = %v, want copy packet range 0xffff", got)
		}
		if got := binary.BigEndian.Uint32(attrs[nfqaCfgQueueMaxLen]); got != 1000 {
			t.Errorf("maxlen = %d, want 1000", got)
		}
		want := uint32(nfqaCfgFGSO)
		if failOpen {
			want |= nfqaCfgFFailOpen
		}
		if got := binary.BigEndian.Uint32(attrs[nfqaCfgFlags]); got != want {
			t.Errorf("failOpen %v: flags = %#x, want %#x", failOpen, got, want)
		}
	}
}

// fakeProc decides by the first payload byte: 'A' accept, 'D' drop, 'R'
// rewrite (accept with the bytes upper-cased into its own buffer), 'I'
// drop and inject the packet twice, anything else an invalid verdict.
type fakeProc struct {
	buf   [64]byte
	inj   [2][]byte
	metas []engine.Meta
	keep  bool
}

func (p *fakeProc) Process(pkt []byte, meta engine.Meta, now time.Time, r *engine.Result) {
	if p.keep {
		p.metas = append(p.metas, meta)
	}
	switch pkt[0] {
	case 'A':
		r.Verdict = engine.Accept
	case 'D':
		r.Verdict = engine.Drop
	case 'R':
		n := copy(p.buf[:], pkt)
		for i := range n {
			p.buf[i] &^= 0x20
		}
		r.Verdict, r.Packet = engine.Accept, p.buf[:n]
	case 'I':
		p.inj[0], p.inj[1] = pkt, pkt
		r.Verdict, r.Inject = engine.Drop, p.inj[:]
	}
}

type fakeInj struct{ sent [][]byte }

func (f *fakeInj) Send(pkts [][]byte) (int, error) {
	for _, p := range pkts {
		f.sent = append(f.sent, append([]byte(nil), p...))
	}
	return len(pkts), nil
}

type fakeKernel struct{ writes [][]byte }

func (k *fakeKernel) send(b []byte) error {
	k.writes = append(k.writes, append([]byte(nil), b...))
	return nil
}

func TestPipelineFIFOAndBatching(t *testing.T) {
	proc := &fakeProc{keep: true}
	inj := &fakeInj{}
	k := &fakeKernel{}
	c := &counters{queue: 2}
	p := newPipeline(2, proc, inj, c, k.send)
	now := time.Unix(1000, 0)
	in := []string{"A1", "A2", "A3", "D4", "rwq", "A6", "D7", "D8", "I9", "x10", "A11"}
	for i, s := range in {
		pkt := Packet{ID: uint32(i + 1), Payload: []byte(s)}
		if i == 0 {
			pkt.SkbInfo = SkbCsumNotReady
		}
		if i == 2 {
			pkt.SkbInfo = SkbCsumCorrupt
		}
		if s == "rwq" {
			pkt.Payload[0] = 'R'
		}
		if err := p.handle(&pkt, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.flush(); err != nil {
		t.Fatal(err)
	}
	if len(k.writes) != 1 {
		t.Fatalf("writes = %d, want 1 per flush", len(k.writes))
	}
	got := decodeVerdicts(t, k.writes[0])
	want := []verdictOut{
		{Batch: true, Queue: 2, ID: 3, Accept: true}, // A1-A3 folded
		{Queue: 2, ID: 4}, // D4 alone
		{Queue: 2, ID: 5, Accept: true, Payload: []byte("RWQ")},
		{Queue: 2, ID: 6, Accept: true},
		{Batch: true, Queue: 2, ID: 10}, // D7, D8, I9 and the invalid x10 dropped
		{Queue: 2, ID: 11, Accept: true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([][]byte{[]byte("I9"), []byte("I9")}, inj.sent); diff != "" {
		t.Errorf("injected (-want +got):\n%s", diff)
	}
	if !proc.metas[0].CsumNotReady || proc.metas[1].CsumNotReady {
		t.Errorf("CsumNotReady = %v, %v, want true, false", proc.metas[0].CsumNotReady, proc.metas[1].CsumNotReady)
	}
	if proc.metas[0].CsumNotVerified || proc.metas[1].CsumNotVerified || !proc.metas[2].CsumNotVerified {
		t.Errorf("CsumNotVerified = %v, %v, %v, want false, false, true", proc.metas[0].CsumNotVerified, proc.metas[1].CsumNotVerified, proc.metas[2].CsumNotVerified)
	}
	s := c.snapshot()
	wantStats := Stats{Queue: 2, Packets: 11, Accepted: 5, AcceptedAltered: 1, Dropped: 5, VerdictMsgs: 4, Batches: 2, Sends: 1, Injected: 2, BadVerdicts: 1}
	if diff := cmp.Diff(wantStats, s); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func TestPipelineTruncatedAndFull(t *testing.T) {
	k := &fakeKernel{}
	c := &counters{}
	p := newPipeline(0, &fakeProc{}, &fakeInj{}, c, k.send)
	now := time.Unix(0, 0)
	if err := p.handle(&Packet{ID: 1, CapLen: 70000, Payload: []byte("AAAA")}, now); err != nil {
		t.Fatal(err)
	}
	if got := c.truncated.Load(); got != 1 {
		t.Errorf("truncated = %d, want 1", got)
	}
	if p.full(now, time.Millisecond) {
		t.Errorf("full() after 1 packet at once = true, want false")
	}
	if !p.full(now.Add(time.Millisecond), time.Millisecond) {
		t.Errorf("full() after the flush interval = false, want true")
	}
	for i := 2; i <= maxPending; i++ {
		_ = p.handle(&Packet{ID: uint32(i), Payload: []byte("A")}, now)
	}
	if !p.full(now, time.Second) {
		t.Errorf("full() with %d pending = false, want true", maxPending)
	}
	_ = p.flush()
	want := []verdictOut{{ID: 1}, {Batch: true, ID: maxPending, Accept: true}}
	if diff := cmp.Diff(want, decodeVerdicts(t, k.writes[0])); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}
}

func TestPipelineLargePayloadsSplitWrites(t *testing.T) {
	k := &fakeKernel{}
	big := make([]byte, MaxCopyRange)
	proc := procFunc(func(pkt []byte, r *engine.Result) { r.Verdict, r.Packet = engine.Accept, big })
	p := newPipeline(0, proc, &fakeInj{}, &counters{}, k.send)
	for i := 1; i <= 5; i++ {
		_ = p.handle(&Packet{ID: uint32(i), Payload: []byte{1}}, time.Time{})
	}
	_ = p.flush()
	var ids []uint32
	for _, w := range k.writes {
		if len(w) > sendBufSize {
			t.Errorf("write of %d bytes, more than the send buffer %d", len(w), sendBufSize)
		}
		for _, v := range decodeVerdicts(t, w) {
			ids = append(ids, v.ID)
		}
	}
	if diff := cmp.Diff([]uint32{1, 2, 3, 4, 5}, ids); diff != "" {
		t.Errorf("ids (-want +got):\n%s", diff)
	}
}

type procFunc func(pkt []byte, r *engine.Result)

func (f procFunc) Process(pkt []byte, _ engine.Meta, _ time.Time, r *engine.Result) { f(pkt, r) }

// TestFastPathAllocs asserts that parsing a message, processing it and
// encoding and flushing its verdict allocate nothing.
func TestFastPathAllocs(t *testing.T) {
	msgs := [][]byte{
		packetMsg(0, 1, SkbCsumNotReady, 0, []byte("A......")),
		packetMsg(0, 2, 0, 0, []byte("D..")),
		packetMsg(0, 3, 0, 0, []byte("R.......")),
		packetMsg(0, 4, 0, 0, []byte("I.........")),
	}
	p := newPipeline(0, &fakeProc{}, nopInj{}, &counters{}, func([]byte) error { return nil })
	var m Message
	now := time.Unix(1, 0)
	allocs := testing.AllocsPerRun(200, func() {
		for _, b := range msgs {
			if _, err := ParseMessage(b, &m); err != nil {
				t.Fatal(err)
			}
			_ = p.handle(&m.Packet, now)
		}
		_ = p.flush()
	})
	if allocs != 0 {
		t.Errorf("parse+handle+flush allocs = %v, want 0", allocs)
	}
}

type nopInj struct{}

func (nopInj) Send(pkts [][]byte) (int, error) { return len(pkts), nil }

func BenchmarkParseMessage(b *testing.B) {
	var msgs [][]byte
	for i := range 64 {
		msgs = append(msgs, packetMsg(0, uint32(i), uint32(i&1), 0, make([]byte, 40+i*23)))
	}
	var m Message
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := ParseMessage(msgs[i%len(msgs)], &m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeVerdicts(b *testing.B) {
	// A drain of 64 packets, one in eight altered: what one flush writes.
	var msgs [][]byte
	for i := range 64 {
		c := byte('A')
		switch {
		case i%8 == 0:
			c = 'R'
		case i%3 == 0:
			c = 'D'
		}
		pl := make([]byte, 40)
		pl[0] = c
		msgs = append(msgs, packetMsg(0, uint32(i+1), 0, 0, pl))
	}
	written := 0
	p := newPipeline(0, &fakeProc{}, nopInj{}, &counters{}, func(o []byte) error { written += len(o); return nil })
	var m Message
	b.ReportAllocs()
	for b.Loop() {
		for _, raw := range msgs {
			_, _ = ParseMessage(raw, &m)
			_ = p.handle(&m.Packet, time.Time{})
		}
		_ = p.flush()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(msgs)), "ns/pkt")
	b.ReportMetric(float64(written)/float64(b.N), "B/flush")
}
