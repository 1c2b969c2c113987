package gateway

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/synwall/synwall/internal/cookies"
	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
)

// restartConn is one connection of the restart test, set up on the old
// engine before the restart.
type restartConn struct {
	v6       bool
	port     uint16
	serverWS int    // -1: the server sends no window scale
	state    string // "established", "synsent", "synack" (only our SYN-ACK sent)
	cookie   uint32
	ourTS    uint32
}

// restartPair is the old engine and its harness, and a copy made by saving
// and restoring its state into a new engine with other random seeds.
func restartSetup(t *testing.T, conns []restartConn) (old, fresh [2]*harness) {
	t.Helper()
	for i, v6 := range []bool{false, true} {
		old[i] = newHarness(t, v6, testAdvertise())
	}
	for k := range conns {
		c := &conns[k]
		h := old[boolByte(c.v6)]
		syn := fullSyn()
		syn.sport = c.port
		r := h.expect(h.craft(syn), engine.Drop, engine.EventSynAnswered)
		sa := decode(t, r.Inject[0])
		c.cookie, c.ourTS = sa.Seq, sa.TSVal
		if c.state == "synack" {
			continue
		}
		h.expect(h.craft(seg{sport: c.port, flags: header.ACK, seq: clientISN + 1, ack: c.cookie + 1, win: 502, ts: true, tsVal: clientTS + 1, tsEcr: c.ourTS}), engine.Accept, engine.EventHandshake)
		if c.state == "synsent" {
			continue
		}
		ssa := seg{fromServer: true, dport: c.port, flags: header.SYN | header.ACK, seq: serverISN, ack: clientISN + 1, win: 65160,
			mss: 1400, sackPerm: true, ts: true, tsVal: serverTS, tsEcr: clientTS + 1}
		if c.serverWS >= 0 {
			ssa.hasWS, ssa.ws = true, c.serverWS
		}
		h.expect(h.craft(ssa), engine.Drop, engine.EventServerUp)
	}
	// Both engines share one clock from here on.
	at := t0.Add(2 * time.Second)
	for i := range old {
		old[i].now = at
	}
	var states [2][]byte
	for i := range old {
		var buf bytes.Buffer
		if err := old[i].e.SaveState(&buf, at); err != nil {
			t.Fatalf("SaveState: %v", err)
		}
		states[i] = buf.Bytes()
	}
	restart := at.Add(800 * time.Millisecond)
	for i, v6 := range []bool{false, true} {
		st, err := ReadState(bytes.NewReader(states[i]), restart)
		if err != nil {
			t.Fatalf("ReadState: %v", err)
		}
		if st.Keys != old[i].e.Jar().Keys() {
			t.Fatalf("ReadState keys differ from the saved engine's")
		}
		jar, err := cookies.NewFromKeys(cookies.Config{Period: 30 * time.Second}, st.Keys, restart)
		if err != nil {
			t.Fatalf("NewFromKeys: %v", err)
		}
		fresh[i] = newHarness(t, v6, testAdvertise(), func(c *Config) {
			c.Cookies = jar
			c.Rand = seeded(1234) // other flow-table and SYN-cache seeds
		})
		fresh[i].now = restart
		want := 0
		for _, c := range conns {
			if c.v6 == v6 && c.state != "synack" {
				want++
			}
		}
		if n := fresh[i].e.Restore(st, restart); n != want || st.Flows() != want {
			t.Fatalf("Restore = %d of %d flows, want %d", n, st.Flows(), want)
		}
		old[i].now = restart
	}
	return old, fresh
}

