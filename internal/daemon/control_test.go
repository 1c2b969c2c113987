package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestControlSocket: the status over the socket names the flood's prefix
// and service; the socket is 0660 in a 0750 directory, a second daemon
// cannot take it, a stale one is replaced, and it is gone after the stop.
func TestControlSocket(t *testing.T) {
	d := opsDaemon(t, PcapConfig{})
	sock := filepath.Join(t.TempDir(), "run", "synwall", "control.sock")
	ln, err := listenControl(sock)
	if err != nil {
		t.Fatalf("listenControl: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveControl(ctx, ln, d) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serveControl: %v", err)
		}
		if _, err := os.Lstat(sock); !os.IsNotExist(err) {
			t.Errorf("socket after stop: %v, want gone", err)
		}
	}()
	for path, want := range map[string]os.FileMode{sock: 0o660, filepath.Dir(sock): 0o750} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
	if _, err := listenControl(sock); err == nil || !strings.Contains(err.Error(), "another synwall") {
		t.Errorf("second listenControl = %v, want another synwall is serving it", err)
	}

	doc, err := FetchStatus(context.Background(), sock)
	if err != nil {
		t.Fatalf("fetchStatus: %v", err)
	}
	if doc.Version != 1 || doc.Mode.Queues != "3-4" || doc.Mode.Backend != "raw" || doc.Mode.Services != 1 || doc.Uptime < 59 {
		t.Errorf("status mode = %+v (version %d, uptime %v), want raw, queues 3-4, 1 service, up a minute", doc.Mode, doc.Version, doc.Uptime)
	}
	w := doc.Window
	if w.Answered.Count != 200 || len(w.Top.PrefixesAnswered) == 0 || w.Top.PrefixesAnswered[0].Prefix != netip.MustParsePrefix("198.18.1.0/24") {
		t.Errorf("window = %+v, want 200 SYNs answered from 198.18.1.0/24", w)
	}
	if len(w.Top.ServicesAnswered) == 0 || w.Top.ServicesAnswered[0].Service != netip.MustParseAddrPort("198.18.3.2:80") {
		t.Errorf("top services = %+v, want 198.18.3.2:80", w.Top.ServicesAnswered)
	}
	if len(w.Classes) != 1 || w.Classes[0].Class != "syn_fin" || w.Classes[0].Count != 30 || w.Classes[0].Sources.Value != 1 {
		t.Errorf("drops = %+v, want syn_fin 30 from 1 source", w.Classes)
	}
	if doc.Capacity.SynCache.Used != 200 || doc.Capacity.SynCache.Capacity == 0 || doc.Capacity.Flows.Capacity == 0 {
		t.Errorf("capacity = %+v, want 200 cache entries used", doc.Capacity)
	}

	// SYNWALL_DUMP_STATUS=FILE writes the document, as
	// cmd/synwall/testdata/status.json was made (the policy path edited).
	if dump := os.Getenv("SYNWALL_DUMP_STATUS"); dump != "" {
		b, _ := json.MarshalIndent(doc, "", "  ")
		os.WriteFile(dump, b, 0o644)
	}
}

func TestControlSocketStale(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "control.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // a socket file nobody serves: a daemon that died
	ln, err = listenControl(sock)
	if err != nil {
		t.Fatalf("listenControl over a stale socket: %v", err)
	}
	ln.Close()
	if err := os.WriteFile(sock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := listenControl(sock); err == nil {
		t.Error("listenControl over a regular file = nil error, want one")
	}
}

// TestFetchStatusNotRunning: no socket, or a socket nobody serves, is
// ErrNotRunning (synwall status exits 3 on it).
func TestFetchStatusNotRunning(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	for _, sock := range []string{filepath.Join(dir, "none.sock"), stale} {
		if _, err := FetchStatus(context.Background(), sock); !errors.Is(err, ErrNotRunning) {
			t.Errorf("FetchStatus(%s) = %v, want ErrNotRunning", sock, err)
		}
	}
}
