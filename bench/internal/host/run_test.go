package host

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestCommandLine(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.Bool("short", false, "")
	fs.Int("rate", 1, "")
	fs.String("args", "", "")
	fs.String("out", "", "")
	if err := fs.Parse([]string{"-short", "-rate", "5", "-args", "--fail open", "-out="}); err != nil {
		t.Fatal(err)
	}
	got := CommandLine("./x", fs)
	want := `go run ./x -args="--fail open" -out="" -rate=5 -short`
	if got != want {
		t.Errorf("CommandLine = %s, want %s", got, want)
	}
}

func TestSleepCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); err != context.Canceled {
		t.Errorf("Sleep(cancelled, 1h) = %v, want context.Canceled", err)
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Errorf("Sleep(1ms) = %v, want nil", err)
	}
}

// TestModuleDir: inside the bench module, the root module resolves to the
// checkout around bench/, which holds cmd/synwall.
func TestModuleDir(t *testing.T) {
	dir, err := ModuleDir(context.Background(), RootModule)
	if err != nil {
		t.Fatal(err)
	}
	want, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	if dir != want {
		t.Errorf("ModuleDir(%s) = %s, want %s", RootModule, dir, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "cmd", "synwall")); err != nil {
		t.Errorf("ModuleDir(%s) = %s without cmd/synwall: %v", RootModule, dir, err)
	}
	if _, err := ModuleDir(context.Background(), "example.com/not/required"); err == nil {
		t.Errorf("ModuleDir(example.com/not/required) = nil error, want one")
	}
}
