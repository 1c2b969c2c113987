//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package synstage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"unsafe"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/synwall/synwall/internal/gateway/header"
)

// SetSampling makes the program sample the frames it drops into its ring
// buffer (ReadSamples), at most rate per second with a burst of one
// second's worth, as the daemon's pcap sampler (internal/observe Sampler)
// allows; 0 turns sampling off. The token bucket lives in the program, so
// that a flood of drops costs no more than rate records.
func (s *Stage) SetSampling(rate float64) error {
	if !(rate >= 0) || rate > 1e6 {
		return fmt.Errorf("synstage: sampling rate %g out of range (0..1e6)", rate)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	var c synstageSynstageSampleConfig
	if err := s.objs.SampleConfig.Lookup(uint32(0), &c); err != nil {
		return fmt.Errorf("synstage: reading the sampling configuration: %w", err)
	}
	c.IntervalNs, c.TauNs = 0, 0
	if rate > 0 {
		c.IntervalNs = uint64(math.Round(1e9 / rate))
		c.TauNs = max(uint64(1e9), c.IntervalNs)
	}
	if err := s.objs.SampleConfig.Put(uint32(0), &c); err != nil {
		return fmt.Errorf("synstage: writing the sampling configuration: %w", err)
	}
	return nil
}

// sampleOf decodes a record of the samples ring buffer (struct
// synstage_sample) into smp, whose Packet then points into raw.
func sampleOf(raw []byte, smp *Sample) bool {
	const hdr = int(unsafe.Offsetof(synstageSynstageSample{}.Data))
	if len(raw) < hdr {
		return false
	}
	c := binary.LittleEndian.Uint32(raw[0:])
	smp.Len = int(binary.LittleEndian.Uint32(raw[4:]))
	caplen := int(binary.LittleEndian.Uint32(raw[8:]))
	if caplen > len(raw)-hdr {
		return false
	}
	smp.Reason, smp.PolicyDrop, smp.Limited = header.OK, false, false
	switch bpfCounter(c) {
	case synstageSynstageCounterSYNSTAGE_DROP_DENIED, synstageSynstageCounterSYNSTAGE_DROP_POLICY:
		smp.PolicyDrop = true
	case synstageSynstageCounterSYNSTAGE_DROP_SYN_LIMITED, synstageSynstageCounterSYNSTAGE_DROP_SYNACK_LIMITED:
		smp.Limited = true
	default:
		if c <= uint32(header.OK) || c >= uint32(header.NumReasons) {
			return false
		}
		smp.Reason = header.Reason(c)
	}
	// From the IP header on: the pcap file's link type is raw IP.
	smp.Packet = nil
	if caplen >= 14 {
		smp.Packet = raw[hdr+14 : hdr+caplen]
	}
	return true
}

// ReadSamples calls fn with each frame the program samples (SetSampling)
// until ctx ends; the Sample and its Packet are valid until fn returns. It
// returns nil when ctx ends or the stage is closed.
func (s *Stage) ReadSamples(ctx context.Context, fn func(*Sample)) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	r, err := ringbuf.NewReader(s.objs.Samples)
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("synstage: reading samples: %w", err)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
		}
		r.Close()
	}()
	var rec ringbuf.Record
	var smp Sample
	for {
		if err := r.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrClosed) || errors.Is(err, os.ErrClosed) {
				return nil
			}
			return fmt.Errorf("synstage: reading samples: %w", err)
		}
		if sampleOf(rec.RawSample, &smp) {
			fn(&smp)
		}
	}
}
