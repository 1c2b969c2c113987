package conntrack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeKernel is an in-memory conntrack table behind the transport
// interface. It records the calls it gets.
type fakeKernel struct {
	mu      sync.Mutex
	table   map[[2]netip.AddrPort]entry
	nextID  uint32
	calls   []string
	failFor map[uint16]error // create fails for these client ports
	sendErr error            // create fails as a whole
	// unconfirmed: the kernel confirms entries after CTA_STATUS, so a
	// status with CONFIRMED fails with EBUSY.
	unconfirmed bool
	statuses    []uint32   // status of every create message
	noSeqAdj    bool       // the kernel drops sequence adjustments
	batches     [][]uint16 // client ports per create call
}

var _ transport = (*fakeKernel)(nil)

func newFakeKernel() *fakeKernel {
	return &fakeKernel{table: map[[2]netip.AddrPort]entry{}, failFor: map[uint16]error{}}
}

func (k *fakeKernel) create(flows []*Flow, errs []error, status, timeout, mark uint32) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	var ports []uint16
	for _, f := range flows {
		ports = append(ports, f.Client.Port())
	}
	k.batches = append(k.batches, ports)
	k.calls = append(k.calls, fmt.Sprintf("create%v", ports))
	if k.sendErr != nil {
		return k.sendErr
	}
	for i, f := range flows {
		k.statuses = append(k.statuses, status)
		if k.unconfirmed && status&ipsConfirmed != 0 {
			errs[i] = syscall.EBUSY
			continue
		}
		if err := k.failFor[f.Client.Port()]; err != nil {
			errs[i] = err
			continue
		}
		key := [2]netip.AddrPort{f.Client, f.Server}
		if _, ok := k.table[key]; ok {
			errs[i] = syscall.EEXIST
			continue
		}
		k.nextID++
		e := entry{ID: k.nextID, Mark: mark, Status: status, State: StateEstablished}
		if f.SeqOffset() != 0 && !k.noSeqAdj {
			e.Status |= ipsSeqAdjust
		}
		k.table[key] = e
	}
	return nil
}

func (k *fakeKernel) get(c, s netip.AddrPort) (entry, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls = append(k.calls, fmt.Sprintf("get%d", c.Port()))
	e, ok := k.table[[2]netip.AddrPort{c, s}]
	return e, ok, nil
}

func (k *fakeKernel) remove(c, s netip.AddrPort, id uint32) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls = append(k.calls, fmt.Sprintf("remove%d", c.Port()))
	key := [2]netip.AddrPort{c, s}
	if e, ok := k.table[key]; ok && e.ID == id {
		delete(k.table, key)
	}
	return nil
}

func (k *fakeKernel) countMark(mark, mask uint32) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for _, e := range k.table {
		if e.Mark&mask == mark&mask {
			n++
		}
	}
	return n, nil
}

func (k *fakeKernel) dumpMark(mark, mask uint32, fn func(tupleKey, Offsets)) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	for key, e := range k.table {
		if e.Mark&mask == mark&mask {
			fn(keyOf(key[0], key[1]), Offsets{})
		}
	}
	return nil
}

func (k *fakeKernel) close() error { return nil }

func (k *fakeKernel) put(port uint16, st TCPState) {
	f := flowPort(port)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.nextID++
	k.table[[2]netip.AddrPort{f.Client, f.Server}] = entry{ID: k.nextID, State: st}
}

func (k *fakeKernel) log() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.calls...)
}

func flowPort(port uint16) Flow {
	f := testFlow4()
	f.Client = netip.AddrPortFrom(f.Client.Addr(), port)
	f.Token = uint64(port)
	return f
}

type results struct {
	mu  sync.Mutex
	got []Result
}

func (r *results) done(x Result) {
	r.mu.Lock()
	r.got = append(r.got, x)
	r.mu.Unlock()
}

func (r *results) list() []Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Result(nil), r.got...)
}

// runUntil runs h until it has reported n results, then stops it.
func runUntil(t *testing.T, h *Handoff, res *results, n int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(res.list()) < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if got := len(res.list()); got != n {
		t.Fatalf("Run reported %d results, want %d", got, n)
	}
}

