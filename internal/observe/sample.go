package observe

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// Defaults of SamplerConfig.
const (
	DefaultSampleRate = 50       // packets per second
	DefaultSnaplen    = 256      // bytes kept of each packet
	DefaultRingSlots  = 256      // packets waiting for the writer
	DefaultMaxBytes   = 16 << 20 // size at which a file is rotated
	DefaultFiles      = 4        // files kept, the current one included
)

// SamplerConfig sets up a Sampler. Zero values take the defaults above.
type SamplerConfig struct {
	// Path of the current file; rotated files are Path.1 (newest) to
	// Path.(Files-1). Required.
	Path     string
	Rate     float64 // packets per second at most; the burst is one second's worth
	Snaplen  int
	Slots    int
	MaxBytes int64
	Files    int
}

func (c SamplerConfig) withDefaults() (SamplerConfig, error) {
	if c.Path == "" {
		return c, errors.New("observe: sampler without a file path")
	}
	if !(c.Rate >= 0) || c.Snaplen < 0 || c.Slots < 0 || c.MaxBytes < 0 || c.Files < 0 {
		return c, fmt.Errorf("observe: negative (or NaN) sampler setting %+v", c)
	}
	if c.Rate == 0 {
		c.Rate = DefaultSampleRate
	}
	if c.Snaplen == 0 {
		c.Snaplen = DefaultSnaplen
	}
	if c.Slots == 0 {
		c.Slots = DefaultRingSlots
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.Files == 0 {
		c.Files = DefaultFiles
	}
	if c.Snaplen < 40 || c.Snaplen > 65535 || c.Slots > 1<<16 || c.MaxBytes < 4096 || c.Files > 1000 || c.Rate > 1e6 {
		return c, fmt.Errorf("observe: sampler settings out of range (snaplen %d in 40..65535, slots %d <= 65536, max bytes %d >= 4096, files %d <= 1000, rate %g <= 1e6)",
			c.Snaplen, c.Slots, c.MaxBytes, c.Files, c.Rate)
	}
	return c, nil
}

// SamplerStats are the counters of a Sampler.
type SamplerStats struct {
	Offered     uint64 `json:"offered"`      // dropped packets seen
	Limited     uint64 `json:"limited"`      // over the rate, not sampled
	RingFull    uint64 `json:"ring_full"`    // sampled but the writer was behind: not written
	Written     uint64 `json:"written"`      // packets written to a file
	WriteErrors uint64 `json:"write_errors"` // packets lost to file errors
	Rotations   uint64 `json:"rotations"`
}

// slot is one packet copy in the ring.
type slot struct {
	when  time.Time
	class Class
	orig  int
	n     int
	data  []byte // Snaplen bytes, part of one array
}

// Sampler writes a bounded sample of dropped packets to rotating pcapng
// files. Offer takes a packet from any worker without blocking or
// allocating: a token bucket (GCRA) decides whether it is sampled, and the
// packet is copied into a free slot of a fixed ring for the writer (Run);
// when no slot is free it is counted and forgotten. Each file is a pcapng
// section with one interface of link type RAW (101: the packet starts with
// its IPv4 or IPv6 header); each packet carries a comment "drop: CLASS"
// (tcpdump reads the files; tshark and Wireshark show the comments). Files
// are created 0600. Disk use is at most about Files × (MaxBytes + 4 KB).
type Sampler struct {
	cfg      SamplerConfig
	interval int64 // ns between tokens
	burst    int64 // ns of credit
	tat      atomic.Int64

	files  *pcapFiles // made by Open; used by Run only
	slots  []slot
	free   chan int32
	filled chan int32

	offered, limited, ringFull, written, writeErrs, rotations atomic.Uint64
}

// NewSampler allocates the ring. Nothing is written until Run.
func NewSampler(cfg SamplerConfig) (*Sampler, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Sampler{
		cfg:      cfg,
		interval: int64(float64(time.Second) / cfg.Rate),
		slots:    make([]slot, cfg.Slots),
		free:     make(chan int32, cfg.Slots),
		filled:   make(chan int32, cfg.Slots),
	}
	s.burst = max(int64(time.Second), s.interval)
	mem := make([]byte, cfg.Slots*cfg.Snaplen)
	for i := range s.slots {
		s.slots[i].data = mem[i*cfg.Snaplen : (i+1)*cfg.Snaplen : (i+1)*cfg.Snaplen]
		s.free <- int32(i)
	}
	return s, nil
}

// Config returns the settings in use, defaults filled in.
func (s *Sampler) Config() SamplerConfig { return s.cfg }

// allow is the generic cell rate algorithm: a packet conforms when the
// theoretical arrival time is at most burst ahead of now.
func (s *Sampler) allow(now int64) bool {
	for {
		tat := s.tat.Load()
		next := max(tat, now) + s.interval
		if next-now > s.burst {
			return false
		}
		if s.tat.CompareAndSwap(tat, next) {
			return true
		}
	}
}

// Offer samples pkt, dropped for class c at now, when the rate allows and
// the ring has room. It never blocks and never allocates.
func (s *Sampler) Offer(pkt []byte, c Class, now time.Time) {
	s.offered.Add(1)
	if !s.allow(now.UnixNano()) {
		s.limited.Add(1)
		return
	}
	var i int32
	select {
	case i = <-s.free:
	default:
		s.ringFull.Add(1)
		return
	}
	sl := &s.slots[i]
	sl.when, sl.class, sl.orig = now, c, len(pkt)
	sl.n = copy(sl.data, pkt)
	s.filled <- i // never blocks: as many places as slots
}

// Stats returns the counters.
func (s *Sampler) Stats() SamplerStats {
	return SamplerStats{
		Offered: s.offered.Load(), Limited: s.limited.Load(), RingFull: s.ringFull.Load(),
		Written: s.written.Load(), WriteErrors: s.writeErrs.Load(), Rotations: s.rotations.Load(),
	}
}

// Open creates the first file, so that a bad path is an error before
// anything runs, rotating one left at Path. Run calls it when nobody did.
func (s *Sampler) Open() error {
	if s.files != nil {
		return nil
	}
	f := &pcapFiles{cfg: s.cfg, openFile: os.OpenFile, now: time.Now}
	// The current file of an earlier run (a restart) is rotated, not
	// truncated: its samples are kept as Path.1.
	open := f.open
	if _, err := os.Lstat(s.cfg.Path); err == nil {
		open = f.rotate
	}
	if err := open(); err != nil {
		return err
	}
	s.files = f
	return nil
}

// Run writes sampled packets until ctx ends, then writes what is left in
// the ring and closes the file. It returns an error only when the first
// file cannot be created; later file errors are counted (WriteErrors) and
// retried with the next packet. Run is called once.
func (s *Sampler) Run(ctx context.Context) error {
	if err := s.Open(); err != nil {
		return err
	}
	f := s.files
	defer f.close()
	write := func(i int32) {
		sl := &s.slots[i]
		err := f.write(sl, s)
		s.free <- i
		if err != nil {
			s.writeErrs.Add(1)
			f.close() // reopened (rotated) with the next packet
			return
		}
		s.written.Add(1)
	}
	for {
		select {
		case i := <-s.filled:
			write(i)
			if len(s.filled) == 0 {
				f.flush()
			}
		case <-ctx.Done():
			for {
				select {
				case i := <-s.filled:
					write(i)
				default:
					return nil
				}
			}
		}
	}
}

// countWriter counts the bytes written to a file.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// pcapFiles is the current file and its rotation.
type pcapFiles struct {
	cfg  SamplerConfig
	file *os.File
	cw   *countWriter
	ng   *pcapgo.NgWriter
	buf  []byte // one block, reused
	// retryAt is set while no file could be opened: the next attempt.
	retryAt time.Time
	// openFile and now are os.OpenFile and time.Now, replaced in tests.
	openFile func(name string, flag int, perm os.FileMode) (*os.File, error)
	now      func() time.Time
}

// errPcapRetry is counted as a write error while a failed file waits for
// its next attempt.
var errPcapRetry = errors.New("observe: pcap file unavailable, retrying")

// Name returns the path of the i-th file: Path for 0, Path.i after.
func fileName(path string, i int) string {
	if i == 0 {
		return path
	}
	return path + "." + strconv.Itoa(i)
}

// open creates a new current file with its section and interfaces.
func (f *pcapFiles) open() error {
	file, err := f.openFile(f.cfg.Path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("observe: pcap file: %w", err)
	}
	if err := file.Chmod(0o600); err != nil { // an existing file keeps its mode otherwise
		file.Close()
		return fmt.Errorf("observe: pcap file: %w", err)
	}
	cw := &countWriter{w: file}
	ng, err := pcapgo.NewNgWriterInterface(cw, pcapgo.NgInterface{
		Name:                "synwall",
		Description:         "packets dropped by synwall; each packet's comment names the drop class",
		LinkType:            layers.LinkTypeRaw,
		SnapLength:          uint32(f.cfg.Snaplen),
		TimestampResolution: 9,
	}, pcapgo.NgWriterOptions{
		SectionInfo: pcapgo.NgSectionInfo{Application: "synwall", Comment: "dropped packets sampled by synwall"},
	})
	if err == nil {
		err = ng.Flush()
	}
	if err != nil {
		file.Close()
		return fmt.Errorf("observe: pcap file %s: %w", f.cfg.Path, err)
	}
	f.file, f.cw, f.ng = file, cw, ng
	return nil
}

func (f *pcapFiles) flush() {
	if f.ng != nil {
		f.ng.Flush()
	}
}

func (f *pcapFiles) close() {
	if f.file != nil {
		f.ng.Flush()
		f.file.Close()
		f.file, f.ng, f.cw = nil, nil, nil
	}
}

// rotate closes the current file, shifts Path.i to Path.i+1 (the oldest
// falls off) and opens a new one.
func (f *pcapFiles) rotate() error {
	f.close()
	n := f.cfg.Files
	os.Remove(fileName(f.cfg.Path, n-1))
	for i := n - 2; i >= 0; i-- {
		os.Rename(fileName(f.cfg.Path, i), fileName(f.cfg.Path, i+1))
	}
	return f.open()
}

// write appends one packet, rotating first when the file is full (or was
// closed after an error).
func (f *pcapFiles) write(sl *slot, s *Sampler) error {
	switch {
	case f.file == nil && !f.retryAt.IsZero():
		// The last open failed. Try again in place, at most once a
		// second, so that a lasting error (a full disk, a removed
		// directory) never rotates the kept files away.
		if f.now().Before(f.retryAt) {
			return errPcapRetry
		}
		if err := f.open(); err != nil {
			f.retryAt = f.now().Add(time.Second)
			return err
		}
		f.retryAt = time.Time{}
	case f.file == nil || f.cw.n+int64(sl.n)+64 > f.cfg.MaxBytes:
		if err := f.rotate(); err != nil {
			f.retryAt = f.now().Add(time.Second)
			return err
		}
		s.rotations.Add(1)
	}
	if err := f.ng.Flush(); err != nil { // the section and interface go first
		return err
	}
	f.buf = appendEPB(f.buf[:0], sl.when, sl.data[:sl.n], sl.orig, "drop: "+sl.class.String())
	_, err := f.cw.Write(f.buf)
	return err
}

// appendEPB appends a pcapng Enhanced Packet Block on interface 0 with an
// opt_comment (draft-ietf-opsawg-pcapng §4.3, §3.5), little endian as the
// section header gopacket writes. gopacket's writer has no packet options.
func appendEPB(b []byte, when time.Time, data []byte, orig int, comment string) []byte {
	pad := func(n int) int { return (4 - n&3) & 3 }
	total := 28 + len(data) + pad(len(data)) + 4 + len(comment) + pad(len(comment)) + 4 + 4
	le := binary.LittleEndian
	ts := uint64(when.UnixNano()) // resolution 9 (ns), as the interface says
	b = le.AppendUint32(b, 6)     // block type: Enhanced Packet Block
	b = le.AppendUint32(b, uint32(total))
	b = le.AppendUint32(b, 0) // interface
	b = le.AppendUint32(b, uint32(ts>>32))
	b = le.AppendUint32(b, uint32(ts))
	b = le.AppendUint32(b, uint32(len(data)))
	b = le.AppendUint32(b, uint32(orig))
	b = append(b, data...)
	b = append(b, make([]byte, pad(len(data)))...)
	b = le.AppendUint16(b, 1) // opt_comment
	b = le.AppendUint16(b, uint16(len(comment)))
	b = append(b, comment...)
	b = append(b, make([]byte, pad(len(comment)))...)
	b = le.AppendUint32(b, 0) // opt_endofopt
	return le.AppendUint32(b, uint32(total))
}