// TestRestoreTranslatesAlike: after a save and a restore into a new engine
// (other seeds, same cookie keys), every packet of every flow comes out of
// the new engine byte for byte as out of the old one: data both ways with
// timestamps and SACK, window rescaling, a server SYN-ACK for a flow that
// was handshaking, a handshake ACK to a SYN-ACK sent before the restart,
// FIN both ways.
func TestRestoreTranslatesAlike(t *testing.T) {
	conns := []restartConn{
		{false, 40001, 7, "established", 0, 0},
		{false, 40002, 2, "established", 0, 0}, // rescaled windows
		{false, 40003, -1, "established", 0, 0},
		{false, 40004, 7, "synsent", 0, 0},
		{false, 40005, 7, "synack", 0, 0},
		{true, 40011, 7, "established", 0, 0},
		{true, 40012, 9, "established", 0, 0},
		{true, 40013, 7, "synsent", 0, 0},
		{true, 40014, 7, "synack", 0, 0},
	}
	old, fresh := restartSetup(t, conns)
	same := func(t *testing.T, name string, pkt []byte, i int, wantEv engine.Event) {
		t.Helper()
		a := old[i].run(append([]byte(nil), pkt...), engine.Meta{})
		b := fresh[i].run(append([]byte(nil), pkt...), engine.Meta{})
		if a.Event != wantEv {
			t.Fatalf("%s: old engine: %v/%v, want event %v (test setup)", name, a.Verdict, a.Event, wantEv)
		}
		type res struct {
			Verdict engine.Verdict
			Event   engine.Event
			Packet  []byte
			Inject  [][]byte
		}
		if d := cmp.Diff(res{a.Verdict, a.Event, a.Packet, a.Inject}, res{b.Verdict, b.Event, b.Packet, b.Inject}); d != "" {
			t.Errorf("%s: restored engine differs (-old +restored):\n%s", name, d)
		}
	}
	for _, c := range conns {
		i := int(boolByte(c.v6))
		h := old[i]
		t.Run(c.state+"/"+map[bool]string{false: "ipv4", true: "ipv6"}[c.v6], func(t *testing.T) {
			switch c.state {
			case "synack":
				// The SYN cache is not saved: the restored engine checks
				// the cookie alone, as the old one does once the entry is
				// gone (the MSS is then the cookie's class).
				h.clearCache()
				same(t, "handshake ACK", h.craft(seg{sport: c.port, flags: header.ACK, seq: clientISN + 1, ack: c.cookie + 1, win: 502, ts: true, tsVal: clientTS + 2, tsEcr: c.ourTS}), i, engine.EventHandshake)
				return
			case "synsent":
				same(t, "server SYN-ACK", h.craft(seg{fromServer: true, dport: c.port, flags: header.SYN | header.ACK, seq: serverISN, ack: clientISN + 1, win: 65160,
					mss: 1400, sackPerm: true, ts: true, tsVal: serverTS, tsEcr: clientTS + 1, hasWS: true, ws: c.serverWS}), i, engine.EventServerUp)
			}
			same(t, "client data", h.craft(seg{sport: c.port, flags: header.ACK | header.PSH, seq: clientISN + 1, ack: c.cookie + 1, win: 501, ts: true, tsVal: clientTS + 5, tsEcr: c.ourTS + 3, payload: "GET / HTTP/1.1\r\n\r\n"}), i, engine.EventTranslated)
			same(t, "server data", h.craft(seg{fromServer: true, dport: c.port, flags: header.ACK | header.PSH, seq: serverISN + 1, ack: clientISN + 19, win: 1000, ts: true, tsVal: serverTS + 7, tsEcr: clientTS + 5, payload: "HTTP/1.1 200 OK\r\n\r\nhello"}), i, engine.EventTranslated)
			same(t, "client SACK", h.craft(seg{sport: c.port, flags: header.ACK, seq: clientISN + 19, ack: c.cookie + 1, win: 700, ts: true, tsVal: clientTS + 9, tsEcr: c.ourTS + 9,
				sack: [][2]uint32{{c.cookie + 1000, c.cookie + 2000}}}), i, engine.EventTranslated)
			same(t, "server FIN", h.craft(seg{fromServer: true, dport: c.port, flags: header.ACK | header.FIN, seq: serverISN + 25, ack: clientISN + 19, win: 1000, ts: true, tsVal: serverTS + 9, tsEcr: clientTS + 9}), i, engine.EventTranslated)
			same(t, "client FIN", h.craft(seg{sport: c.port, flags: header.ACK | header.FIN, seq: clientISN + 19, ack: c.cookie + 26, win: 700, ts: true, tsVal: clientTS + 10, tsEcr: c.ourTS + 10}), i, engine.EventTranslated)
		})
	}
	// A fresh engine with fresh keys and no restored state knows none of it.
	cold := newHarness(t, false, testAdvertise(), func(c *Config) { c.Rand = seeded(99) })
	cold.now = old[0].now
	r := cold.run(old[0].craft(seg{sport: 40001, flags: header.ACK, seq: clientISN + 1, ack: conns[0].cookie + 1, win: 501, ts: true, tsVal: clientTS + 5, tsEcr: conns[0].ourTS + 3, payload: "x"}), engine.Meta{})
	if r.Event == engine.EventTranslated {
		t.Errorf("an engine without the restored state translated a flow it never saw")
	}
}

