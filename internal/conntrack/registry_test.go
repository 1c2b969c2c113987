package conntrack

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeEvents delivers the events the test pushes.
type fakeEvents struct {
	mu   sync.Mutex
	evs  []fakeEvent
	lost bool
}

type fakeEvent = event

func (e *fakeEvents) push(f Flow, mark uint32) {
	e.mu.Lock()
	e.evs = append(e.evs, event{k: keyOf(f.Client, f.Server), mark: mark, destroy: true})
	e.mu.Unlock()
}

func (e *fakeEvents) pushUpdate(f Flow, mark uint32, st TCPState) {
	e.mu.Lock()
	e.evs = append(e.evs, event{k: keyOf(f.Client, f.Server), mark: mark, state: st})
	e.mu.Unlock()
}

func (e *fakeEvents) read(fn func(*event)) (bool, error) {
	e.mu.Lock()
	evs, lost := e.evs, e.lost
	e.evs, e.lost = nil, false
	e.mu.Unlock()
	for i := range evs {
		fn(&evs[i])
	}
	if len(evs) == 0 && !lost {
		time.Sleep(time.Millisecond)
	}
	return lost, nil
}

func (e *fakeEvents) close() error { return nil }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRegistryFollowsKernel(t *testing.T) {
	k := newFakeKernel()
	ev := &fakeEvents{}
	var res results
	h, err := newHandoff(Config{Done: res.done}, k, k, ev)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	f1, f2, f3 := flowPort(1), flowPort(2), flowPort(3)
	for _, f := range []Flow{f1, f2, f3} {
		h.Submit(&f)
	}
	waitFor(t, "three creates", func() bool { return len(res.list()) == 3 })
	if o, ok := h.Known(f1.Client, f1.Server); !ok || o != (Offsets{Seq: f1.SeqOffset(), TS: f1.TSOffset(), Timestamps: true}) {
		t.Errorf("Known(f1) = %+v, %v; want its offsets", o, ok)
	}
	if _, ok := h.Known(f1.Server, f1.Client); ok {
		t.Error("Known(reversed tuple) = true")
	}

	// A destroy event with another mark changes nothing; with synwall's,
	// the connection goes.
	ev.push(f1, 0x1234)
	ev.push(f2, DefaultMark|0x7)
	waitFor(t, "the destroy event", func() bool { _, ok := h.Known(f2.Client, f2.Server); return !ok })
	if _, ok := h.Known(f1.Client, f1.Server); !ok {
		t.Error("a destroy event of another mark removed f1")
	}

	// Lost events: a dump decides. f3 vanished from the kernel unseen.
	k.mu.Lock()
	delete(k.table, [2]netip.AddrPort{f3.Client, f3.Server})
	k.mu.Unlock()
	ev.mu.Lock()
	ev.lost = true
	ev.mu.Unlock()
	waitFor(t, "the resynchronisation", func() bool { return h.Stats().Resyncs == 1 })
	if _, ok := h.Known(f3.Client, f3.Server); ok {
		t.Error("f3 still known after a resynchronisation")
	}
	if _, ok := h.Known(f1.Client, f1.Server); !ok {
		t.Error("f1 forgotten by the resynchronisation")
	}
	if s := h.Stats(); s.Known != 1 || s.Destroyed != 1 {
		t.Errorf("Stats = %+v, want Known 1, Destroyed 1", s)
	}
}

func TestRegistryForgetKeepsNewcomers(t *testing.T) {
	r := newRegistry(10)
	a, b := flowPort(1), flowPort(2)
	r.add(&a)
	before := r.keys()
	r.add(&b) // created while the dump ran
	r.forget(before, map[tupleKey]struct{}{})
	if _, ok := r.lookup(keyOf(a.Client, a.Server)); ok {
		t.Error("a, absent from the dump, still recorded")
	}
	if _, ok := r.lookup(keyOf(b.Client, b.Server)); !ok {
		t.Error("b, added after the snapshot, forgotten")
	}
}

func TestRegistryBounded(t *testing.T) {
	r := newRegistry(2)
	for p := 1; p <= 3; p++ {
		f := flowPort(uint16(p))
		if got, want := r.add(&f), p <= 2; got != want {
			t.Errorf("add #%d = %v, want %v", p, got, want)
		}
	}
	again := flowPort(1) // an update of a recorded one always fits
	if !r.add(&again) {
		t.Error("re-adding a recorded connection refused")
	}
	if r.n.Load() != 2 || r.full.Load() != 1 {
		t.Errorf("n %d full %d, want 2 and 1", r.n.Load(), r.full.Load())
	}
}

func TestKnownNoAllocs(t *testing.T) {
	k := newFakeKernel()
	h, err := newHandoff(Config{}, k, k, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := testFlow6()
	h.known.add(&f)
	allocs := testing.AllocsPerRun(1000, func() {
		if _, ok := h.Known(f.Client, f.Server); !ok {
			t.Fatal("not known")
		}
	})
	if allocs != 0 {
		t.Errorf("Known allocates %v times, want 0", allocs)
	}
}

// TestHandoffRemovesEnded: an UPDATE that moves one of synwall's entries
// to TIME_WAIT or CLOSE queues its removal; other states and other marks
// do not.
func TestHandoffRemovesEnded(t *testing.T) {
	k := newFakeKernel()
	ev := &fakeEvents{}
	var res results
	h, err := newHandoff(Config{Done: res.done}, k, k, ev)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	f1, f2, f3 := flowPort(1), flowPort(2), flowPort(3)
	k.put(1, StateTimeWait)
	k.put(2, StateFinWait)
	k.put(3, StateClose)
	ev.pushUpdate(f1, DefaultMark, StateTimeWait)
	ev.pushUpdate(f2, DefaultMark, StateFinWait)
	ev.pushUpdate(f3, 0x1234, StateClose) // not synwall's
	waitFor(t, "the removal", func() bool { return len(res.list()) == 1 })
	time.Sleep(20 * time.Millisecond)
	got := res.list()
	if len(got) != 1 || got[0].Op != OpRemoveStale || got[0].Flow.Client != f1.Client || !got[0].Removed {
		t.Errorf("results = %+v, want one removal of port 1's entry", got)
	}
	if diff := cmp.Diff([]string{"get1", "remove1"}, k.log()); diff != "" {
		t.Errorf("kernel calls (-want +got):\n%s", diff)
	}
}
