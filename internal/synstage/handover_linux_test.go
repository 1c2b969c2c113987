//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package synstage

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/synwall/synwall/deploy/lab"
	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway"
	"github.com/synwall/synwall/internal/gateway/header"
)

// linkInfo returns the id of the tcx link on ifname and of the program it
// runs.
func linkInfo(t *testing.T, s *Stage, ifname string) (link.ID, ebpf.ProgramID) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range append(append([]attachment(nil), s.links...), s.inherited...) {
		if a.ifname == ifname {
			info, err := a.l.Info()
			if err != nil {
				t.Fatal(err)
			}
			return info.ID, info.Program
		}
	}
	t.Fatalf("no attachment on %s", ifname)
	return 0, 0
}

// handOver hands s over as a graceful restart does (Handover, then Close
// of this process's descriptors) and returns what the next process
// inherits.
func handOver(t *testing.T, s *Stage) *Inherited {
	t.Helper()
	env, err := s.Handover()
	if err != nil {
		t.Fatalf("Handover: %v", err)
	}
	name, val, ok := strings.Cut(env, "=")
	if !ok || name != HandoverEnv {
		t.Fatalf("Handover() = %q, want %s=...", env, HandoverEnv)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close after Handover: %v", err)
	}
	t.Setenv(HandoverEnv, val)
	in, err := InheritFromEnv()
	if err != nil {
		t.Fatalf("InheritFromEnv: %v", err)
	}
	if _, set := os.LookupEnv(HandoverEnv); set {
		t.Errorf("%s still set after InheritFromEnv", HandoverEnv)
	}
	return in
}

// TestHandover hands an attached stage from one Stage to the next as a
// graceful restart does across execve: the tcx link stays attached
// throughout (same link id, one program on the interface), the next Stage
// adopts the program and maps with their keys, policy, counters and the
// SYN cache, so that a SYN gets the same SYN-ACK after the handover and an
// engine built on the adopted cache memory, with the adopted seed, finds
// the entry the program wrote before it (a cache hit). A plain Close then
// detaches. With another SYN cache size the next Stage loads its own
// program and maps and moves the same link onto them.
func TestHandover(t *testing.T) {
	l := labUp(t, "ip", "iptables", "ip6tables")
	p := newPairCache(t, diffPolicy(t), true)
	if err := lab.InNetns(l.Gateway, func() error { return p.s.Attach(lab.IfClient, AttachTCX) }); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	linkID, progID := linkInfo(t, p.s, lab.IfClient)
	seed := p.e.FlowSeed()

	s := synSpec{port: portFull, mss: 1234, ws: 3, sack: true, ts: false, ecn: true, isn: 0x4242, sport: 42000, tsval: 555}
	syn := synPacket(t, s)
	before := p.runBPF(p.s.objs.SynstageTc, false, ethernet(syn))
	if before.Kind != "answer" {
		t.Fatalf("program before the handover: %+v, want an answer", before)
	}
	statsBefore, err := p.s.Stats()
	if err != nil {
		t.Fatal(err)
	}

	in := handOver(t, p.s)
	if got := in.Attachments(); len(got) != 1 || got[0] != (Attachment{Interface: lab.IfClient, Mode: AttachTCX}) {
		t.Errorf("Inherited.Attachments() = %v, want [{%s tc}]", got, lab.IfClient)
	}
	if n := tcxPrograms(t, l.Gateway, lab.IfClient); n != 1 {
		t.Fatalf("%d tcx programs on %s between the processes, want 1 (never detached)", n, lab.IfClient)
	}
	s2, err := Load(Options{Inherited: in, Flows: 1024})
	if err != nil {
		t.Fatalf("Load with the inherited stage: %v", err)
	}
	defer s2.Close()
	if ok, err := s2.Adopted(); !ok {
		t.Fatalf("Adopted() = false, %v; want the handed-over program and maps", err)
	}
	if got, ok := s2.CacheSeed(); !ok || got != seed {
		t.Errorf("CacheSeed() = %x, %v, want the earlier engine's %x", got, ok, seed)
	}
	// The next process's Attach claims the inherited link.
	if err := lab.InNetns(l.Gateway, func() error { return s2.Attach(lab.IfClient, AttachTCX) }); err != nil {
		t.Fatalf("Attach after the handover: %v", err)
	}
	if id, prog := linkInfo(t, s2, lab.IfClient); id != linkID || prog != progID {
		t.Errorf("after the handover the link is %d running program %d, want the same link %d and program %d", id, prog, linkID, progID)
	}
	if n := tcxPrograms(t, l.Gateway, lab.IfClient); n != 1 {
		t.Errorf("%d tcx programs on %s after the handover, want 1", n, lab.IfClient)
	}
	if rel, err := s2.ReleaseInherited(); len(rel) != 0 || err != nil {
		t.Errorf("ReleaseInherited() = %v, %v, want nothing left to release", rel, err)
	}
	// Keys and policy unchanged: the same SYN gets the same SYN-ACK.
	p2 := &pair{tb: t, s: s2, now: p.now}
	after := p2.runBPF(s2.objs.SynstageTc, false, ethernet(syn))
	if after.Kind != "answer" || !bytes.Equal(after.Packet, before.Packet) {
		t.Errorf("SYN-ACK after the handover differs:\n% x\nwant\n% x", after.Packet, before.Packet)
	}
	st, err := s2.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Answered != statsBefore.Answered+1 {
		t.Errorf("Answered after the handover = %d, want the earlier %d and one", st.Answered, statsBefore.Answered)
	}

	// The next engine on the adopted cache memory and seed finds the entry
	// of the SYN answered before the handover.
	mem, err := s2.CacheMemory()
	if err != nil {
		t.Fatal(err)
	}
	e2, err := gateway.New(gateway.Config{Policy: diffPolicy(t), Cookies: p.e.Jar(), Start: p.now, Flows: 1024, PendingSlots: 16, CacheMemory: mem, FlowSeed: seed})
	if err != nil {
		t.Fatal(err)
	}
	var sa header.Packet
	if r := header.Parse(bytes.Clone(before.Packet), &sa); r != header.OK {
		t.Fatal(r)
	}
	a := s
	a.flags, a.isn, a.mss, a.ws, a.sack, a.ecn = header.ACK, s.isn+1, -1, -1, false, false
	ack := synPacket(t, a)
	var ap header.Packet
	header.Parse(ack, &ap)
	ap.TCP.SetAckNumber(sa.TCP.SequenceNumber() + 1)
	ap.SetTCPChecksum()
	var r engine.Result
	e2.NewWorker().Process(ack, engine.Meta{}, p.now, &r)
	if r.Event != engine.EventHandshake {
		t.Fatalf("new engine on the handshake ACK of a SYN answered before the handover: %v, want %v", r.Event, engine.EventHandshake)
	}
	if hits := e2.Stats().CacheHits; hits != 1 {
		t.Errorf("new engine CacheHits = %d, want 1 (the entry written before the handover)", hits)
	}
	var srv header.Packet
	if reason := header.Parse(r.Packet, &srv); reason != header.OK {
		t.Fatal(reason)
	}
	if o := srv.Opts; !o.HasMSS || o.MSS != 1234 || !o.HasWScale || o.WScale != 3 || !o.SACKPermitted {
		t.Errorf("SYN to the server has options %+v, want the client's MSS 1234, wscale 3, SACK (from the cache; no timestamps)", o)
	}

	// Another cache size: the next Stage loads its own program and maps
	// and moves the same link onto them.
	in = handOver(t, s2)
	s3, err := Load(Options{Inherited: in, Flows: 1024, CacheBuckets: 1024})
	if err != nil {
		t.Fatalf("Load with another cache size: %v", err)
	}
	defer s3.Close()
	if ok, err := s3.Adopted(); ok || err == nil || !strings.Contains(err.Error(), "SYN cache") {
		t.Errorf("Adopted() with another cache size = %v, %v; want false naming the SYN cache", ok, err)
	}
	if err := lab.InNetns(l.Gateway, func() error { return s3.Attach(lab.IfClient, AttachTCX) }); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	id, prog := linkInfo(t, s3, lab.IfClient)
	if id != linkID || prog == progID {
		t.Errorf("with a new program the link is %d running program %d, want link %d running another program than %d", id, prog, linkID, progID)
	}
	if n := tcxPrograms(t, l.Gateway, lab.IfClient); n != 1 {
		t.Errorf("%d tcx programs on %s, want 1", n, lab.IfClient)
	}

	// A plain stop detaches.
	if err := s3.Close(); err != nil {
		t.Fatal(err)
	}
	if n := tcxPrograms(t, l.Gateway, lab.IfClient); n != 0 {
		t.Errorf("%d tcx programs on %s after Close, want 0", n, lab.IfClient)
	}
}

