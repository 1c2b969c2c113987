//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package synstage

import (
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
	"github.com/synwall/synwall/internal/policy"
)

// benchPackets are the packets of BenchmarkProgram: a Linux SYN of each
// family to a proxied service, a SYN without options, an invalid flag
// combination, a handshake ACK (left to the engine) and unguarded traffic.
func benchPackets(tb testing.TB) []struct {
	name string
	ip   []byte
	want string
} {
	linux := synSpec{mss: 1460, ws: 7, sack: true, ts: true, isn: 0x12345678, sport: 40000, tsval: 99, port: portFull}
	v6 := linux
	v6.v6 = true
	bare := linux
	bare.mss, bare.ws, bare.sack, bare.ts = -1, -1, false, false
	synfin := linux
	synfin.flags = header.SYN | header.FIN
	ack := linux
	ack.flags = header.ACK
	other := linux
	other.port = portOther
	return []struct {
		name string
		ip   []byte
		want string
	}{
		{"syn4-answer", synPacket(tb, linux), "answer"},
		{"syn6-answer", synPacket(tb, v6), "answer"},
		{"syn4-noopts-answer", synPacket(tb, bare), "answer"},
		{"synfin-drop", synPacket(tb, synfin), "drop"},
		{"ack-pass", synPacket(tb, ack), "pass"},
		{"unguarded-pass", synPacket(tb, other), "pass"},
	}
}

// emptyProgram returns a program of type typ that only returns ret: the
// fixed cost of a BPF_PROG_TEST_RUN repetition.
func emptyProgram(b *testing.B, typ ebpf.ProgramType, ret int32) *ebpf.Program {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: typ, License: "MIT",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, ret), asm.Return()}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { prog.Close() })
	return prog
}

// BenchmarkProgram measures the program's own cost per packet with
// BPF_PROG_TEST_RUN, the SYN cache shared with an engine (so that an answer
// includes writing the entry). A run repeated on one buffer would answer its own
// SYN-ACK, so every measurement is a run of one repetition on a fresh copy
// of the packet: prog-ns/op is the time the kernel measured around the
// program less the same measure of a program that only returns (the test
// harness's own cost), averaged over many runs; ns/op adds the system call
// and the copies.
// engine-SYN is the Go engine's Process on the same SYN, for comparison
// (the NFQUEUE path also crosses the kernel twice per packet).
func BenchmarkProgram(b *testing.B) {
	p := newPairCache(b, diffPolicy(b), true) // answers write the shared SYN cache
	emptyTC := emptyProgram(b, ebpf.SchedCLS, tcOK)
	emptyXDP := emptyProgram(b, ebpf.XDP, xdpPass)
	for _, pk := range benchPackets(b) {
		frame := ethernet(pk.ip)
		for _, x := range []struct {
			name  string
			prog  *ebpf.Program
			xdp   bool
			empty *ebpf.Program
		}{{"tc", p.s.objs.SynstageTc, false, emptyTC}, {"xdp", p.s.objs.SynstageXdp, true, emptyXDP}} {
			if got := p.runBPF(x.prog, x.xdp, frame); got.Kind != pk.want {
				b.Fatalf("%s %s: %s, want %s", x.name, pk.name, got.Kind, pk.want)
			}
			b.Run(x.name+"/"+pk.name, func(b *testing.B) {
				var total time.Duration
				out := make([]byte, len(frame)+256)
				for b.Loop() {
					ro := ebpf.RunOptions{Data: frame, DataOut: out}
					if _, err := x.prog.Run(&ro); err != nil {
						b.Fatal(err)
					}
				}
				// The kernel's own measure, on separate runs, less the
				// harness's.
				const runs = 5000
				for range runs {
					_, d, err := x.prog.Benchmark(frame, 1, nil)
					if err != nil {
						b.Fatal(err)
					}
					_, d0, err := x.empty.Benchmark(frame, 1, nil)
					if err != nil {
						b.Fatal(err)
					}
					total += d - d0
				}
				b.ReportMetric(float64(total.Nanoseconds())/runs, "prog-ns/op")
			})
		}
	}
	b.Run("engine-SYN", func(b *testing.B) {
		ip := benchPackets(b)[0].ip
		buf := make([]byte, len(ip))
		var r engine.Result
		b.ReportAllocs()
		for b.Loop() {
			copy(buf, ip)
			p.w.Process(buf, engine.Meta{}, p.now, &r)
		}
		if r.Event != engine.EventSynAnswered {
			b.Fatalf("engine: %v", r.Event)
		}
	})
}

// BenchmarkProgramSources is the answer to a Linux SYN from a new source
// each time, under the per-source limit (the default's 1000/s by /32 per
// service, so none is refused): a spoofed random-source flood, where every
// SYN finds its prefix's limiter slot taken by another or cold. prog-ns/op
// is measured as in BenchmarkProgram.
func BenchmarkProgramSources(b *testing.B) {
	pol := diffPolicy(b)
	for _, s := range pol.Services {
		if s.Mode == policy.ModeProxy {
			s.Limit = policy.SourceLimit{Rate: policy.PerSecond(policy.DefaultSourceRate), Burst: policy.DefaultSourceBurst,
				Prefix4: policy.DefaultPrefix4, Prefix6: policy.DefaultPrefix6}
		}
	}
	p := newPairCache(b, pol, true)
	emptyTC := emptyProgram(b, ebpf.SchedCLS, tcOK)
	const sources = 1 << 17 // twice the limiter table: every slot taken over
	frames := make([][]byte, sources)
	for i := range frames {
		src := netip.AddrFrom4([4]byte{198, 18 + byte(i>>16), byte(i >> 8), byte(i)})
		frames[i] = ethernet(synPacket(b, synSpec{src: src, mss: 1460, ws: 7, sack: true, ts: true, isn: uint32(i) * 7919,
			sport: uint16(1024 + i), tsval: 99, port: portFull}))
	}
	if got := p.runBPF(p.s.objs.SynstageTc, false, frames[0]); got.Kind != "answer" {
		b.Fatalf("first SYN: %s, want answer", got.Kind)
	}
	var total time.Duration
	runs := 0
	for b.Loop() {
		f := frames[runs%sources]
		_, d, err := p.s.objs.SynstageTc.Benchmark(f, 1, nil)
		if err != nil {
			b.Fatal(err)
		}
		_, d0, err := emptyTC.Benchmark(f, 1, nil)
		if err != nil {
			b.Fatal(err)
		}
		total += d - d0
		runs++
	}
	st, err := p.s.Stats()
	if err != nil {
		b.Fatal(err)
	}
	if st.SynLimited != 0 || st.Answered < uint64(runs) {
		b.Fatalf("Stats() = %+v: want every one of %d SYNs answered", st, runs)
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(runs), "prog-ns/op")
}
