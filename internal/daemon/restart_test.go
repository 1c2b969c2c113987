package daemon

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/synwall/synwall/internal/cookies"
	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway"
)

// restartEngine returns an engine with one established flow through the
// reload test's policy, the jar it uses, and the cookie of its SYN-ACK.
func restartEngine(t *testing.T, secret []byte) (*gateway.Engine, cookies.Config) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writePolicy(t, path, strings.Replace(reloadPolicy, "WINDOW", "65535", 1))
	p, err := LoadPolicy(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := cookies.Config{Period: p.Cookies.Period, Secret: secret}
	jar, err := cookies.New(cfg, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	eng, err := gateway.New(gateway.Config{Policy: p, Cookies: jar})
	if err != nil {
		t.Fatal(err)
	}
	w := eng.NewWorker()
	var r engine.Result
	w.Process(segment(t, false, "S", 100, 0, ""), engine.Meta{}, time.Now(), &r)
	if r.Event != engine.EventSynAnswered {
		t.Fatalf("SYN: %v, want syn_answered", r.Event)
	}
	sa := parseTCP(t, r.Inject[0])
	w.Process(segment(t, false, "A", 101, sa.seq+1, ""), engine.Meta{}, time.Now(), &r)
	if r.Event != engine.EventHandshake {
		t.Fatalf("ACK: %v, want handshake", r.Event)
	}
	w.Process(segment(t, true, "SA", 5000, 101, ""), engine.Meta{}, time.Now(), &r)
	if r.Event != engine.EventServerUp {
		t.Fatalf("server SYN-ACK: %v, want server_up", r.Event)
	}
	return eng, cfg
}

type tcpSeq struct{ seq uint32 }

// parseTCP reads the sequence number of an IPv4/TCP packet (20-byte IP
// header, as the engine builds them).
func parseTCP(t *testing.T, b []byte) tcpSeq {
	t.Helper()
	ihl := int(b[0]&0xf) * 4
	if len(b) < ihl+20 {
		t.Fatalf("short packet %x", b)
	}
	s := b[ihl+4:]
	return tcpSeq{uint32(s[0])<<24 | uint32(s[1])<<16 | uint32(s[2])<<8 | uint32(s[3])}
}

func testLogger(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, nil))
}