func newTestHandoff(t *testing.T, k *fakeKernel, cfg Config, res *results) *Handoff {
	t.Helper()
	cfg.Done = res.done
	h, err := newHandoff(cfg, k, k, nil)
	if err != nil {
		t.Fatalf("newHandoff: %v", err)
	}
	return h
}

func TestHandoffBatches(t *testing.T) {
	tests := []struct {
		name     string
		n, batch int
		want     [][]uint16
	}{
		{"one", 1, 4, [][]uint16{{1}}},
		{"all in one sendmsg", 4, 4, [][]uint16{{1, 2, 3, 4}}},
		{"split by MaxBatch", 6, 4, [][]uint16{{1, 2, 3, 4}, {5, 6}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFakeKernel()
			var res results
			h := newTestHandoff(t, k, Config{MaxBatch: tt.batch, QueueLen: 16}, &res)
			// Queue everything before Run starts, as a burst under load does.
			for p := 1; p <= tt.n; p++ {
				f := flowPort(uint16(p))
				if !h.Submit(&f) {
					t.Fatalf("Submit(%d) = false", p)
				}
			}
			runUntil(t, h, &res, tt.n)
			if diff := cmp.Diff(tt.want, k.batches); diff != "" {
				t.Errorf("create batches (-want +got):\n%s", diff)
			}
			for i, r := range res.list() {
				if r.Err != nil || r.Op != OpCreate || r.Flow.Token != uint64(i+1) {
					t.Errorf("result %d = %+v, want a created flow with token %d", i, r, i+1)
				}
			}
			s := h.Stats()
			want := Stats{Submitted: uint64(tt.n), Created: uint64(tt.n), Batches: uint64(len(tt.want)), Messages: uint64(tt.n), Known: tt.n}
			if diff := cmp.Diff(want, s); diff != "" {
				t.Errorf("Stats (-want +got):\n%s", diff)
			}
			if n, err := h.Count(); err != nil || n != tt.n {
				t.Errorf("Count() = %d, %v, want %d", n, err, tt.n)
			}
		})
	}
}

func TestHandoffQueueFull(t *testing.T) {
	k := newFakeKernel()
	var res results
	h := newTestHandoff(t, k, Config{QueueLen: 2}, &res)
	var ok []bool
	for p := 1; p <= 3; p++ {
		f := flowPort(uint16(p))
		ok = append(ok, h.Submit(&f))
	}
	ok = append(ok, h.RemoveStale(flowPort(9).Client, flowPort(9).Server, 9))
	if diff := cmp.Diff([]bool{true, true, false, false}, ok); diff != "" {
		t.Errorf("Submit results (-want +got):\n%s", diff)
	}
	if s := h.Stats(); s.QueueFull != 2 || s.Submitted != 2 {
		t.Errorf("Stats = %+v, want QueueFull 2 Submitted 2", s)
	}
	if h.Pending() != 2 {
		t.Errorf("Pending() = %d, want 2", h.Pending())
	}
}

func TestSubmitNoAllocs(t *testing.T) {
	k := newFakeKernel()
	var res results
	h := newTestHandoff(t, k, Config{QueueLen: 1 << 12}, &res)
	f := testFlow6()
	allocs := testing.AllocsPerRun(1000, func() {
		if !h.Submit(&f) {
			t.Fatal("Submit = false")
		}
	})
	if allocs != 0 {
		t.Errorf("Submit allocates %v times per flow, want 0", allocs)
	}
	// A full queue costs nothing either.
	for h.Submit(&f) {
	}
	allocs = testing.AllocsPerRun(100, func() { h.Submit(&f) })
	if allocs != 0 {
		t.Errorf("Submit on a full queue allocates %v times, want 0", allocs)
	}
}

