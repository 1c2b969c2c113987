package host

import (
	"context"
	"flag"
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
	got := CommandLine("./bench/x", fs)
	want := `go run ./bench/x -args="--fail open" -out="" -rate=5 -short`
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
