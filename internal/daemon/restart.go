package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/synwall/synwall/internal/cookies"
	"github.com/synwall/synwall/internal/gateway"
	"github.com/synwall/synwall/internal/queue"
)

// Graceful restart (synwall restart, or SIGUSR2 to the daemon):
//
//  1. The daemon stops its queue workers: each verdicts every packet it
//     has read (in arrival order) and unbinds its queue. Packets the
//     kernel still holds are then dropped (fail-closed; TCP retransmits
//     them) or, for new ones meeting no bound queue, passed (fail-open,
//     --queue-bypass).
//  2. It writes its cookie keys and flow table to STATE-DIR/state (0600,
//     via a temporary file and a rename; see gateway.Engine.SaveState) and leaves
//     its firewall rules and pid file in place.
//  3. It re-executes /proc/self/exe with the same arguments and
//     environment: the same PID, so systemd and the pid file stay right,
//     and the binary now on disk, so an upgrade takes effect.
//     With the raw backend (and --handoff, the default) the queues are not
//     unbound: the workers send the verdicts of what they read and leave
//     their netlink sockets bound and open; the sockets survive the execve
//     (close-on-exec cleared, numbers in $SYNWALL_QUEUE_FDS) and the new
//     process reads on from them. Packets arriving meanwhile wait in the
//     kernel queue (up to its length; beyond, the fail mode applies).
//     The BPF SYN stage is handed over the same way (synstage.HandoverEnv):
//     it stays attached and answers SYNs with the same keys throughout,
//     and the new process adopts its program, maps and SYN cache.
//  4. The new process reads the state file (refusing, with a log line, one
//     that is corrupt, truncated, of another version or older than
//     gateway.MaxStateAge, and then starting fresh), removes it, builds its
//     cookie jar from the saved keys and restores the flows, binds the
//     queues and installs its rules over the old ones (one atomic
//     iptables-restore per family: never duplicated, never missing).

// RestartSignal asks the daemon for a graceful restart.
const RestartSignal = syscall.SIGUSR2

// stateFileName is the state file's name in the state directory.
const stateFileName = "state"

// ErrRestart is returned by Run when it stopped for a graceful restart and
// saved its state: the caller calls Reexec.
var ErrRestart = errors.New("graceful restart")

// saveState writes the engine's state to dir/state, atomically, mode 0600.
func saveState(dir string, eng *gateway.Engine, now time.Time) (path string, size int64, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", 0, fmt.Errorf("state directory: %w", err)
	}
	f, err := os.CreateTemp(dir, stateFileName+".tmp*")
	if err != nil {
		return "", 0, fmt.Errorf("state file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return "", 0, fmt.Errorf("state file: %w", err)
	}
	if err = eng.SaveState(f, now); err != nil {
		return "", 0, fmt.Errorf("state file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		return "", 0, fmt.Errorf("state file: %w", err)
	}
	if err = f.Close(); err != nil {
		return "", 0, fmt.Errorf("state file: %w", err)
	}
	path = filepath.Join(dir, stateFileName)
	if err = os.Rename(f.Name(), path); err != nil {
		return "", 0, fmt.Errorf("state file: %w", err)
	}
	return path, fi.Size(), nil
}

// loadState reads dir/state if there is one and removes it whatever its
// content: a state file is used once. A missing file is nil without a log
// line; a file that cannot be used (among others a symlink, a FIFO or
// another non-regular file, one owned by another user or readable by
// others) is nil with an error log line saying why, and the daemon starts
// fresh.
func loadState(dir string, now time.Time, log *slog.Logger) *gateway.State {
	if dir == "" {
		return nil
	}
	path := filepath.Join(dir, stateFileName)
	// Not through a symlink, and without blocking on a FIFO: only a
	// regular file this user wrote is taken.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	defer func() {
		if f != nil {
			f.Close()
		}
		if err := os.Remove(path); err != nil {
			log.Warn("removing the state file", "file", path, "err", err)
		}
	}()
	if err != nil {
		log.Error("state file refused; starting fresh", "file", path, "err", err)
		return nil
	}
	fi, err := f.Stat()
	if err == nil {
		switch st, _ := fi.Sys().(*syscall.Stat_t); {
		case !fi.Mode().IsRegular():
			err = fmt.Errorf("not a regular file (%v)", fi.Mode().Type())
		case fi.Mode().Perm()&0o077 != 0:
			err = fmt.Errorf("mode %04o lets group or others access it; synwall writes 0600", fi.Mode().Perm())
		case st == nil || st.Uid != uint32(os.Geteuid()):
			err = errors.New("owned by another user than the one synwall runs as")
		}
	}
	if err != nil {
		log.Error("state file refused; starting fresh", "file", path, "err", err)
		return nil
	}
	st, err := gateway.ReadState(f, now)
	if err != nil {
		log.Error("state file refused; starting fresh", "file", path, "err", err)
		return nil
	}
	return st
}

