package conntrack

// Kernel tests. Each builds a network namespace of its own (a name with
// the PID), opens its netlink sockets inside it with the OS thread locked,
// and deletes it at the end: the root namespace's conntrack table is never
// touched. Without the privilege to build namespaces they skip; without
// the ip tool they skip too, except in CI (CI=true) where that fails.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	ct "github.com/ti-mo/conntrack"

	"github.com/synwall/synwall/deploy/lab"
)

func needTools(t *testing.T, names ...string) {
	t.Helper()
	if err := lab.Require(names...); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true: the tools must be installed)", err)
		}
		t.Skipf("%v", err)
	}
}

var nsSeq atomic.Int64

// newNetns adds a network namespace for this test and deletes it at the
// end.
func newNetns(t *testing.T) string {
	t.Helper()
	needTools(t, "ip")
	name := fmt.Sprintf("swct%d-%d", os.Getpid(), nsSeq.Add(1))
	out, err := exec.Command("ip", "netns", "add", name).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "Operation not permitted") || strings.Contains(string(out), "Permission denied") {
			t.Skipf("needs root (CAP_SYS_ADMIN) to build a network namespace: ip netns add: %v: %s", err, out)
		}
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	return name
}

// openIn opens a Handoff and a github.com/ti-mo/conntrack connection (the
// independent reader) inside ns.
func openIn(t *testing.T, ns string, cfg Config) (*Handoff, *ct.Conn) {
	t.Helper()
	var h *Handoff
	var c *ct.Conn
	err := lab.InNetns(ns, func() error {
		var err error
		if h, err = New(cfg); err != nil {
			return err
		}
		c, err = ct.Dial(nil)
		return err
	})
	if errors.Is(err, syscall.EPERM) || errors.Is(err, lab.ErrPermission) {
		t.Skipf("needs CAP_NET_ADMIN for ctnetlink: %v", err)
	}
	if err != nil {
		t.Fatalf("open in %s: %v", ns, err)
	}
	t.Cleanup(func() {
		h.Close()
		c.Close()
	})
	return h, c
}

// runHandoff runs h until the test ends.
func runHandoff(t *testing.T, h *Handoff) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}

// submitWait submits flows and waits for their results.
func submitWait(t *testing.T, h *Handoff, res chan Result, flows ...Flow) []Result {
	t.Helper()
	for i := range flows {
		if !h.Submit(&flows[i]) {
			t.Fatalf("Submit(%v) = false", &flows[i])
		}
	}
	return collect(t, res, len(flows))
}

func collect(t *testing.T, res chan Result, n int) []Result {
	t.Helper()
	var out []Result
	timeout := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case r := <-res:
			out = append(out, r)
		case <-timeout:
			t.Fatalf("got %d results, want %d", len(out), n)
		}
	}
	return out
}

func getFlow(t *testing.T, c *ct.Conn, f *Flow) (ct.Flow, error) {
	t.Helper()
	q := ct.Flow{TupleOrig: tuple(f.Client, f.Server)}
	return c.Get(q)
}

