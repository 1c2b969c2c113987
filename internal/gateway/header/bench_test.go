package header

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// benchPackets returns n varied packets of one IP version.
func benchPackets(v6 bool, n int) [][]byte {
	rng := rand.New(rand.NewPCG(17, 18))
	var out [][]byte
	for len(out) < n {
		b := genPacket(rng)
		if (b[0]>>4 == 6) == v6 {
			out = append(out, b)
		}
	}
	return out
}

func benchParse(b *testing.B, v6 bool) {
	pkts := benchPackets(v6, 1024)
	var p Packet
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if Parse(pkts[i&1023], &p) != OK {
			b.Fatal("Parse failed")
		}
		i++
	}
}

func BenchmarkParse4(b *testing.B) { benchParse(b, false) }
func BenchmarkParse6(b *testing.B) { benchParse(b, true) }

func benchChecksum(b *testing.B, n int) {
	rng := rand.New(rand.NewPCG(19, 20))
	bufs := make([][]byte, 64)
	for i := range bufs {
		bufs[i] = make([]byte, n)
		for j := range bufs[i] {
			bufs[i][j] = byte(rng.Uint32())
		}
	}
	b.SetBytes(int64(n))
	b.ReportAllocs()
	var sink uint16
	i := 0
	for b.Loop() {
		sink += Checksum(bufs[i&63], sink)
		i++
	}
}

func BenchmarkChecksum40(b *testing.B)   { benchChecksum(b, 40) }
func BenchmarkChecksum1460(b *testing.B) { benchChecksum(b, 1460) }

// BenchmarkSetTCPChecksum40 is the whole TCP checksum of a 40-byte SYN-ACK
// segment over an IPv4 pseudo-header.
func BenchmarkSetTCPChecksum40(b *testing.B) {
	s := TCP(seg(SYN|ACK, synOpts, nil))
	b.ReportAllocs()
	i := uint32(0)
	for b.Loop() {
		binary.BigEndian.PutUint32(s[TCPSeqNumOffset:], i)
		SetTCPChecksum(false, &src4, &dst4, s)
		i++
	}
}

func BenchmarkChecksumDelta(b *testing.B) {
	rng := rand.New(rand.NewPCG(21, 22))
	vals := make([]uint32, 1024)
	for i := range vals {
		vals[i] = rng.Uint32()
	}
	b.ReportAllocs()
	var c uint16
	i := 0
	for b.Loop() {
		var d ChecksumDelta
		d.Add32(vals[i&1023], vals[(i+1)&1023])
		c = d.Apply(c)
		i++
	}
	_ = c
}

func BenchmarkCheckFlags(b *testing.B) {
	b.ReportAllocs()
	var n int
	i := 0
	for b.Loop() {
		if CheckFlags(uint8(i), i&256 != 0) == OK {
			n++
		}
		i++
	}
	b.ReportMetric(float64(n)/float64(b.N), "ok/op")
}

// BenchmarkParseOptionsLinuxSYN: the options of a Linux SYN.
func BenchmarkParseOptionsLinuxSYN(b *testing.B) {
	rng := rand.New(rand.NewPCG(21, 22))
	segs := make([]TCP, 64)
	for i := range segs {
		segs[i] = seg(SYN, linuxSYNOpts(rng), nil)
	}
	var o Options
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if ParseOptions(segs[i&63], &o) != OK {
			b.Fatal("ParseOptions failed")
		}
		i++
	}
}
