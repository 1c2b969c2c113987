package queue

import (
	"context"
	"errors"
	"fmt"

	nfqueue "github.com/florianl/go-nfqueue/v2"
	"golang.org/x/sys/unix"

	"github.com/synwall/synwall/internal/engine"
)

// nfqWorker is the reference backend on github.com/florianl/go-nfqueue. It
// sends one verdict per packet and injects right after each packet.
type nfqWorker struct {
	cfg   Config
	queue uint16
	proc  engine.Processor
	inj   Injector
	c     *counters
}

func (w *nfqWorker) run(ctx context.Context, bound func()) error {
	flags := uint32(nfqueue.NfQaCfgFlagGSO)
	if w.cfg.FailOpen {
		flags |= nfqueue.NfQaCfgFlagFailOpen
	}
	nf, err := nfqueue.Open(&nfqueue.Config{
		NetNS:        w.cfg.NetNS,
		NfQueue:      w.queue,
		MaxQueueLen:  w.cfg.MaxQueueLen, // never zero: zero made older versions drop everything
		MaxPacketLen: 0xffff,
		Copymode:     nfqueue.NfQnlCopyPacket,
		Flags:        flags,
		AfFamily:     unix.AF_INET,
	})
	if err != nil {
		return fmt.Errorf("queue %d: nfqueue open: %w", w.queue, err)
	}
	if err := nf.Con.SetReadBuffer(w.cfg.RcvBuf); err != nil {
		_ = err // the default buffer still works; overruns are counted
	}
	rctx, cancel := context.WithCancel(ctx)
	// Cancel before Close: Close can hang on a running receive otherwise.
	defer func() {
		cancel()
		nf.Close()
	}()

	var res engine.Result
	fatal := make(chan error, 1)
	hook := func(a nfqueue.Attribute) int {
		now := w.cfg.Now()
		w.c.packets.Add(1)
		if a.PacketID == nil {
			w.c.parseErrors.Add(1)
			return 0
		}
		id := *a.PacketID
		if a.Payload == nil {
			w.c.parseErrors.Add(1)
			w.verdict(nf, id, nfqueue.NfDrop, nil)
			return 0
		}
		pkt := *a.Payload
		if a.CapLen != nil && int(*a.CapLen) > len(pkt) {
			w.c.truncated.Add(1)
			w.verdict(nf, id, nfqueue.NfDrop, nil)
			return 0
		}
		var meta engine.Meta
		if a.SkbInfo != nil && len(*a.SkbInfo) >= 4 {
			meta.CsumNotReady = (*a.SkbInfo)[3]&SkbCsumNotReady != 0
			meta.CsumNotVerified = (*a.SkbInfo)[3]&SkbCsumCorrupt != 0
		}
		res = engine.Result{}
		w.proc.Process(pkt, meta, now, &res)
		switch {
		case res.Verdict == engine.Accept && res.Packet == nil:
			w.verdict(nf, id, nfqueue.NfAccept, nil)
		case res.Verdict == engine.Accept && len(res.Packet) <= MaxCopyRange:
			w.verdict(nf, id, nfqueue.NfAccept, res.Packet)
		case res.Verdict == engine.Drop:
			w.verdict(nf, id, nfqueue.NfDrop, nil)
		default:
			w.c.badVerds.Add(1)
			w.verdict(nf, id, nfqueue.NfDrop, nil)
		}
		if len(res.Inject) > 0 {
			n, _ := w.inj.Send(res.Inject)
			w.c.injected.Add(uint64(n))
			w.c.injectErrors.Add(uint64(len(res.Inject) - n))
		}
		return 0
	}
	errfn := func(err error) int {
		if rctx.Err() != nil {
			return 1
		}
		if errors.Is(err, unix.ENOBUFS) {
			// Socket buffer overrun: packets were lost (the kernel counts
			// them too); keep reading.
			w.c.enobufs.Add(1)
			return 0
		}
		var op interface{ Timeout() bool }
		if errors.As(err, &op) && op.Timeout() {
			return 0
		}
		select {
		case fatal <- fmt.Errorf("queue %d: nfqueue receive: %w", w.queue, err):
		default:
		}
		return 1
	}
	if err := nf.RegisterWithErrorFunc(rctx, hook, errfn); err != nil {
		return fmt.Errorf("queue %d: nfqueue bind: %w", w.queue, err)
	}
	bound()
	select {
	case <-ctx.Done():
		return nil
	case err := <-fatal:
		return err
	}
}

func (w *nfqWorker) verdict(nf *nfqueue.Nfqueue, id uint32, v int, payload []byte) {
	var err error
	switch {
	case payload != nil:
		w.c.acceptedAltered.Add(1)
		err = nf.SetVerdictModPacket(id, v, payload)
	case v == nfqueue.NfAccept:
		w.c.accepted.Add(1)
		err = nf.SetVerdict(id, v)
	default:
		w.c.dropped.Add(1)
		err = nf.SetVerdict(id, v)
	}
	w.c.verdictMsgs.Add(1)
	w.c.sends.Add(1)
	if err != nil {
		w.c.kernelErrors.Add(1)
	}
}
