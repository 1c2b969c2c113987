package observe

import (
	"context"
	"errors"
	"io"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/synwall/synwall/internal/gateway/header"
)

// runSampler starts the writer and returns a function that stops it and
// waits.
func runSampler(t *testing.T, s *Sampler) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Sampler.Run: %v", err)
		}
	}
}

type readPacket struct {
	data  []byte
	class string
	orig  int
}

// readPcapng reads a file with pcapgo and returns its packets with the name
// of their interface.
func readPcapng(t *testing.T, path string) []readPacket {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("NewNgReader(%s): %v", path, err)
	}
	if r.LinkType() != layers.LinkTypeRaw {
		t.Errorf("%s: link type %v, want RAW (101)", path, r.LinkType())
	}
	var out []readPacket
	defer func() { // pcapgo skips packet options: find the comments in the bytes
		raw, _ := os.ReadFile(path)
		rest := string(raw)
		for i := range out {
			k := strings.Index(rest, "drop: ")
			if k < 0 {
				t.Errorf("%s: no comment for packet %d", path, i)
				return
			}
			rest = rest[k+6:]
			out[i].class = rest[:strings.IndexByte(rest, 0)]
		}
	}()
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: ReadPacketData: %v", path, err)
		}
		out = append(out, readPacket{data: append([]byte(nil), data...), orig: ci.Length})
	}
}

func TestSamplerWritesPcapng(t *testing.T) {
	path := filepath.Join(t.TempDir(), "drops.pcapng")
	s, err := NewSampler(SamplerConfig{Path: path, Rate: 1000, Snaplen: 48})
	if err != nil {
		t.Fatal(err)
	}
	stop := runSampler(t, s)
	p4 := tcpPacket(netip.MustParseAddr("198.18.2.7"), netip.MustParseAddr("198.18.3.2"), 999, 80, header.SYN|header.FIN)
	p6 := tcpPacket(netip.MustParseAddr("2001:db8:2::7"), netip.MustParseAddr("2001:db8:3::2"), 999, 443, 0)
	now := t0
	for i := range 10 {
		now = now.Add(10 * time.Millisecond)
		if i%2 == 0 {
			s.Offer(p4, Class(header.SynFin), now)
		} else {
			s.Offer(p6, Class(header.NullFlags), now)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().Written < 10 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	if st := s.Stats(); st != (SamplerStats{Offered: 10, Written: 10, Rotations: 0}) {
		t.Errorf("Stats() = %+v, want 10 offered and written", st)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("file mode %v, want 0600", m)
	}
	got := readPcapng(t, path)
	if len(got) != 10 {
		t.Fatalf("read %d packets, want 10", len(got))
	}
	for i, p := range got {
		want, class := p4, "syn_fin"
		if i%2 == 1 {
			want, class = p6[:48], "null_flags"
		}
		if string(p.data) != string(want) || p.class != class {
			t.Errorf("packet %d: %x on %q, want %x on %q", i, p.data, p.class, want, class)
		}
		pkt := gopacket.NewPacket(p.data, layers.LayerTypeIPv4, gopacket.Default)
		if i%2 == 1 {
			pkt = gopacket.NewPacket(p.data, layers.LayerTypeIPv6, gopacket.Default)
			if p.orig != 60 {
				t.Errorf("packet %d: original length %d, want 60", i, p.orig)
			}
		}
		if pkt.Layer(layers.LayerTypeTCP) == nil {
			t.Errorf("packet %d does not decode to TCP: %v", i, pkt)
		}
	}
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Logf("tcpdump not installed: not reading the file with it (%v)", err)
		return
	}
	out, err := exec.Command("tcpdump", "-n", "-r", path).CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump -r: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), "198.18.2.7.999 > 198.18.3.2.80"); n != 5 {
		t.Errorf("tcpdump shows %d IPv4 packets from the attacker, want 5:\n%s", n, out)
	}
	if n := strings.Count(string(out), "2001:db8:2::7.999 > 2001:db8:3::2.443"); n != 5 {
		t.Errorf("tcpdump shows %d IPv6 packets from the attacker, want 5:\n%s", n, out)
	}
}

// TestSamplerRotates: files never grow past the limit and only Files of
// them are kept.
func TestSamplerRotates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "drops.pcapng")
	const maxBytes, files = 8192, 3
	s, err := NewSampler(SamplerConfig{Path: path, Rate: 1e6, Snaplen: 100, MaxBytes: maxBytes, Files: files, Slots: 8})
	if err != nil {
		t.Fatal(err)
	}
	stop := runSampler(t, s)
	pkt := tcpPacket(netip.MustParseAddr("198.18.2.7"), netip.MustParseAddr("198.18.3.2"), 999, 80, header.SYN|header.RST)
	now := t0
	const n = 1000
	for i := 0; i < n; {
		now = now.Add(time.Millisecond)
		before := s.Stats().RingFull
		s.Offer(pkt, Class(header.SynRst), now)
		if s.Stats().RingFull == before {
			i++
		} else {
			time.Sleep(time.Millisecond) // the writer is behind; try again
		}
	}
	stop()
	st := s.Stats()
	if st.Written != n || st.WriteErrors != 0 {
		t.Errorf("Stats() = %+v, want %d written without errors", st, n)
	}
	// Each packet takes 32+40 bytes, the headers about 1.6 KB: dozens of
	// rotations.
	if st.Rotations < 5 {
		t.Errorf("%d rotations, want many", st.Rotations)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	total := 0
	for _, e := range ents {
		names = append(names, e.Name())
		fi, _ := e.Info()
		if fi.Size() > maxBytes+4096 { // the writer's buffer may overshoot the check by one flush
			t.Errorf("%s is %d bytes, want <= %d", e.Name(), fi.Size(), maxBytes+4096)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", e.Name(), fi.Mode().Perm())
		}
		total += len(readPcapng(t, filepath.Join(dir, e.Name())))
	}
	want := []string{"drops.pcapng", "drops.pcapng.1", "drops.pcapng.2"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("files %v, want %v", names, want)
	}
	if total == 0 || total >= n {
		t.Errorf("the kept files hold %d packets, want some but fewer than %d (the oldest were rotated away)", total, n)
	}
}