func TestHandoffFailures(t *testing.T) {
	k := newFakeKernel()
	k.failFor[2] = syscall.ENOMEM
	k.failFor[3] = syscall.EINVAL
	k.put(4, StateEstablished) // a live entry on port 4's tuple
	var logBuf bytes.Buffer
	now := time.Unix(1000, 0)
	var res results
	h := newTestHandoff(t, k, Config{
		Logger: slog.New(slog.NewTextHandler(&logBuf, nil)),
		Now:    func() time.Time { return now },
	}, &res)
	bad := flowPort(5)
	bad.Server = netip.MustParseAddrPort("[2001:db8::1]:80") // families differ
	for _, f := range []Flow{flowPort(1), flowPort(2), flowPort(3), flowPort(4), bad} {
		h.Submit(&f)
	}
	runUntil(t, h, &res, 5)
	want := []error{nil, ErrTableFull, syscall.EINVAL, ErrExists, ErrFamily}
	for i, r := range res.list() {
		if want[i] == nil && r.Err != nil || want[i] != nil && !errors.Is(r.Err, want[i]) {
			t.Errorf("result for port %d: err %v, want %v", r.Flow.Client.Port(), r.Err, want[i])
		}
	}
	s := h.Stats()
	var wantFailed [NumFailReasons]uint64
	wantFailed[FailTableFull] = 1
	wantFailed[FailKernel] = 1
	wantFailed[FailExists] = 1
	wantFailed[FailBadFlow] = 1
	if s.Created != 1 || s.Failed != wantFailed || s.FailedTotal() != 4 {
		t.Errorf("Stats = %+v, want 1 created, failed %v", s, wantFailed)
	}
	// The bad flow never reached the kernel; the live entry was looked at
	// and left alone.
	if diff := cmp.Diff([]string{"create[1 2 3 4]", "get4"}, k.log()); diff != "" {
		t.Errorf("kernel calls (-want +got):\n%s", diff)
	}
	// Four failures at one instant: one log line.
	if n := strings.Count(logBuf.String(), "level=WARN"); n != 1 {
		t.Errorf("failures logged %d times in one window, want 1:\n%s", n, logBuf.String())
	}
	// The next window logs again, and says how many it left out.
	now = now.Add(DefaultLogWindow)
	k.failFor[6] = syscall.ENOMEM
	f := flowPort(6)
	h.Submit(&f)
	runUntil(t, h, &res, 6)
	if n := strings.Count(logBuf.String(), "level=WARN"); n != 2 || !strings.Contains(logBuf.String(), "suppressed_in_last_window=3") {
		t.Errorf("log after the window:\n%s\nwant a second line with suppressed_in_last_window=3", logBuf.String())
	}
}

func TestHandoffSendError(t *testing.T) {
	k := newFakeKernel()
	k.sendErr = syscall.ENOBUFS
	var res results
	h := newTestHandoff(t, k, Config{}, &res)
	for p := 1; p <= 3; p++ {
		f := flowPort(uint16(p))
		h.Submit(&f)
	}
	runUntil(t, h, &res, 3)
	for _, r := range res.list() {
		if !errors.Is(r.Err, syscall.ENOBUFS) {
			t.Errorf("result %d: err %v, want ENOBUFS", r.Flow.Client.Port(), r.Err)
		}
	}
	if s := h.Stats(); s.Failed[FailKernel] != 3 {
		t.Errorf("Failed[kernel] = %d, want 3", s.Failed[FailKernel])
	}
}

func TestHandoffReplacesStale(t *testing.T) {
	for _, st := range []TCPState{StateTimeWait, StateClose} {
		t.Run(st.String(), func(t *testing.T) {
			k := newFakeKernel()
			k.put(1, st)
			var res results
			h := newTestHandoff(t, k, Config{}, &res)
			f := flowPort(1)
			h.Submit(&f)
			runUntil(t, h, &res, 1)
			if r := res.list()[0]; r.Err != nil {
				t.Fatalf("create over a %s entry: %v", st, r.Err)
			}
			if diff := cmp.Diff([]string{"create[1]", "get1", "remove1", "create[1]"}, k.log()); diff != "" {
				t.Errorf("kernel calls (-want +got):\n%s", diff)
			}
			if s := h.Stats(); s.Replaced != 1 || s.Created != 1 {
				t.Errorf("Stats = %+v, want Replaced 1 Created 1", s)
			}
			if e := k.table[[2]netip.AddrPort{f.Client, f.Server}]; e.State != StateEstablished {
				t.Errorf("entry state after replace = %s, want established", e.State)
			}
		})
	}
}

