//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package synstage

import (
	"net/netip"
	"testing"
	"time"

	"github.com/synwall/synwall/internal/cookies"
	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway"
)

// TestSharedSynAckBudget: with the engine charging the stage's budget
// (gateway.Config.SynAckLimiter), the program and the engine together send
// no more SYN-ACKs than the policy's global burst (30 in limitsYAML): 20
// answered by the program leave 10 to the engine, and then the program
// refuses too. Once the stage is closed the engine's own bucket applies
// again.
func TestSharedSynAckBudget(t *testing.T) {
	pol := limitsPolicy(t, "drop")
	s := loadStage(t)
	jar, err := cookies.New(cookies.Config{Period: 30 * time.Second}, t0)
	if err != nil {
		t.Fatal(err)
	}
	budget, err := s.SynAckBudget()
	if err != nil {
		t.Fatalf("SynAckBudget: %v", err)
	}
	e, err := gateway.New(gateway.Config{Policy: pol, Cookies: jar, Start: t0, Flows: 1024, PendingSlots: 16, SynAckLimiter: budget})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetPolicy(pol); err != nil {
		t.Fatal(err)
	}
	if err := s.Rotate(jar, time.Now()); err != nil {
		t.Fatal(err)
	}
	p := &pair{tb: t, s: s, e: e, w: e.NewWorker(), now: time.Now()}

	// Sources in /24s of their own, so that only the global limit counts.
	n := 0
	syn := func() []byte {
		n++
		src := netip.AddrFrom4([4]byte{198, 18, byte(10 + n), 5})
		return synPacket(t, synSpec{src: src, port: portFull, mss: 1460, ws: 7, sack: true, isn: uint32(n) * 7919, sport: uint16(1024 + n)})
	}
	count := func(name string, run func([]byte) outcome, k int) map[string]int {
		got := map[string]int{}
		for range k {
			o := run(syn())
			got[o.Kind+" "+o.Reason]++
		}
		t.Logf("%s: %v", name, got)
		return got
	}
	bpf := func(b []byte) outcome { return p.runBPF(s.objs.SynstageTc, false, ethernet(b)) }
	limited := "drop " + engine.EventSynLimited.String()

	if got := count("program", bpf, 20); got["answer "] != 20 {
		t.Errorf("program: %v, want 20 answers", got)
	}
	if got := count("engine", p.runEngine, 20); got["answer "] != 10 || got[limited] != 10 {
		t.Errorf("engine after 20 of the program's SYN-ACKs: %v, want 10 answers and 10 limited (one budget of 30)", got)
	}
	if got := count("program", bpf, 5); got[limited] != 5 {
		t.Errorf("program after the engine's 10: %v, want 5 limited", got)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.SynAckLimited != 5 {
		t.Errorf("Stats().SynAckLimited = %d, want 5", st.SynAckLimited)
	}
	if a := testing.AllocsPerRun(100, func() { budget.AllowSynAck() }); a != 0 {
		t.Errorf("AllowSynAck allocates %v times, want 0", a)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, inForce := budget.AllowSynAck(); inForce {
		t.Error("AllowSynAck after Close: in force, want the engine's own bucket")
	}
	if got := count("engine, stage closed", p.runEngine, 5); got["answer "] != 5 {
		t.Errorf("engine with the stage closed: %v, want 5 answers from its own bucket", got)
	}
}