// TestSamplerRate: the token bucket lets a second's worth through at once,
// then the rate.
func TestSamplerRate(t *testing.T) {
	s, err := NewSampler(SamplerConfig{Path: "unused", Rate: 50, Slots: 1000})
	if err != nil {
		t.Fatal(err)
	}
	pkt := make([]byte, 40)
	for range 500 {
		s.Offer(pkt, ClassBadCookie, t0)
	}
	for i := range 100 { // 1 s more at 100 offers per second
		s.Offer(pkt, ClassBadCookie, t0.Add(time.Duration(i+1)*10*time.Millisecond))
	}
	st := s.Stats()
	if q := st.Offered - st.Limited - st.RingFull; q != 100 || st.Offered != 600 {
		t.Errorf("Stats() = %+v: %d sampled, want 50 at once and 50 in the next second", st, q)
	}
}

func TestSamplerConfig(t *testing.T) {
	for _, c := range []SamplerConfig{
		{},
		{Path: "x", Rate: -1},
		{Path: "x", Rate: math.NaN()}, // would sample every packet
		{Path: "x", Snaplen: 10},
		{Path: "x", MaxBytes: 100},
		{Path: "x", Files: 5000},
	} {
		if _, err := NewSampler(c); err == nil {
			t.Errorf("NewSampler(%+v) = nil error, want one", c)
		}
	}
	s, err := NewSampler(SamplerConfig{Path: "x"})
	if err != nil {
		t.Fatal(err)
	}
	want := SamplerConfig{Path: "x", Rate: DefaultSampleRate, Snaplen: DefaultSnaplen, Slots: DefaultRingSlots, MaxBytes: DefaultMaxBytes, Files: DefaultFiles}
	if got := s.Config(); got != want {
		t.Errorf("Config() = %+v, want %+v", got, want)
	}
	bad, _ := NewSampler(SamplerConfig{Path: filepath.Join(t.TempDir(), "no", "such", "dir")})
	if err := bad.Run(context.Background()); err == nil {
		t.Error("Run with an impossible path = nil error, want one")
	}
}

// TestSamplerKeepsEarlierFile: the current file of an earlier run (a
// restart) is rotated to Path.1, not truncated.
func TestSamplerKeepsEarlierFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "drops.pcapng")
	if err := os.WriteFile(path, []byte("samples of the run before"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := NewSampler(SamplerConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	stop := runSampler(t, s)
	stop()
	if b, err := os.ReadFile(path + ".1"); string(b) != "samples of the run before" {
		t.Errorf("%s.1 = %q, %v; want the earlier file", path, b, err)
	}
	if got := readPcapng(t, path); len(got) != 0 {
		t.Errorf("new file holds %d packets, want none", len(got))
	}
}

// TestSamplerOpenFailureKeepsFiles: while the current file cannot be
// opened (a full disk, say), the writer retries in place once a second and
// does not rotate the kept files away packet after packet.
func TestSamplerOpenFailureKeepsFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "drops.pcapng")
	for i, text := range []string{"", "newest", "oldest"} {
		if i > 0 {
			if err := os.WriteFile(fileName(path, i), []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	clock := time.Unix(1000, 0)
	opens := 0
	f := &pcapFiles{
		cfg: SamplerConfig{Path: path, Snaplen: 64, MaxBytes: 1 << 20, Files: 3},
		openFile: func(string, int, os.FileMode) (*os.File, error) {
			opens++
			return nil, syscall.ENOSPC
		},
		now: func() time.Time { return clock },
	}
	s := &Sampler{}
	sl := &slot{when: clock, class: ClassBadCookie, orig: 40, n: 40, data: make([]byte, 64)}
	for range 50 { // 50 packets, 5 s
		if err := f.write(sl, s); err == nil {
			t.Fatal("write with no file = nil error")
		}
		clock = clock.Add(100 * time.Millisecond)
	}
	// The first failure rotated once (the oldest file went, as a rotation
	// does); after that only in-place retries, one a second.
	if b, err := os.ReadFile(fileName(path, 2)); err != nil || string(b) != "newest" {
		t.Errorf("%s = %q, %v; want the earlier newest file kept", fileName(path, 2), b, err)
	}
	if opens < 5 || opens > 7 {
		t.Errorf("%d open attempts in 5 s, want about one a second", opens)
	}
}
