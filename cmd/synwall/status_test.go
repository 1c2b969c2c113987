package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/synwall/synwall/internal/daemon"
)

// serveStatus serves testdata/status.json (a document of the daemon's
// TestControlSocket: a SYN flood from 198.18.1.0/24 and SYN+FIN packets) on
// a unix socket, as the daemon's control socket does.
func serveStatus(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile("testdata/status.json")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "control.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) { w.Write(doc) })
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock
}

// TestStatus: synwall status decodes the daemon's document and prints it as
// JSON, as the human view, and redrawn with --watch.
func TestStatus(t *testing.T) {
	sock := serveStatus(t)
	var out, errb bytes.Buffer
	if code := cmdStatus(context.Background(), []string{"--socket", sock, "--json"}, &out, &errb); code != exitOK {
		t.Fatalf("status --json = %d: %s", code, errb.String())
	}
	var back daemon.Status
	if err := json.Unmarshal(out.Bytes(), &back); err != nil || back.Window.Answered.Count != 200 || back.Version != daemon.StatusVersion {
		t.Errorf("status --json output does not decode to the document (%v): %s", err, out.String())
	}
	out.Reset()
	if code := cmdStatus(context.Background(), []string{"--socket", sock}, &out, &errb); code != exitOK {
		t.Fatalf("status = %d: %s", code, errb.String())
	}
	for _, want := range []string{"backend raw, queues 3-4, fail closed", "198.18.3.2:80", "198.18.1.0/24", "syn_fin", "SYN cache 200/"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, out.String())
		}
	}
	// --watch redraws until interrupted.
	wctx, wcancel := context.WithTimeout(context.Background(), 350*time.Millisecond)
	defer wcancel()
	out.Reset()
	if code := cmdStatus(wctx, []string{"--socket", sock, "--watch", "100ms"}, &out, &errb); code != exitOK {
		t.Fatalf("status --watch = %d: %s", code, errb.String())
	}
	if n := strings.Count(out.String(), "\033[H\033[2J"); n < 2 {
		t.Errorf("--watch drew %d times in 350ms at 100ms, want several", n)
	}
}

func TestStatusNotRunning(t *testing.T) {
	var out, errb bytes.Buffer
	sock := filepath.Join(t.TempDir(), "none.sock")
	if code := cmdStatus(context.Background(), []string{"--socket", sock}, &out, &errb); code != exitSetup {
		t.Errorf("status without a daemon = %d, want %d", code, exitSetup)
	}
	if !strings.Contains(errb.String(), "not running") {
		t.Errorf("stderr = %q, want it to say the daemon is not running", errb.String())
	}
	for _, args := range [][]string{{"--watch", "x"}, {"extra"}, {"--watch=10ms"}} {
		if code := cmdStatus(context.Background(), args, &out, &errb); code != exitUsage {
			t.Errorf("status %v = %d, want %d", args, code, exitUsage)
		}
	}
	if code := cmdStatus(context.Background(), []string{"-h"}, &out, &errb); code != exitOK {
		t.Errorf("status -h = %d, want 0", code)
	}
}
