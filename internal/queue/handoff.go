package queue

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Handoff passes bound queue sockets from one process to the next across
// execve, so that a graceful restart never unbinds the queues: packets
// that arrive meanwhile wait in the kernel queue (up to Config.MaxQueueLen,
// beyond which the fail mode applies as for any full queue) and the next
// process reads them. Only BackendRaw hands sockets over; BackendNFQ
// ignores a Handoff and binds and unbinds as usual.
//
// The old process calls Keep before it cancels Run: every raw worker then
// sends the verdicts of everything it has read, leaves its queue bound and
// its socket open, and records the socket in Kept. Env clears close-on-exec
// on those sockets and names them in the environment variable HandoffEnv
// for the next process, whose HandoffFromEnv picks them up; Config.Handoff
// then makes each worker adopt the socket of its queue number (sending the
// queue's configuration again, not binding it).
type Handoff struct {
	// Inherited maps queue numbers to netlink sockets bound by an earlier
	// process (from HandoffFromEnv).
	Inherited map[uint16]int

	keep atomic.Bool
	mu   sync.Mutex
	kept map[uint16]int
}

// HandoffEnv is the environment variable that names the handed-over
// sockets: "QUEUE:FD" pairs separated by commas, e.g. "0:5,1:6".
const HandoffEnv = "SYNWALL_QUEUE_FDS"

// Keep makes workers stopped from now on leave their queues bound for the
// next process.
func (h *Handoff) Keep() {
	if h != nil {
		h.keep.Store(true)
	}
}

func (h *Handoff) keeping() bool { return h != nil && h.keep.Load() }

// inherited returns the socket handed over for queue q, if any.
func (h *Handoff) inherited(q uint16) (int, bool) {
	if h == nil {
		return 0, false
	}
	fd, ok := h.Inherited[q]
	return fd, ok
}

func (h *Handoff) record(q uint16, fd int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.kept == nil {
		h.kept = make(map[uint16]int)
	}
	h.kept[q] = fd
}

// Kept returns the sockets left bound by workers that stopped after Keep,
// by queue number.
func (h *Handoff) Kept() map[uint16]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[uint16]int, len(h.kept))
	for q, fd := range h.kept {
		out[q] = fd
	}
	return out
}

// formatHandoff renders fds for HandoffEnv, queue numbers ascending.
func formatHandoff(fds map[uint16]int) string {
	qs := make([]uint16, 0, len(fds))
	for q := range fds {
		qs = append(qs, q)
	}
	slices.Sort(qs)
	parts := make([]string, len(qs))
	for i, q := range qs {
		parts[i] = fmt.Sprintf("%d:%d", q, fds[q])
	}
	return strings.Join(parts, ",")
}

// parseHandoff reads the value of HandoffEnv. Queue numbers and fds must be
// unique and fds above 2 (never stdin, stdout or stderr).
func parseHandoff(s string) (map[uint16]int, error) {
	out := map[uint16]int{}
	if s == "" {
		return out, nil
	}
	seen := map[int]bool{}
	for _, p := range strings.Split(s, ",") {
		qs, fs, ok := strings.Cut(p, ":")
		q, err1 := strconv.ParseUint(qs, 10, 16)
		fd, err2 := strconv.Atoi(fs)
		if !ok || err1 != nil || err2 != nil || fd <= 2 {
			return nil, fmt.Errorf("queue: %s=%q: want QUEUE:FD pairs with FD > 2", HandoffEnv, s)
		}
		if _, dup := out[uint16(q)]; dup || seen[fd] {
			return nil, fmt.Errorf("queue: %s=%q: queue or fd named twice", HandoffEnv, s)
		}
		out[uint16(q)], seen[fd] = fd, true
	}
	return out, nil
}