func TestHandoffRemoveStale(t *testing.T) {
	tests := []struct {
		name        string
		state       TCPState // StateNone: no entry
		wantErr     error
		wantRemoved bool
		wantCalls   []string
	}{
		{"none", StateNone, nil, false, []string{"get1"}},
		{"time_wait", StateTimeWait, nil, true, []string{"get1", "remove1"}},
		{"close", StateClose, nil, true, []string{"get1", "remove1"}},
		{"established", StateEstablished, ErrLiveEntry, false, []string{"get1"}},
		{"fin_wait", StateFinWait, ErrLiveEntry, false, []string{"get1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFakeKernel()
			if tt.state != StateNone {
				k.put(1, tt.state)
			}
			var res results
			h := newTestHandoff(t, k, Config{}, &res)
			f := flowPort(1)
			h.RemoveStale(f.Client, f.Server, 77)
			runUntil(t, h, &res, 1)
			r := res.list()[0]
			if !errors.Is(r.Err, tt.wantErr) || (tt.wantErr == nil) != (r.Err == nil) {
				t.Errorf("RemoveStale err = %v, want %v", r.Err, tt.wantErr)
			}
			if r.Removed != tt.wantRemoved || r.Found != (tt.state != StateNone) || r.Flow.Token != 77 || r.Op != OpRemoveStale {
				t.Errorf("RemoveStale result = %+v, want removed %v token 77", r, tt.wantRemoved)
			}
			if diff := cmp.Diff(tt.wantCalls, k.log()); diff != "" {
				t.Errorf("kernel calls (-want +got):\n%s", diff)
			}
		})
	}
}

// TestHandoffOrder: a stale check between creates keeps its place, so a
// removal queued before a create on the same tuple happens first.
func TestHandoffOrder(t *testing.T) {
	k := newFakeKernel()
	k.put(2, StateTimeWait)
	var res results
	h := newTestHandoff(t, k, Config{}, &res)
	f1, f2, f3 := flowPort(1), flowPort(2), flowPort(3)
	h.Submit(&f1)
	h.RemoveStale(f2.Client, f2.Server, 2)
	h.Submit(&f2)
	h.Submit(&f3)
	runUntil(t, h, &res, 4)
	if diff := cmp.Diff([]string{"create[1]", "get2", "remove2", "create[2 3]"}, k.log()); diff != "" {
		t.Errorf("kernel calls (-want +got):\n%s", diff)
	}
	var ops []string
	for _, r := range res.list() {
		ops = append(ops, fmt.Sprintf("%s%d:%v", r.Op, r.Flow.Token, r.Err))
	}
	want := []string{"create1:<nil>", "remove_stale2:<nil>", "create2:<nil>", "create3:<nil>"}
	if diff := cmp.Diff(want, ops); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
}

func TestConfigDefaults(t *testing.T) {
	tests := []struct {
		name    string
		in      Config
		wantErr bool
		mark    uint32
		mask    uint32
	}{
		{"zero", Config{}, false, DefaultMark, DefaultMarkMask},
		{"mark without mask: exact", Config{Mark: 7}, false, 7, 0xffffffff},
		{"mark outside mask", Config{Mark: 0x1, MarkMask: 0xff00}, true, 0, 0},
		{"timeout below a second", Config{Timeout: time.Millisecond}, true, 0, 0},
		{"negative queue", Config{QueueLen: -1}, true, 0, 0},
		{"batch too large", Config{MaxBatch: 5000}, true, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.withDefaults()
			if (err != nil) != tt.wantErr {
				t.Fatalf("withDefaults(%+v) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if err == nil && (got.Mark != tt.mark || got.MarkMask != tt.mask) {
				t.Errorf("withDefaults(%+v) mark %#x/%#x, want %#x/%#x", tt.in, got.Mark, got.MarkMask, tt.mark, tt.mask)
			}
		})
	}
}