// restoredJar builds the cookie jar from the saved keys when they fit the
// configuration, else a fresh one (with a log line).
func restoredJar(cfg cookies.Config, st *gateway.State, now time.Time, log *slog.Logger) (*cookies.Jar, error) {
	if st != nil {
		jar, err := cookies.NewFromKeys(cfg, st.Keys, now)
		if err == nil {
			return jar, nil
		}
		log.Warn("saved cookie keys not used; SYN-ACKs sent before the restart will be refused", "err", err)
	}
	return cookies.New(cfg, now)
}

// Reexec replaces the process by the binary now on disk with the same
// arguments and environment, plus the entries naming what is handed over
// (queue sockets, the BPF SYN stage). Called after Run returned
// ErrRestart; it returns only on failure.
func (d *Daemon) Reexec() error {
	return reexec(d.handoffEnv(), d.stageHandoverEnv())
}

// reexec replaces the process by the binary at /proc/self/exe with the same
// arguments and environment, plus extra entries. It returns only on failure.
func reexec(extra ...string) error {
	exe, err := os.Executable()
	if err != nil {
		exe = "/proc/self/exe"
	}
	// /proc/self/exe names the file that is running even when it was
	// replaced on disk; exec the path so that the new binary runs.
	exe = strings.TrimSuffix(exe, " (deleted)")
	env := os.Environ()
	for _, e := range extra {
		if e != "" {
			env = append(env, e)
		}
	}
	return syscall.Exec(exe, os.Args, env)
}

// saveForRestart writes the state file once the queues are unbound (none
// without a state directory: the next process starts fresh). On failure
// the daemon stops as on SIGTERM (rules removed) rather than re-executing
// without its flows.
func (d *Daemon) saveForRestart() error {
	if d.cfg.StateDir == "" {
		// --state-dir "" disables restoring, not the restart itself.
		d.log.Warn("graceful restart without --state-dir: cookie keys and flows are not handed over")
		return ErrRestart
	}
	now := time.Now()
	path, size, err := saveState(d.cfg.StateDir, d.engine, now)
	if err != nil {
		d.restarting.Store(false)
		return fmt.Errorf("graceful restart: %w", err)
	}
	d.log.Info("state saved", "file", path, "bytes", size, "flows", d.engine.Stats().FlowsActive)
	return ErrRestart
}

// setupHandoff decides whether this process hands its queue sockets over
// on a graceful restart, and adopts those handed over by the previous one
// (inherited, or herr when they could not be used).
func (d *Daemon) setupHandoff(inherited *queue.Handoff, herr error) {
	if herr != nil {
		d.log.Warn("handed-over queue sockets not used; binding the queues afresh", "err", herr)
	}
	use := d.cfg.Handoff && d.qcfg.Backend == queue.BackendRaw
	if !use {
		if n := inherited.CloseExcept(nil); n > 0 {
			d.log.Info("handed-over queue sockets closed (handoff off or another backend)", "sockets", n)
		}
		return
	}
	if inherited == nil {
		inherited = &queue.Handoff{}
	}
	if n := inherited.CloseExcept(d.qcfg.Queues); n > 0 {
		d.log.Info("handed-over sockets of queues no longer configured closed", "sockets", n)
	}
	d.qcfg.Handoff = inherited
}

// handoffEnv returns the environment entry naming the queue sockets for the
// next process, "" when none are handed over.
func (d *Daemon) handoffEnv() string {
	if d.qcfg.Handoff == nil {
		return ""
	}
	env, err := d.qcfg.Handoff.Env()
	if err != nil {
		d.log.Warn("queue sockets not handed over; the next process binds afresh", "err", err)
		return ""
	}
	return env
}

// logRestartDone logs, after a graceful restart, how long the queues were
// without a reader: unbound (the fail mode applied) or, when the sockets
// were handed over, only paused (packets waited in the kernel queue).
func (d *Daemon) logRestartDone(bound time.Time) {
	st := d.restoring
	if st == nil {
		return
	}
	gap := bound.Sub(st.Saved).Round(time.Microsecond)
	handed := 0
	if h := d.qcfg.Handoff; h != nil {
		handed = len(h.Inherited)
	}
	if handed > 0 && handed == len(d.qcfg.Queues) {
		d.log.Info("graceful restart done", "queues_handed_over", handed, "queues_unbound_for", time.Duration(0),
			"queues_paused_for", gap, "rules_replaced_after", time.Since(st.Saved).Round(time.Microsecond))
		return
	}
	d.log.Info("graceful restart done", "queues_handed_over", handed, "queues_unbound_for", gap,
		"rules_replaced_after", time.Since(st.Saved).Round(time.Microsecond))
}
