package gateway

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
)

// fixture holds many varied pre-built packets for each path of the engine:
// IPv4 and IPv6 clients, different addresses and ports, options with and
// without timestamps.
type fixture struct {
	e   *Engine
	w   *Worker
	now time.Time

	syn, ack, c2s, s2c, bad [][]byte
	// synSeqOff is where each SYN's sequence number sits, so that a
	// benchmark can vary the ISN (a new connection each time). The SYNs
	// come from tuples that have no flow.
	synSeqOff []int
}

func fixtureAddrs(i int) (client, server netip.Addr, cport uint16) {
	cport = uint16(1024 + i)
	if i%2 == 1 {
		var c [16]byte
		copy(c[:], client6.AsSlice())
		binary.BigEndian.PutUint16(c[12:], uint16(i))
		return netip.AddrFrom16(c), server6, cport
	}
	c := client4.As4()
	c[2], c[3] = byte(i>>8), byte(i)
	return netip.AddrFrom4(c), server4, cport
}

// newFixture builds n connections' worth of packets. With established, it
// also runs every handshake so that c2s/s2c packets belong to live flows.
func newFixture(tb testing.TB, n int, mod ...func(*Config)) *fixture {
	tb.Helper()
	h := newHarness(tb, false, testAdvertise(), append([]func(*Config){func(c *Config) {
		c.Flows = 4 * n
		c.CacheBuckets, c.CacheEntries = 512, 30
		c.PendingSlots = 1024
		c.FlowsPerSource = 4 * n // the IPv6 clients share a /64
	}}, mod...)...)
	fx := &fixture{e: h.e, w: h.w, now: h.now}
	for i := 0; i < n; i++ {
		cl, sv, cport := fixtureAddrs(i)
		ts := i%4 != 3 // a quarter without timestamps
		isn := uint32(i) * 7919
		syn := seg{flags: header.SYN, seq: isn, win: 64240, mss: 1460, sackPerm: true, ts: ts, tsVal: uint32(i), hasWS: true, ws: 7}
		sp := craftPacket(tb, cl, sv, cport, serverPort, syn)
		// The benchmarks' SYNs come from ports without a flow.
		fx.syn = append(fx.syn, craftPacket(tb, cl, sv, cport+30000, serverPort, syn))
		ipl := 20
		if cl.Is6() {
			ipl = 40
		}
		fx.synSeqOff = append(fx.synSeqOff, ipl+4)

		bad := syn
		bad.flags = header.SYN | header.FIN
		fx.bad = append(fx.bad, craftPacket(tb, cl, sv, cport, serverPort, bad))

		var r engine.Result
		h.w.Process(append([]byte(nil), sp...), engine.Meta{}, h.now, &r)
		if r.Event != engine.EventSynAnswered {
			tb.Fatalf("fixture SYN %d: %v", i, r.Event)
		}
		sa := decode(tb, r.Inject[0])
		ack := seg{flags: header.ACK, seq: isn + 1, ack: sa.Seq + 1, win: 502, ts: ts, tsVal: uint32(i) + 1, tsEcr: sa.TSVal}
		ap := craftPacket(tb, cl, sv, cport, serverPort, ack)
		fx.ack = append(fx.ack, ap)
		h.w.Process(append([]byte(nil), ap...), engine.Meta{}, h.now, &r)
		if r.Event != engine.EventHandshake {
			tb.Fatalf("fixture ACK %d: %v", i, r.Event)
		}
		ssa := seg{flags: header.SYN | header.ACK, seq: 5000 + isn, ack: isn + 1, win: 65160, mss: 1400, sackPerm: true, ts: ts, tsVal: 77, tsEcr: uint32(i) + 1, hasWS: true, ws: 7}
		h.w.Process(craftPacket(tb, sv, cl, serverPort, cport, ssa), engine.Meta{}, h.now, &r)
		if r.Event != engine.EventServerUp {
			tb.Fatalf("fixture server SYN-ACK %d: %v", i, r.Event)
		}
		data := seg{flags: header.ACK | header.PSH, seq: isn + 1, ack: sa.Seq + 1, win: 502, ts: ts, tsVal: uint32(i) + 2, tsEcr: sa.TSVal, payload: "GET / HTTP/1.1\r\nHost: x\r\n\r\n"}
		if i%3 == 0 {
			data.sack = [][2]uint32{{sa.Seq + 100, sa.Seq + 200}}
		}
		fx.c2s = append(fx.c2s, craftPacket(tb, cl, sv, cport, serverPort, data))
		sdata := seg{flags: header.ACK, seq: 5001 + isn, ack: isn + 28, win: 1000, ts: ts, tsVal: 78, tsEcr: uint32(i) + 2, payload: string(make([]byte, 1200))}
		fx.s2c = append(fx.s2c, craftPacket(tb, sv, cl, serverPort, cport, sdata))
	}
	return fx
}