func TestKernelCreateReadBack(t *testing.T) {
	noTS := testFlow4()
	noTS.Opts = OptWindowScale | OptSACK
	noTS.Client = netip.AddrPortFrom(noTS.Client.Addr(), 40001)
	sameISN := testFlow6()
	sameISN.ServerISN = sameISN.CookieISN
	sameISN.Client = netip.AddrPortFrom(sameISN.Client.Addr(), 40002)
	tests := []struct {
		name        string
		f           Flow
		wantSeqAdj  bool
		wantFlags   uint16 // seen flags per direction, as the kernel reports them (flags<<8, mask 0)
		wantSynprox ct.SynProxy
	}{
		{"ipv4", testFlow4(), true, 0x0b00, ct.SynProxy{ISN: 0x10000000, ITS: 1000, TSOff: 4000}},
		{"ipv6", testFlow6(), true, 0x0b00, ct.SynProxy{ISN: 0x10000000, ITS: 1000, TSOff: 4000}},
		{"ipv4 without timestamps", noTS, true, 0x0b00, ct.SynProxy{ISN: 0x10000000}},
		{"ipv6 equal ISNs", sameISN, false, 0x0b00, ct.SynProxy{ISN: 0x10000000, ITS: 1000, TSOff: 4000}},
	}
	ns := newNetns(t)
	res := make(chan Result, 16)
	h, c := openIn(t, ns, Config{Done: func(r Result) { res <- r }, Timeout: 300 * time.Second})
	runHandoff(t, h)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := submitWait(t, h, res, tt.f)[0]
			if r.Err != nil {
				t.Fatalf("create %v: %v", &tt.f, r.Err)
			}
			got, err := getFlow(t, c, &tt.f)
			if err != nil {
				t.Fatalf("ti-mo Get(%v): %v", &tt.f, err)
			}
			if got.Status.SeqAdjust() != tt.wantSeqAdj || !got.Status.SeenReply() || !got.Status.Assured() || !got.Status.Confirmed() {
				t.Errorf("status = %v, want SEQ_ADJUST %v, SEEN_REPLY, ASSURED, CONFIRMED", got.Status, tt.wantSeqAdj)
			}
			var wantAdj ct.SequenceAdjust
			if tt.wantSeqAdj {
				off := tt.f.SeqOffset()
				wantAdj = ct.SequenceAdjust{Direction: true, Position: tt.f.ServerISN, OffsetBefore: off, OffsetAfter: off}
			}
			if diff := cmp.Diff(wantAdj, got.SeqAdjReply); diff != "" {
				t.Errorf("reply sequence adjustment read back (-want +got):\n%s", diff)
			}
			if got.SeqAdjOrig.OffsetBefore != 0 || got.SeqAdjOrig.OffsetAfter != 0 {
				t.Errorf("original direction adjusted: %v, want no offset", got.SeqAdjOrig)
			}
			if diff := cmp.Diff(tt.wantSynprox, got.SynProxy); diff != "" {
				t.Errorf("synproxy extension read back (-want +got):\n%s", diff)
			}
			wantTCP := ct.ProtoInfoTCP{State: uint8(StateEstablished), OriginalWindowScale: 7, ReplyWindowScale: 9,
				OriginalFlags: tt.wantFlags, ReplyFlags: tt.wantFlags}
			if got.ProtoInfo.TCP == nil {
				t.Fatalf("no TCP protoinfo read back")
			}
			if diff := cmp.Diff(wantTCP, *got.ProtoInfo.TCP); diff != "" {
				t.Errorf("TCP protoinfo read back (-want +got):\n%s", diff)
			}
			if got.Mark != DefaultMark {
				t.Errorf("mark = %#x, want %#x", got.Mark, DefaultMark)
			}
			if got.Timeout == 0 || got.Timeout > 300 {
				t.Errorf("timeout = %d, want 1..300", got.Timeout)
			}
			if diff := cmp.Diff(tuple(tt.f.Server, tt.f.Client), got.TupleReply, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("reply tuple (-want +got):\n%s", diff)
			}
		})
	}
	if n, err := h.Count(); err != nil || n != len(tests) {
		t.Errorf("Count() = %d, %v, want %d", n, err, len(tests))
	}
}

// TestKernelTiMoSeqAdjQuirk shows why the correction position is sent
// non-zero: an entry created with github.com/ti-mo/conntrack from a
// SequenceAdjust whose position is 0 silently has no sequence adjustment.
func TestKernelTiMoSeqAdjQuirk(t *testing.T) {
	ns := newNetns(t)
	_, c := openIn(t, ns, Config{})
	for _, pos := range []uint32{0, 0x30000000} {
		t.Run(fmt.Sprintf("position %#x", pos), func(t *testing.T) {
			f := testFlow4()
			f.Client = netip.AddrPortFrom(f.Client.Addr(), uint16(41000+pos%7))
			fl := ct.Flow{
				TupleOrig: tuple(f.Client, f.Server), TupleReply: tuple(f.Server, f.Client),
				Timeout: 60, Status: ct.StatusSeenReply | ct.StatusAssured | ct.StatusConfirmed,
				ProtoInfo:   ct.ProtoInfo{TCP: &ct.ProtoInfoTCP{State: 3}},
				SeqAdjReply: ct.SequenceAdjust{Position: pos, OffsetBefore: f.SeqOffset(), OffsetAfter: f.SeqOffset()},
			}
			if err := c.Create(fl); err != nil {
				t.Fatalf("ti-mo Create: %v", err)
			}
			got, err := getFlow(t, c, &f)
			if err != nil {
				t.Fatalf("ti-mo Get: %v", err)
			}
			want := pos != 0
			if got.Status.SeqAdjust() != want {
				t.Errorf("ti-mo Create with position %#x: SEQ_ADJUST = %v, want %v (status %v)", pos, got.Status.SeqAdjust(), want, got.Status)
			}
		})
	}
}

