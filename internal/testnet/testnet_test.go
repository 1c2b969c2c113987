package testnet

import (
	"errors"
	"fmt"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeTB records what SkipIfNoPrivilege did.
type fakeTB struct{ skipped, failed bool }

func (f *fakeTB) Helper()               {}
func (f *fakeTB) Skipf(string, ...any)  { f.skipped = true }
func (f *fakeTB) Fatal(...any)          { f.failed = true }
func (f *fakeTB) Fatalf(string, ...any) { f.failed = true }

func TestSkipIfNoPrivilege(t *testing.T) {
	for _, tt := range []struct {
		name       string
		err        error
		ci         string
		skip, fail bool
	}{
		{"nil", nil, "", false, false},
		{"EPERM", fmt.Errorf("ip netns add: %w", unix.EPERM), "true", true, false},
		{"not permitted text", errors.New("RTNETLINK answers: Operation not permitted"), "true", true, false},
		{"missing tool", fmt.Errorf("x: %w", exec.ErrNotFound), "", true, false},
		{"missing tool in CI", fmt.Errorf("x: %w", exec.ErrNotFound), "true", false, true},
		{"other", errors.New("boom"), "", false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			var f fakeTB
			SkipIfNoPrivilege(&f, tt.err)
			if f.skipped != tt.skip || f.failed != tt.fail {
				t.Errorf("SkipIfNoPrivilege(%v) with CI=%q: skipped %v failed %v, want %v %v", tt.err, tt.ci, f.skipped, f.failed, tt.skip, tt.fail)
			}
		})
	}
	if err := Run("true"); err != nil {
		t.Errorf("Run(true) = %v", err)
	}
	if err := Run("false"); err == nil {
		t.Errorf("Run(false) = nil, want an error")
	}
}