// TestRestoreTwiceKeepsOne: a state file read back and restored into an
// engine built with its keys gives back its flow, and restoring it again
// adds none.
func TestRestoreTwiceKeepsOne(t *testing.T) {
	h := newHarness(t, false, testAdvertise())
	h.establish(7, "")
	var buf bytes.Buffer
	if err := h.e.SaveState(&buf, h.now); err != nil {
		t.Fatal(err)
	}
	st, err := ReadState(bytes.NewReader(buf.Bytes()), h.now)
	if err != nil {
		t.Fatalf("ReadState = %v", err)
	}
	if st.Keys != h.e.Jar().Keys() {
		t.Errorf("ReadState: keys differ from the engine's")
	}
	same := newHarness(t, false, testAdvertise(), func(c *Config) { c.Cookies = h.e.Jar() })
	if n := same.e.Restore(st, h.now); n != 1 {
		t.Errorf("Restore = %d, want 1", n)
	}
	if _, ok := same.flowOf(); !ok {
		t.Errorf("restored flow not found")
	}
	if n := same.e.Restore(st, h.now); n != 0 {
		t.Errorf("second Restore = %d, want 0 new flows", n)
	}
	if got := same.e.Stats().FlowsActive; got != 1 {
		t.Errorf("FlowsActive after two restores = %d, want 1", got)
	}
}

// TestRestoreSkipsExpired: flows that time out before the restore are left
// out.
func TestRestoreSkipsExpired(t *testing.T) {
	h := newHarness(t, false, testAdvertise())
	h.establish(7, "")
	var buf bytes.Buffer
	if err := h.e.SaveState(&buf, h.now); err != nil {
		t.Fatal(err)
	}
	later := h.now.Add(2 * time.Minute) // the test policy's idle timeout is a minute
	st, err := ReadState(bytes.NewReader(buf.Bytes()), later)
	if err != nil {
		t.Fatal(err)
	}
	fresh := newHarness(t, false, testAdvertise(), func(c *Config) { c.Cookies = h.e.Jar() })
	if n := fresh.e.Restore(st, later); n != 0 {
		t.Errorf("Restore of an idle-expired flow = %d, want 0", n)
	}
}

// savedState returns a valid state file with two flows, saved at t0.
func savedState(t testing.TB) []byte {
	h := newHarness(t, false, testAdvertise())
	h.establish(7, "")
	syn := fullSyn()
	syn.sport = 40100
	r := h.expect(h.craft(syn), engine.Drop, engine.EventSynAnswered)
	sa := decode(t, r.Inject[0])
	h.expect(h.craft(seg{sport: 40100, flags: header.ACK, seq: clientISN + 1, ack: sa.Seq + 1, win: 502, ts: true, tsVal: clientTS + 1, tsEcr: sa.TSVal}), engine.Accept, engine.EventHandshake)
	var buf bytes.Buffer
	if err := h.e.SaveState(&buf, t0); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// resum recomputes the checksum of a state file after a test edited it.
func resum(b []byte) []byte {
	end := len(b) - 4
	binary.LittleEndian.PutUint32(b[end:], crc32.Checksum(b[:end], castagnoli))
	return b
}

func TestReadStateRefuses(t *testing.T) {
	good := savedState(t)
	if _, err := ReadState(bytes.NewReader(good), t0); err != nil {
		t.Fatalf("ReadState(good) = %v", err)
	}
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	rec := stateHeaderLen // first flow record
	for _, tc := range []struct {
		name string
		in   []byte
		now  time.Time
		want error
	}{
		{"empty", nil, t0, ErrStateTruncated},
		{"other file", []byte("#!/bin/sh\necho not a state file, but long enough to hold a header\n"), t0, ErrStateMagic},
		{"short other file", []byte("hello"), t0, ErrStateMagic},
		{"magic only", good[:8], t0, ErrStateTruncated},
		{"header only", good[:stateHeaderLen], t0, ErrStateTruncated},
		{"one byte short", good[:len(good)-1], t0, ErrStateTruncated},
		{"half a flow", good[:stateHeaderLen+flowRecordLen/2], t0, ErrStateTruncated},
		{"trailing byte", append(bytes.Clone(good), 0), t0, ErrStateMalformed},
		{"version 2", edit(func(b []byte) []byte { b[8] = 2; return resum(b) }), t0, ErrStateVersion},
		{"reserved set", edit(func(b []byte) []byte { b[10] = 1; return resum(b) }), t0, ErrStateMalformed},
		{"flipped bit", edit(func(b []byte) []byte { b[rec+50] ^= 4; return b }), t0, ErrStateChecksum},
		{"flipped checksum", edit(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), t0, ErrStateChecksum},
		{"too many flows", edit(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[stateHeaderLen-4:], 1<<30); return b }), t0, ErrStateMalformed},
		{"more flows than bytes", edit(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[stateHeaderLen-4:], 3); return b }), t0, ErrStateTruncated},
		{"too old", good, t0.Add(MaxStateAge + time.Second), ErrStateTooOld},
		{"from the future", good, t0.Add(-time.Minute), ErrStateFuture},
		{"zero period", edit(func(b []byte) []byte { clear(b[20:28]); return resum(b) }), t0, ErrStateMalformed},
		{"bad family", edit(func(b []byte) []byte { b[rec+36] = 2; return resum(b) }), t0, ErrStateMalformed},
		{"ipv4 with junk", edit(func(b []byte) []byte { b[rec+9] = 1; return resum(b) }), t0, ErrStateMalformed},
		{"free slot state", edit(func(b []byte) []byte { b[rec+37] = 0; return resum(b) }), t0, ErrStateMalformed},
		{"unknown state", edit(func(b []byte) []byte { b[rec+37] = 9; return resum(b) }), t0, ErrStateMalformed},
		{"unknown flag", edit(func(b []byte) []byte { b[rec+39] = 0x80; return resum(b) }), t0, ErrStateMalformed},
		{"shift 15", edit(func(b []byte) []byte { b[rec+41] = 15; return resum(b) }), t0, ErrStateMalformed},
		{"window scale -2", edit(func(b []byte) []byte { b[rec+flowRecordLen-1] = 0xfe; return resum(b) }), t0, ErrStateMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := ReadState(bytes.NewReader(tc.in), tc.now)
			if !errors.Is(err, tc.want) {
				t.Errorf("ReadState = %v, %v; want error %v", st, err, tc.want)
			}
		})
	}
}