func TestKernelBatch(t *testing.T) {
	const n = 200
	ns := newNetns(t)
	res := make(chan Result, n)
	h, c := openIn(t, ns, Config{Done: func(r Result) { res <- r }, MaxBatch: 64, QueueLen: n})
	var flows []Flow
	for i := range n {
		f := testFlow4()
		if i%2 == 1 {
			f = testFlow6()
		}
		f.Client = netip.AddrPortFrom(f.Client.Addr(), uint16(20000+i))
		f.CookieISN += uint32(i)
		flows = append(flows, f)
	}
	// Queued before Run starts: the batches are full.
	for i := range flows {
		if !h.Submit(&flows[i]) {
			t.Fatalf("Submit #%d = false", i)
		}
	}
	runHandoff(t, h)
	for i, r := range collect(t, res, n) {
		if r.Err != nil {
			t.Errorf("flow %d: %v", i, r.Err)
		}
	}
	s := h.Stats()
	if s.Created != n || s.Batches != 4 || s.Messages != n {
		t.Errorf("Stats = %+v, want %d created in 4 batches", s, n)
	}
	if got, err := h.Count(); err != nil || got != n {
		t.Errorf("Count() = %d, %v, want %d", got, err, n)
	}
	dump, err := c.DumpFilter(ct.NewFilter().Mark(DefaultMark).MarkMask(DefaultMarkMask), nil)
	if err != nil {
		t.Fatalf("ti-mo DumpFilter: %v", err)
	}
	adjusted := 0
	for _, f := range dump {
		if f.Status.SeqAdjust() && f.SynProxy.ISN != 0 {
			adjusted++
		}
	}
	if len(dump) != n || adjusted != n {
		t.Errorf("ti-mo dump: %d entries, %d with SEQ_ADJUST and synproxy ISN, want %d", len(dump), adjusted, n)
	}
}

// TestKernelBatchOutcomes: one datagram with a message the kernel refuses
// between two good ones; each gets its own outcome.
func TestKernelBatchOutcomes(t *testing.T) {
	ns := newNetns(t)
	h, c := openIn(t, ns, Config{})
	nl := h.t.(*nlConn)
	good1, bad, good2 := testFlow4(), testFlow4(), testFlow6()
	bad.Client = netip.AddrPortFrom(bad.Client.Addr(), 40001)
	bad.ServerWScale = 15 // above TCP_MAX_WSCALE: the attribute policy refuses it (ERANGE)
	errs := make([]error, 3)
	if err := nl.create([]*Flow{&good1, &bad, &good2}, errs, createStatus, 60, DefaultMark); err != nil {
		t.Fatalf("create: %v", err)
	}
	if errs[0] != nil || !errors.Is(errs[1], syscall.ERANGE) || errs[2] != nil {
		t.Errorf("create outcomes = %v, want [nil ERANGE nil]", errs)
	}
	for _, f := range []*Flow{&good1, &good2} {
		if _, err := getFlow(t, c, f); err != nil {
			t.Errorf("Get(%v) after the batch: %v", f, err)
		}
	}
	if _, err := getFlow(t, c, &bad); err == nil {
		t.Errorf("Get(%v): the refused entry exists", &bad)
	}
}

// setState moves an entry to a TCP state through ctnetlink, as the packet
// path would. A running Handoff removes an entry of its own that becomes
// stale (TIME_WAIT, CLOSE) on the UPDATE event, so the entry may be gone
// by the time this looks.
func setState(t *testing.T, c *ct.Conn, f *Flow, st TCPState) {
	t.Helper()
	// Both tuples: ti-mo picks the message's family from both.
	u := ct.Flow{TupleOrig: tuple(f.Client, f.Server), TupleReply: tuple(f.Server, f.Client),
		ProtoInfo: ct.ProtoInfo{TCP: &ct.ProtoInfoTCP{State: uint8(st)}}}
	if err := c.Update(u); err != nil {
		t.Fatalf("ti-mo Update to %s: %v", st, err)
	}
	got, err := getFlow(t, c, f)
	if err != nil && st.Stale() {
		return
	}
	if err != nil || TCPState(got.ProtoInfo.TCP.State) != st {
		t.Fatalf("entry after Update: %+v, %v, want state %s", got.ProtoInfo.TCP, err, st)
	}
}

// gone waits until f's entry has left the kernel's table.
func gone(t *testing.T, c *ct.Conn, f *Flow) {
	t.Helper()
	waitFor(t, "the entry to go", func() bool { _, err := getFlow(t, c, f); return err != nil })
}