func TestFlowValidate(t *testing.T) {
	ok := testFlow4()
	mixed := testFlow4()
	mixed.Server = testFlow6().Server
	zone := testFlow6()
	zone.Client = netip.AddrPortFrom(zone.Client.Addr().WithZone("eth0"), 1)
	port := testFlow4()
	port.Server = netip.AddrPortFrom(port.Server.Addr(), 0)
	ws := testFlow4()
	ws.ServerWScale = 15
	wsOff := ws
	wsOff.Opts &^= OptWindowScale
	tests := []struct {
		name string
		f    Flow
		want error
	}{
		{"ok", ok, nil},
		{"mixed families", mixed, ErrFamily},
		{"zero value", Flow{}, ErrFamily},
		{"zone", zone, ErrZone},
		{"port 0", port, ErrPort},
		{"wscale 15", ws, ErrWScale},
		{"wscale 15 unused", wsOff, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f.Validate(); !errors.Is(got, tt.want) || (got == nil) != (tt.want == nil) {
				t.Errorf("Validate(%v) = %v, want %v", &tt.f, got, tt.want)
			}
		})
	}
}

func TestOffsets(t *testing.T) {
	f := testFlow4()
	if got, want := f.SeqOffset(), uint32(0xe0000000); got != want {
		t.Errorf("SeqOffset() = %#x, want %#x", got, want)
	}
	if got := f.TSOffset(); got != 4000 {
		t.Errorf("TSOffset() = %d, want 4000", got)
	}
	f.Opts &^= OptTimestamps
	if got := f.TSOffset(); got != 0 {
		t.Errorf("TSOffset() without timestamps = %d, want 0", got)
	}
	if got := (OptWindowScale | OptTimestamps).String(); got != "wscale,ts" {
		t.Errorf("Options.String() = %q, want wscale,ts", got)
	}
}

// TestHandoffStatusFallback: on a kernel that refuses CONFIRMED in a
// create's status, the Handoff retries without it and keeps doing so.
func TestHandoffStatusFallback(t *testing.T) {
	k := newFakeKernel()
	k.unconfirmed = true
	var res results
	h := newTestHandoff(t, k, Config{}, &res)
	for p := 1; p <= 2; p++ {
		f := flowPort(uint16(p))
		h.Submit(&f)
	}
	runUntil(t, h, &res, 2)
	f := flowPort(3)
	h.Submit(&f)
	runUntil(t, h, &res, 3)
	for _, r := range res.list() {
		if r.Err != nil {
			t.Errorf("create %d: %v", r.Flow.Client.Port(), r.Err)
		}
	}
	want := []uint32{createStatus, createStatus, createStatusUnconfirmed, createStatusUnconfirmed, createStatusUnconfirmed}
	if diff := cmp.Diff(want, k.statuses); diff != "" {
		t.Errorf("statuses sent (-want +got):\n%s", diff)
	}
}

func TestProbeFake(t *testing.T) {
	tests := []struct {
		name        string
		unconfirmed bool
		noSeqAdj    bool
		wantErr     bool
		wantStatus  uint32
	}{
		{"confirmed before status", false, false, false, createStatus},
		{"confirmed after status", true, false, false, createStatusUnconfirmed},
		{"no sequence adjustment", false, true, true, createStatus},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFakeKernel()
			k.unconfirmed, k.noSeqAdj = tt.unconfirmed, tt.noSeqAdj
			var res results
			h := newTestHandoff(t, k, Config{}, &res)
			if err := h.Probe(); (err != nil) != tt.wantErr {
				t.Fatalf("Probe() = %v, want error %v", err, tt.wantErr)
			}
			if h.status != tt.wantStatus {
				t.Errorf("status after Probe = %#x, want %#x", h.status, tt.wantStatus)
			}
			if n, _ := k.countMark(0, 0); n != 0 {
				t.Errorf("Probe left %d entries", n)
			}
		})
	}
}

// TestHandoffDelay: with Config.Delay a create waits that long after its
// Submit.
func TestHandoffDelay(t *testing.T) {
	k := newFakeKernel()
	var res results
	const delay = 50 * time.Millisecond
	h := newTestHandoff(t, k, Config{Delay: delay}, &res)
	start := time.Now()
	f := flowPort(1)
	h.Submit(&f)
	runUntil(t, h, &res, 1)
	if el := time.Since(start); el < delay {
		t.Errorf("created after %v, want at least %v", el, delay)
	}
}
