package queue

import (
	"time"

	"github.com/synwall/synwall/internal/engine"
)

// Sizes of a pipeline's reused buffers.
const (
	maxPending   = 64        // packets whose verdicts may wait for one flush
	sendBufSize  = 160 << 10 // verdict bytes per write; below the default netlink wmem
	injArenaSize = 256 << 10 // bytes of injected packets staged per flush
	maxInjected  = 128       // injected packets staged per flush
)

// pipeline turns packets from the kernel into verdicts and injected packets
// for one queue. It owns all its buffers; nothing it does per packet
// allocates. The backend feeds it packets with handle and calls flush at the
// end of each receive drain, when full reports that it must, and on its
// timer.
type pipeline struct {
	queue uint16
	proc  engine.Processor
	inj   Injector
	c     *counters
	send  func([]byte) error // writes verdict messages to the kernel

	res engine.Result

	out       []byte // encoded verdict messages not yet sent
	runLen    int    // plain verdicts folded into the open run
	runID     uint32 // id of the last packet of the open run
	runAccept bool   // the run's verdict
	pending   int    // packets with an unsent verdict
	since     time.Time

	arena   []byte   // copies of packets to inject
	injPkts [][]byte // views into arena, in order
}

func newPipeline(queue uint16, proc engine.Processor, inj Injector, c *counters, send func([]byte) error) *pipeline {
	return &pipeline{
		queue:   queue,
		proc:    proc,
		inj:     inj,
		c:       c,
		send:    send,
		out:     make([]byte, 0, sendBufSize),
		arena:   make([]byte, 0, injArenaSize),
		injPkts: make([][]byte, 0, maxInjected),
	}
}

// handle runs the processor on one packet and records its verdict and
// injected packets. It flushes first when a buffer would overflow.
func (p *pipeline) handle(pkt *Packet, now time.Time) error {
	p.c.packets.Add(1)
	if p.pending == 0 {
		p.since = now
	}
	if pkt.Truncated() {
		// The kernel copied only MaxCopyRange bytes of a larger packet:
		// nothing can judge or rewrite it whole. Drop it; the sender
		// retransmits.
		p.c.truncated.Add(1)
		return p.plain(pkt.ID, false)
	}
	p.res = engine.Result{}
	meta := engine.Meta{CsumNotReady: pkt.SkbInfo&SkbCsumNotReady != 0, CsumNotVerified: pkt.SkbInfo&SkbCsumCorrupt != 0}
	p.proc.Process(pkt.Payload, meta, now, &p.res)

	var err error
	switch {
	case p.res.Verdict == engine.Accept && p.res.Packet == nil:
		err = p.plain(pkt.ID, true)
	case p.res.Verdict == engine.Accept && len(p.res.Packet) <= MaxCopyRange:
		err = p.altered(pkt.ID, p.res.Packet)
	case p.res.Verdict == engine.Drop:
		err = p.plain(pkt.ID, false)
	default:
		// Invalid verdict, or an altered packet too long for a verdict.
		p.c.badVerds.Add(1)
		err = p.plain(pkt.ID, false)
	}
	if err != nil {
		return err
	}
	for _, b := range p.res.Inject {
		if len(b) > cap(p.arena) {
			p.c.injectErrors.Add(1)
			continue
		}
		if len(p.injPkts) == cap(p.injPkts) || len(p.arena)+len(b) > cap(p.arena) {
			if err := p.flush(); err != nil {
				return err
			}
		}
		start := len(p.arena)
		p.arena = append(p.arena, b...)
		p.injPkts = append(p.injPkts, p.arena[start:len(p.arena):len(p.arena)])
	}
	return nil
}

// plain records a verdict without payload, extending the open run when it
// has the same verdict (FIFO order is kept: a run only ever grows at its
// end).
func (p *pipeline) plain(id uint32, accept bool) error {
	if accept {
		p.c.accepted.Add(1)
	} else {
		p.c.dropped.Add(1)
	}
	p.pending++
	if p.runLen > 0 && p.runAccept == accept {
		p.runLen++
		p.runID = id
		return nil
	}
	if err := p.closeRun(); err != nil {
		return err
	}
	p.runLen, p.runID, p.runAccept = 1, id, accept
	return nil
}

// altered records an ACCEPT verdict that replaces the packet.
func (p *pipeline) altered(id uint32, pkt []byte) error {
	p.c.acceptedAltered.Add(1)
	p.pending++
	if err := p.closeRun(); err != nil {
		return err
	}
	if len(p.out)+verdictMsgLen(len(pkt)) > cap(p.out) {
		if err := p.flushVerdicts(); err != nil {
			return err
		}
	}
	p.out, _ = AppendVerdict(p.out, p.queue, id, true, pkt) // length checked by handle
	p.c.verdictMsgs.Add(1)
	return nil
}

// closeRun encodes the open run: one verdict for a single packet, a batch
// verdict for several.
func (p *pipeline) closeRun() error {
	if p.runLen == 0 {
		return nil
	}
	if len(p.out)+verdictMsgLen(0) > cap(p.out) {
		if err := p.sendOut(); err != nil {
			return err
		}
	}
	if p.runLen == 1 {
		p.out, _ = AppendVerdict(p.out, p.queue, p.runID, p.runAccept, nil)
		p.c.verdictMsgs.Add(1)
	} else {
		p.out = AppendVerdictBatch(p.out, p.queue, p.runID, p.runAccept)
		p.c.batches.Add(1)
	}
	p.runLen = 0
	return nil
}

// full reports whether enough is pending that the backend should flush
// now, without waiting for the end of the drain.
func (p *pipeline) full(now time.Time, interval time.Duration) bool {
	return p.pending >= maxPending || (p.pending > 0 && now.Sub(p.since) >= interval)
}

func (p *pipeline) sendOut() error {
	if len(p.out) == 0 {
		return nil
	}
	p.c.sends.Add(1)
	err := p.send(p.out)
	p.out = p.out[:0]
	return err
}

func (p *pipeline) flushVerdicts() error {
	if err := p.closeRun(); err != nil {
		return err
	}
	p.pending = 0
	return p.sendOut()
}

// flush sends every pending verdict, then every staged injected packet.
func (p *pipeline) flush() error {
	err := p.flushVerdicts()
	if len(p.injPkts) > 0 {
		n, ierr := p.inj.Send(p.injPkts)
		p.c.injected.Add(uint64(n))
		if ierr != nil || n < len(p.injPkts) {
			p.c.injectErrors.Add(uint64(len(p.injPkts) - n))
		}
		clear(p.injPkts) // drop references into the arena
		p.injPkts = p.injPkts[:0]
		p.arena = p.arena[:0]
	}
	return err
}