// TestHandoverUnclaimed: an inherited attachment no longer configured
// (ReleaseInherited) is detached; so are all of them when the handed-over
// objects are refused.
func TestHandoverUnclaimed(t *testing.T) {
	l := labUp(t, "ip", "iptables", "ip6tables")
	s := loadStage(t)
	if err := lab.InNetns(l.Gateway, func() error { return s.Attach(lab.IfClient, AttachTCX) }); err != nil {
		t.Fatal(err)
	}
	s2, err := Load(Options{Inherited: handOver(t, s)})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if n := tcxPrograms(t, l.Gateway, lab.IfClient); n != 1 {
		t.Fatalf("%d tcx programs on %s, want 1", n, lab.IfClient)
	}
	rel, err := s2.ReleaseInherited()
	if err != nil || len(rel) != 1 || rel[0] != (Attachment{Interface: lab.IfClient, Mode: AttachTCX}) {
		t.Errorf("ReleaseInherited() = %v, %v, want [{%s tc}]", rel, err, lab.IfClient)
	}
	if n := tcxPrograms(t, l.Gateway, lab.IfClient); n != 0 {
		t.Errorf("%d tcx programs on %s after ReleaseInherited, want 0", n, lab.IfClient)
	}

	for _, bad := range []string{"", "{", `{"maps":{"state":1}}`, `{"maps":{"state":7,"keys":7}}`, `{"links":[{"if":"x","mode":"pcap","fd":9}]}`} {
		t.Setenv(HandoverEnv, bad)
		if in, err := InheritFromEnv(); err == nil || in != nil {
			t.Errorf("InheritFromEnv with %s=%q = %v, %v, want an error", HandoverEnv, bad, in, err)
		}
	}
	// A wrong entry naming a file that is no BPF object: refused, and the
	// file is left open.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	t.Setenv(HandoverEnv, fmt.Sprintf(`{"maps":{"state":%d}}`, r.Fd()))
	if in, err := InheritFromEnv(); err == nil || in != nil {
		t.Errorf("InheritFromEnv naming a pipe = %v, %v, want an error", in, err)
	}
	if _, err := unix.FcntlInt(r.Fd(), unix.F_GETFD, 0); err != nil {
		t.Errorf("the pipe named by a wrong entry was closed: %v", err)
	}
	os.Unsetenv(HandoverEnv)
	if in, err := InheritFromEnv(); in != nil || err != nil {
		t.Errorf("InheritFromEnv without %s = %v, %v, want nil, nil", HandoverEnv, in, err)
	}
}
