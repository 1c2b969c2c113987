package daemon

import (
	"io"
	"log/slog"
	"testing"

	"github.com/synwall/synwall/internal/firewall"
	"github.com/synwall/synwall/internal/queue"
)

// testConfig is what synwall run --policy path --hook forward --backend raw
// --mark 0x5359 gives the daemon, without state dir, pid file, control
// socket or metrics address.
func testConfig(path string) Config {
	return Config{
		PolicyFile: path,
		Traffic:    Traffic{Hooks: []firewall.Hook{firewall.HookForward}, Mark: 0x5359},
		Backend:    queue.BackendRaw,
		Log:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		Version:    "test",
	}
}

// testDaemon builds a daemon the way synwall run does, without binding
// queues.
func testDaemon(t testing.TB, cfg Config) *Daemon {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}
