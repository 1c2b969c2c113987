//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package synstage

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// loadStage loads the stage or skips the test when the process may not
// load BPF programs.
func loadStage(tb testing.TB) *Stage {
	tb.Helper()
	s, err := Load(Options{})
	if errors.Is(err, unix.EPERM) || errors.Is(err, os.ErrPermission) {
		tb.Skipf("loading BPF needs CAP_BPF and CAP_NET_ADMIN (run the tests as root): %v", err)
	}
	if err != nil {
		tb.Fatalf("Load: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestLoad(t *testing.T) {
	loadStage(t)
}