func TestStateFileRoundTrip(t *testing.T) {
	eng, cfg := restartEngine(t, nil)
	dir := filepath.Join(t.TempDir(), "state")
	path, size, err := saveState(dir, eng, time.Now())
	if err != nil {
		t.Fatalf("saveState: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != size {
		t.Errorf("state file mode %v size %d, want 0600 and %d", fi.Mode().Perm(), fi.Size(), size)
	}
	var log bytes.Buffer
	st := loadState(dir, time.Now(), testLogger(&log))
	if st == nil || st.Flows() != 1 {
		t.Fatalf("loadState = %v, want one flow; log:\n%s", st, log.String())
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("state file after loadState: %v, want removed", err)
	}
	jar, err := restoredJar(cfg, st, time.Now(), testLogger(&log))
	if err != nil || jar.Keys() != eng.Jar().Keys() {
		t.Errorf("restoredJar = keys equal %v, %v; want the saved keys", err == nil && jar.Keys() == eng.Jar().Keys(), err)
	}
	if got := loadState(dir, time.Now(), testLogger(&log)); got != nil {
		t.Errorf("second loadState = %v, want nil (the file is used once)", got)
	}
	if log.Len() != 0 {
		t.Errorf("log of a good restore and a missing file:\n%s\nwant nothing", log.String())
	}
}

func TestStateFileRefused(t *testing.T) {
	eng, _ := restartEngine(t, nil)
	for _, tc := range []struct {
		name string
		edit func(path string)
		want string
	}{
		{"truncated", func(p string) { os.Truncate(p, 40) }, "truncated"},
		{"corrupt", func(p string) {
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 0xff
			os.WriteFile(p, b, 0o600)
		}, "checksum"},
		{"not a state file", func(p string) { os.WriteFile(p, []byte("hello, world, this is not it at all, no"), 0o600) }, "not a synwall state file"},
		{"readable by others", func(p string) { os.Chmod(p, 0o644) }, "group or others"},
		// A good state file elsewhere, reached through a symlink.
		{"a symlink", func(p string) {
			real := filepath.Join(filepath.Dir(filepath.Dir(p)), "elsewhere")
			os.Rename(p, real)
			os.Symlink(real, p)
		}, "symbolic links"},
		// A FIFO must not block the start; should a reader block on it, a
		// writer comes after 2 s with something else.
		{"a FIFO", func(p string) {
			os.Remove(p)
			syscall.Mkfifo(p, 0o600)
			time.AfterFunc(2*time.Second, func() {
				if w, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					w.Write([]byte("written into the FIFO meanwhile"))
					w.Close()
				}
			})
		}, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path, _, err := saveState(dir, eng, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			tc.edit(path)
			var log bytes.Buffer
			if st := loadState(dir, time.Now(), testLogger(&log)); st != nil {
				t.Errorf("loadState = %v, want refused", st)
			}
			if !strings.Contains(log.String(), "state file refused; starting fresh") || !strings.Contains(log.String(), tc.want) {
				t.Errorf("log = %q, want a refusal naming %q", log.String(), tc.want)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("refused state file: %v, want removed", err)
			}
		})
	}
	t.Run("owned by another user", func(t *testing.T) {
		dir := t.TempDir()
		path, _, err := saveState(dir, eng, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(path, os.Geteuid()+1, -1); err != nil {
			t.Skipf("chown to another user: %v", err)
		}
		var log bytes.Buffer
		if st := loadState(dir, time.Now(), testLogger(&log)); st != nil || !strings.Contains(log.String(), "another user") {
			t.Errorf("loadState of a file of another user = %v, log %q; want refused", st, log.String())
		}
	})
	t.Run("too old", func(t *testing.T) {
		dir := t.TempDir()
		if _, _, err := saveState(dir, eng, time.Now().Add(-gateway.MaxStateAge-time.Minute)); err != nil {
			t.Fatal(err)
		}
		var log bytes.Buffer
		if st := loadState(dir, time.Now(), testLogger(&log)); st != nil || !strings.Contains(log.String(), "too old") {
			t.Errorf("loadState of an old file = %v, log %q; want refused as too old", st, log.String())
		}
	})
}

// TestRestoredJarOtherSecret: keys saved under one shared secret are not
// taken by a daemon configured with another; it starts with its own.
func TestRestoredJarOtherSecret(t *testing.T) {
	eng, _ := restartEngine(t, []byte("the-first-shared-secret-0123456789"))
	var buf bytes.Buffer
	if err := eng.SaveState(&buf, time.Now()); err != nil {
		t.Fatal(err)
	}
	st, err := gateway.ReadState(&buf, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	other := cookies.Config{Period: eng.Jar().Period(), Secret: []byte("another-shared-secret-9876543210")}
	var log bytes.Buffer
	jar, err := restoredJar(other, st, time.Now(), testLogger(&log))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := cookies.New(other, time.Now())
	if jar.Keys() != want.Keys() || !strings.Contains(log.String(), "saved cookie keys not used") {
		t.Errorf("restoredJar with another secret: keys of the configured secret %v, log %q; want them, and a warning", jar.Keys() == want.Keys(), log.String())
	}
}

// TestSaveForRestartNoStateDir: without a state directory a graceful
// restart still re-executes (the next process starts fresh) rather than
// stopping the daemon and removing its rules.
func TestSaveForRestartNoStateDir(t *testing.T) {
	d, _ := metricsDaemon(t)
	d.restarting.Store(true)
	if err := d.saveForRestart(); !errors.Is(err, ErrRestart) || !d.restarting.Load() {
		t.Errorf("saveForRestart with --state-dir \"\" = %v, restarting %v; want ErrRestart, still restarting", err, d.restarting.Load())
	}
	dir := filepath.Join(t.TempDir(), "state")
	d.cfg.StateDir = dir
	if err := d.saveForRestart(); !errors.Is(err, ErrRestart) {
		t.Errorf("saveForRestart(%s) = %v, want ErrRestart", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, stateFileName)); err != nil {
		t.Errorf("state file: %v", err)
	}
}