func TestKernelStaleAndFailure(t *testing.T) {
	ns := newNetns(t)
	res := make(chan Result, 16)
	h, c := openIn(t, ns, Config{Done: func(r Result) { res <- r }})
	runHandoff(t, h)

	f := testFlow4()
	if r := submitWait(t, h, res, f)[0]; r.Err != nil {
		t.Fatalf("create: %v", r.Err)
	}
	// A second create on the live entry fails and leaves it alone.
	again := f
	again.CookieISN++
	if r := submitWait(t, h, res, again)[0]; !errors.Is(r.Err, ErrExists) {
		t.Errorf("create over a live entry: %v, want ErrExists", r.Err)
	}
	if s := h.Stats(); s.Failed[FailExists] != 1 {
		t.Errorf("Failed[exists] = %d, want 1", s.Failed[FailExists])
	}
	if got, err := getFlow(t, c, &f); err != nil || got.SynProxy.ISN != f.CookieISN {
		t.Errorf("entry after the refused create: ISN %#x, %v, want %#x", got.SynProxy.ISN, err, f.CookieISN)
	}
	// RemoveStale leaves a live entry.
	h.RemoveStale(f.Client, f.Server, 1)
	if r := collect(t, res, 1)[0]; !errors.Is(r.Err, ErrLiveEntry) || r.Removed || r.State != StateEstablished {
		t.Errorf("RemoveStale on a live entry = %+v, want ErrLiveEntry, not removed", r)
	}
	// The connection ends (TIME_WAIT, then CLOSE for the next one): the
	// UPDATE event has the entry removed, and Known forgets it.
	for i, st := range []TCPState{StateTimeWait, StateClose} {
		setState(t, c, &f, st)
		gone(t, c, &f)
		r := collect(t, res, 1)[0]
		if r.Op != OpRemoveStale || r.Err != nil || !r.Removed || r.State != st {
			t.Errorf("removal after %s = %+v, want the entry removed in %s", st, r, st)
		}
		waitFor(t, "Known to forget", func() bool { _, ok := h.Known(f.Client, f.Server); return !ok })
		// Nothing there: nothing to do.
		h.RemoveStale(f.Client, f.Server, 3)
		if r := collect(t, res, 1)[0]; r.Err != nil || r.Found || r.Removed {
			t.Errorf("RemoveStale on no entry = %+v, want nothing found", r)
		}
		// The tuple is free for a new connection.
		g := f
		g.CookieISN += uint32(10 + i)
		if r := submitWait(t, h, res, g)[0]; r.Err != nil {
			t.Fatalf("create after the %s entry went: %v", st, r.Err)
		}
		if got, err := getFlow(t, c, &g); err != nil || got.SynProxy.ISN != g.CookieISN {
			t.Errorf("new entry: ISN %#x, %v; want %#x", got.SynProxy.ISN, err, g.CookieISN)
		}
	}
	waitFor(t, "the destroy events", func() bool { return h.Stats().Destroyed == 2 })
	if s := h.Stats(); s.StaleRemoved != 2 || s.Destroyed != 2 {
		t.Errorf("Stats = %+v, want StaleRemoved 2, Destroyed 2", s)
	}
	if n, err := h.Count(); err != nil || n != 1 {
		t.Errorf("Count() = %d, %v, want 1", n, err)
	}
}

// TestKernelCountIgnoresOthers: entries without synwall's mark are not
// counted.
func TestKernelCountIgnoresOthers(t *testing.T) {
	ns := newNetns(t)
	h, c := openIn(t, ns, Config{})
	other := testFlow4()
	fl := ct.NewFlow(6, ct.StatusAssured|ct.StatusConfirmed, other.Client.Addr(), other.Server.Addr(), other.Client.Port(), other.Server.Port(), 60, 0x1234)
	fl.ProtoInfo = ct.ProtoInfo{TCP: &ct.ProtoInfoTCP{State: 3}}
	if err := c.Create(fl); err != nil {
		t.Fatalf("ti-mo Create: %v", err)
	}
	if n, err := h.Count(); err != nil || n != 0 {
		t.Errorf("Count() = %d, %v, want 0 (the one entry has another mark)", n, err)
	}
}

func TestKernelProbe(t *testing.T) {
	ns := newNetns(t)
	h, _ := openIn(t, ns, Config{})
	if err := h.Probe(); err != nil {
		t.Fatalf("Probe() = %v, want nil on this kernel", err)
	}
	if h.status != createStatus {
		t.Errorf("status learned = %#x, want %#x (6.18 confirms before CTA_STATUS)", h.status, createStatus)
	}
	if n, err := h.Count(); err != nil || n != 0 {
		t.Errorf("Count() after Probe = %d, %v, want 0 (the probe entry deleted)", n, err)
	}
}

