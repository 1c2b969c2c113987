package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// SynwallConfig starts `synwall run` in the gateway namespace.
type SynwallConfig struct {
	Binary  string // path of the synwall binary (required)
	Policy  string // --policy; empty uses the embedded default (guards the server's subnets)
	Hook    string // --hook; default "forward"
	Queues  string // --queues; empty leaves the daemon's default
	Backend string // --backend; empty leaves the daemon's default
	Fail    string // --fail; default "closed"
	// StatsFile is --stats-file; empty puts one in a new temporary
	// directory that Stop removes.
	StatsFile string
	// Args are more flags, appended (later flags win). The SYN stage is
	// off unless they name --syn-stage-if.
	Args  []string
	Ready time.Duration // how long to wait for the stats file; default 15 s
}

// Synwall is a running daemon, a child process of this one.
type Synwall struct {
	StatsFile string

	cmd    *cmdProc
	tmpDir string
	once   sync.Once
}

// cmdProc holds the process and what it wrote on stderr.
type cmdProc struct {
	pid    int
	proc   *os.Process
	stderr syncBuffer
	done   chan struct{}
	err    error // valid after done
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 1<<20 { // keep the first MiB
		return len(p), nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ErrNotReady: synwall exited or did not write its stats file in time.
var ErrNotReady = errors.New("lab: synwall did not become ready")

// StartSynwall runs `synwall run` in the gateway namespace and waits until
// it is ready (its stats file appears). Down stops it.
func (l *Lab) StartSynwall(ctx context.Context, cfg SynwallConfig) (*Synwall, error) {
	if cfg.Binary == "" {
		return nil, errors.New("lab: StartSynwall: no binary")
	}
	bin, err := filepath.Abs(cfg.Binary)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("lab: synwall binary: %w", err)
	}
	s := &Synwall{StatsFile: cfg.StatsFile}
	if s.StatsFile == "" {
		s.tmpDir, err = os.MkdirTemp("", "synwall-lab-")
		if err != nil {
			return nil, err
		}
		s.StatsFile = filepath.Join(s.tmpDir, "stats.json")
	} else {
		os.Remove(s.StatsFile) // a stale file is no readiness signal
	}
	// No pid file unless cfg.Args names one (later flags win): the
	// default, /run/synwall/synwall.pid, belongs to the host's synwall.
	// No SYN stage unless cfg.Args names its interfaces: without
	// --syn-stage-if the daemon would attach it to the client-facing veths
	// it selects, and the tests of the NFQUEUE path would see it take
	// their SYNs and invalid segments.
	args := []string{"run", "--hook", or(cfg.Hook, "forward"), "--fail", or(cfg.Fail, "closed"), "--stats-file", s.StatsFile, "--pid-file", "", "--syn-stage-if", "none"}
	if cfg.Policy != "" {
		args = append(args, "--policy", cfg.Policy)
	}
	if cfg.Queues != "" {
		args = append(args, "--queues", cfg.Queues)
	}
	if cfg.Backend != "" {
		args = append(args, "--backend", cfg.Backend)
	}
	args = append(args, cfg.Args...)

	// Not tied to ctx: the daemon lives until Stop, Kill or Down.
	cmd := l.Cmd(context.Background(), l.Gateway, bin, args...)
	cmd.Cancel = nil
	cmd.WaitDelay = 0
	p := &cmdProc{done: make(chan struct{})}
	cmd.Stderr = &p.stderr
	cmd.Stdout = &p.stderr
	if err := cmd.Start(); err != nil {
		s.cleanup()
		return nil, fmt.Errorf("lab: start synwall: %w", err)
	}
	// `ip netns exec` execs the program: this PID is synwall's.
	p.pid, p.proc = cmd.Process.Pid, cmd.Process
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.cmd = p
	stopAtDown := func() error {
		select {
		case <-p.done: // already ended by the caller, who saw its status
			s.cleanup()
			return nil
		default:
			return s.Stop()
		}
	}
	if _, err := l.onDown(stopAtDown); err != nil {
		s.Kill()
		return nil, err
	}

	ready := cfg.Ready
	if ready <= 0 {
		ready = 15 * time.Second
	}
	if err := s.waitReady(ctx, ready); err != nil {
		s.Kill()
		return nil, err
	}
	return s, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (s *Synwall) waitReady(ctx context.Context, d time.Duration) error {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := s.Stats(); err == nil {
			return nil
		}
		select {
		case <-s.cmd.done:
			return fmt.Errorf("%w: it exited (%v) before writing %s; stderr:\n%s", ErrNotReady, s.cmd.err, s.StatsFile, s.Stderr())
		case <-deadline.C:
			return fmt.Errorf("%w: no stats file %s after %v; stderr:\n%s", ErrNotReady, s.StatsFile, d, s.Stderr())
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// PID is the daemon's process id.
func (s *Synwall) PID() int { return s.cmd.pid }

// Stderr returns what the daemon has written so far (stdout and stderr).
func (s *Synwall) Stderr() string { return s.cmd.stderr.String() }

// Done is closed when the daemon has exited.
func (s *Synwall) Done() <-chan struct{} { return s.cmd.done }

// ExitErr is the daemon's exit status (nil for 0); valid once Done is
// closed.
func (s *Synwall) ExitErr() error {
	<-s.cmd.done
	return s.cmd.err
}

// Stats reads the daemon's stats file.
func (s *Synwall) Stats() (Stats, error) { return ReadStats(s.StatsFile) }

// Stop sends SIGTERM and waits (10 s at most, then SIGKILL). It returns the
// exit status: nil after a clean shutdown. Calling it again returns the
// same.
func (s *Synwall) Stop() error {
	return s.end(syscall.SIGTERM, 10*time.Second)
}

// Kill sends SIGKILL and waits: the daemon leaves its firewall rules behind.
func (s *Synwall) Kill() error {
	return s.end(syscall.SIGKILL, 5*time.Second)
}

func (s *Synwall) end(sig syscall.Signal, wait time.Duration) error {
	select {
	case <-s.cmd.done:
	default:
		s.cmd.proc.Signal(sig)
		select {
		case <-s.cmd.done:
		case <-time.After(wait):
			s.cmd.proc.Kill()
			<-s.cmd.done
		}
	}
	s.cleanup()
	if s.cmd.err != nil {
		return fmt.Errorf("lab: synwall (pid %d) exited: %w; stderr:\n%s", s.cmd.pid, s.cmd.err, s.Stderr())
	}
	return nil
}

func (s *Synwall) cleanup() {
	s.once.Do(func() {
		if s.tmpDir != "" {
			os.RemoveAll(s.tmpDir)
		}
	})
}

// Stats is the daemon's stats file: counters by section. Unknown keys are
// kept; values that are not numbers are ignored.
type Stats struct {
	Events map[string]uint64
	Drops  map[string]uint64
	Queue  map[string]uint64
	// Other holds the numeric counters of any other section.
	Other map[string]map[string]uint64
}

// DropsTotal sums every drop reason.
func (s Stats) DropsTotal() uint64 {
	var n uint64
	for _, v := range s.Drops {
		n += v
	}
	return n
}

// ReadStats reads and decodes a stats file. A missing file is an error
// satisfying errors.Is(err, fs.ErrNotExist).
func ReadStats(path string) (Stats, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Stats{}, err
	}
	return ParseStats(b)
}

// ParseStats decodes the JSON of a stats file leniently.
func ParseStats(b []byte) (Stats, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return Stats{}, fmt.Errorf("lab: stats: %w", err)
	}
	st := Stats{Events: map[string]uint64{}, Drops: map[string]uint64{}, Queue: map[string]uint64{}, Other: map[string]map[string]uint64{}}
	for sec, msg := range raw {
		var m map[string]any
		if json.Unmarshal(msg, &m) != nil {
			continue // not an object of counters
		}
		dst := map[string]uint64{}
		for k, v := range m {
			if f, ok := v.(float64); ok && f >= 0 {
				dst[k] = uint64(f)
			}
		}
		switch sec {
		case "events":
			st.Events = dst
		case "drops":
			st.Drops = dst
		case "queue":
			st.Queue = dst
		default:
			st.Other[sec] = dst
		}
	}
	return st, nil
}
