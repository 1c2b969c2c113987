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
func loadStage(tb testing.TB, opts ...Options) *Stage {
	tb.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	s, err := Load(o)
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

// TestLoadSizes loads the program with the table sizes it is given in
// several combinations (the verifier sees each map's size), and refuses a
// SYN cache bucket larger than it walks.
func TestLoadSizes(t *testing.T) {
	loadStage(t)
	for _, flows := range []int{64, 65536, 262144, 1 << 22} {
		for _, c := range [][2]int{{512, 30}, {1, 4}, {4096, maxCachePer}, {1 << 16, 1}} {
			s, err := Load(Options{Flows: flows, CacheBuckets: c[0], CacheEntries: c[1]})
			if err != nil {
				t.Errorf("Load(flows %d, cache %d×%d): %v", flows, c[0], c[1], err)
				continue
			}
			s.Close()
		}
	}
	if _, err := Load(Options{CacheEntries: maxCachePer + 1}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Load with %d entries per bucket = %v, want ErrUnavailable", maxCachePer+1, err)
	}
}