const benchConns = 1024

func reportPPS(b *testing.B) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "pkts/s")
	}
}

// BenchmarkSYN: SYN in, cookie SYN-ACK out; every SYN a new connection.
func BenchmarkSYN(b *testing.B) {
	fx := newFixture(b, benchConns)
	var r engine.Result
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i % benchConns
		p := fx.syn[k]
		binary.BigEndian.PutUint32(p[fx.synSeqOff[k]:], uint32(i))
		fx.w.Process(p, engine.Meta{}, fx.now, &r)
	}
	b.StopTimer()
	if r.Event != engine.EventSynAnswered {
		b.Fatalf("event %v", r.Event)
	}
	reportPPS(b)
}

// BenchmarkACK: a valid handshake ACK in, SYN to the server out (cookie
// path: the SYN cache entry is gone after the first round).
func BenchmarkACK(b *testing.B) {
	fx := newFixture(b, benchConns, func(c *Config) { c.HandshakeTimeout = time.Nanosecond })
	var r engine.Result
	now := fx.now
	fx.forgetFlows()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		now = now.Add(time.Microsecond) // the previous round's flow has timed out
		fx.w.Process(fx.ack[i%benchConns], engine.Meta{}, now, &r)
	}
	b.StopTimer()
	if r.Event != engine.EventHandshake {
		b.Fatalf("event %v", r.Event)
	}
	reportPPS(b)
}

// BenchmarkTranslateClient: client data of an established flow rewritten
// for the server.
func BenchmarkTranslateClient(b *testing.B) {
	fx := newFixture(b, benchConns)
	var r engine.Result
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fx.w.Process(fx.c2s[i%benchConns], engine.Meta{}, fx.now, &r)
	}
	b.StopTimer()
	if r.Event != engine.EventTranslated {
		b.Fatalf("event %v", r.Event)
	}
	reportPPS(b)
}

// BenchmarkTranslateServer: server data (1200 bytes) rewritten for the
// client.
func BenchmarkTranslateServer(b *testing.B) {
	fx := newFixture(b, benchConns)
	var r engine.Result
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fx.w.Process(fx.s2c[i%benchConns], engine.Meta{}, fx.now, &r)
	}
	b.StopTimer()
	if r.Event != engine.EventTranslated {
		b.Fatalf("event %v", r.Event)
	}
	reportPPS(b)
}

// BenchmarkDropInvalidFlags: SYN+FIN dropped by the flag checks.
func BenchmarkDropInvalidFlags(b *testing.B) {
	fx := newFixture(b, benchConns)
	var r engine.Result
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fx.w.Process(fx.bad[i%benchConns], engine.Meta{}, fx.now, &r)
	}
	b.StopTimer()
	if r.Event != engine.EventMalformed {
		b.Fatalf("event %v", r.Event)
	}
	reportPPS(b)
}

// forgetFlows empties the flow table, so that the fixture's ACKs open flows
// again.
func (fx *fixture) forgetFlows() {
	for i := range fx.e.flows.slots {
		fx.e.flows.remove(&fx.e.flows.slots[i])
	}
}