// TestKernelKnownFollowsDestroy: the registry forgets a connection when
// its entry goes, whoever removes it.
func TestKernelKnownFollowsDestroy(t *testing.T) {
	ns := newNetns(t)
	res := make(chan Result, 4)
	h, c := openIn(t, ns, Config{Done: func(r Result) { res <- r }})
	runHandoff(t, h)
	f4, f6 := testFlow4(), testFlow6()
	for _, r := range submitWait(t, h, res, f4, f6) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	for _, f := range []Flow{f4, f6} {
		if _, ok := h.Known(f.Client, f.Server); !ok {
			t.Fatalf("Known(%v) = false after the create", &f)
		}
	}
	// Deleted by someone else (conntrack -D, a timeout): a DESTROY event.
	if err := c.Delete(ct4(f4)); err != nil {
		t.Fatalf("ti-mo Delete: %v", err)
	}
	waitFor(t, "the destroy event", func() bool { _, ok := h.Known(f4.Client, f4.Server); return !ok })
	if _, ok := h.Known(f6.Client, f6.Server); !ok {
		t.Error("the other connection was forgotten")
	}
	if s := h.Stats(); s.Destroyed != 1 || s.Known != 1 {
		t.Errorf("Stats = %+v, want Destroyed 1 Known 1", s)
	}
}

func ct4(f Flow) ct.Flow {
	return ct.Flow{TupleOrig: tuple(f.Client, f.Server), TupleReply: tuple(f.Server, f.Client)}
}

// TestKernelLoadAfterRestart: a second Handoff in the same namespace (the
// process after a graceful restart) learns the connections the first one
// handed off, with their offsets, from the kernel.
func TestKernelLoadAfterRestart(t *testing.T) {
	ns := newNetns(t)
	res := make(chan Result, 4)
	h1, c := openIn(t, ns, Config{Done: func(r Result) { res <- r }})
	runHandoff(t, h1)
	f4, f6 := testFlow4(), testFlow6()
	f6.Opts = OptSACK // no timestamps
	for _, r := range submitWait(t, h1, res, f4, f6) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	h2, _ := openIn(t, ns, Config{})
	if n, err := h2.Load(); err != nil || n != 2 {
		t.Fatalf("Load() = %d, %v, want 2", n, err)
	}
	for _, f := range []Flow{f4, f6} {
		got, ok := h2.Known(f.Client, f.Server)
		if want := offsetsOf(&f); !ok || got != want {
			t.Errorf("Known(%v) after Load = %+v, %v; want %+v", &f, got, ok, want)
		}
	}
	// RemoveStaleNow on the reloaded one: a live entry stays (also half
	// closed), one whose client has sent its FIN goes, and the registry
	// follows.
	if r := h2.RemoveStaleNow(f4.Client, f4.Server); !errors.Is(r.Err, ErrLiveEntry) {
		t.Errorf("RemoveStaleNow(live) = %+v, want ErrLiveEntry", r)
	}
	setState(t, c, &f6, StateCloseWait)
	if r := h2.RemoveStaleNow(f6.Client, f6.Server); !errors.Is(r.Err, ErrLiveEntry) || r.State != StateCloseWait {
		t.Errorf("RemoveStaleNow(close_wait) = %+v, want ErrLiveEntry", r)
	}
	setState(t, c, &f6, StateLastAck)
	if r := h2.RemoveStaleNow(f6.Client, f6.Server); r.Err != nil || !r.Removed || r.State != StateLastAck {
		t.Errorf("RemoveStaleNow(last_ack) = %+v, want removed", r)
	}
	if _, ok := h2.Known(f6.Client, f6.Server); ok {
		t.Error("Known after RemoveStaleNow removed the last_ack entry")
	}
	setState(t, c, &f4, StateTimeWait)
	// h1's watcher may have removed it first; either way it goes.
	if r := h2.RemoveStaleNow(f4.Client, f4.Server); r.Err != nil || r.Found && !r.Removed {
		t.Errorf("RemoveStaleNow(time_wait) = %+v, want removed or already gone", r)
	}
	if _, ok := h2.Known(f4.Client, f4.Server); ok {
		t.Error("Known after RemoveStaleNow removed the entry")
	}
	if _, err := getFlow(t, c, &f4); err == nil {
		t.Error("the stale entry is still in the kernel")
	}
}