// TestStateRecordLen: the record layout and its length constant agree.
func TestStateRecordLen(t *testing.T) {
	var f flow
	f.sentWS, f.advWS = -1, -1
	if n := len(appendFlow(nil, &f)); n != flowRecordLen {
		t.Errorf("len(appendFlow) = %d, want flowRecordLen %d", n, flowRecordLen)
	}
}

func FuzzReadState(f *testing.F) {
	good := savedState(f)
	f.Add(good)
	f.Add(good[:stateHeaderLen])
	f.Add([]byte(stateMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ReadState(bytes.NewReader(b), t0)
		if err != nil {
			return
		}
		// Whatever is accepted restores without trouble and saves again to
		// the same bytes.
		h := newHarness(t, false, testAdvertise())
		h.e.Restore(st, t0)
		var buf bytes.Buffer
		if err := h.e.SaveState(&buf, st.Saved); err != nil {
			t.Fatal(err)
		}
		st2, err := ReadState(bytes.NewReader(buf.Bytes()), t0)
		if err != nil {
			t.Fatalf("ReadState(SaveState(restored)) = %v", err)
		}
		if st2.Flows() > st.Flows() {
			t.Fatalf("saved %d flows after restoring %d", st2.Flows(), st.Flows())
		}
	})
}

// fillFlows puts n established flows with distinct tuples into e.
func fillFlows(tb testing.TB, e *Engine, n int, now time.Time) {
	tb.Helper()
	nowNs := now.UnixNano()
	for i := range n {
		t := cookies.Tuple{SrcPort: uint16(1024 + i%60000), DstPort: serverPort}
		t.Src[0], t.Src[1], t.Src[2], t.Src[3] = 198, 18, byte(i>>16), byte(i>>8)
		t.Dst[0], t.Dst[1], t.Dst[2], t.Dst[3] = 198, 19, 0, 1
		var k flowKey
		k.set(&t.Src, &t.Dst, t.SrcPort, t.DstPort, t.V6)
		b, tag := e.flows.bucketKey(&k)
		mu := e.flows.lock(b)
		mu.Lock()
		f := e.flows.add(b, tag, &t, nowNs, nil)
		f.state, f.delta, f.tsOff, f.useTS, f.sentWS, f.advWS = stateEstablished, uint32(i)*7919, uint32(i), true, 7, 7
		mu.Unlock()
	}
}

// BenchmarkSaveState and BenchmarkRestoreState: a graceful restart's cost for
// a table of 64k established flows (the default flow table size).
func BenchmarkSaveState(b *testing.B) {
	h := newHarness(b, false, testAdvertise(), func(c *Config) { c.Flows = 1 << 16 })
	fillFlows(b, h.e, 1<<16, t0)
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := h.e.SaveState(&buf, t0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len()), "bytes")
	b.ReportMetric(float64(h.e.Stats().FlowsActive), "flows")
}

func BenchmarkRestoreState(b *testing.B) {
	h := newHarness(b, false, testAdvertise(), func(c *Config) { c.Flows = 1 << 16 })
	fillFlows(b, h.e, 1<<16, t0)
	var buf bytes.Buffer
	if err := h.e.SaveState(&buf, t0); err != nil {
		b.Fatal(err)
	}
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		fresh := newHarness(b, false, testAdvertise(), func(c *Config) { c.Flows = 1 << 16; c.Rand = seeded(5) })
		b.StartTimer()
		st, err := ReadState(bytes.NewReader(buf.Bytes()), t0)
		if err != nil {
			b.Fatal(err)
		}
		n = fresh.e.Restore(st, t0)
	}
	b.ReportMetric(float64(n), "flows")
}
