package main

import (
	"flag"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/synwall/synwall/internal/daemon"
)

// TestSynStageIfFlag: --syn-stage-if left empty selects the client-facing
// interfaces, none or off names none, a list names them.
func TestSynStageIfFlag(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		args     []string
		want     daemon.SynStageConfig
		wantFail bool
	}{
		{args: nil, want: daemon.SynStageConfig{Mode: "auto", Auto: true}},
		{args: []string{"--syn-stage", "tc"}, want: daemon.SynStageConfig{Mode: "tc", Auto: true}},
		{args: []string{"--syn-stage-if", "none"}, want: daemon.SynStageConfig{Mode: "auto"}},
		{args: []string{"--syn-stage-if", "off"}, want: daemon.SynStageConfig{Mode: "auto"}},
		{args: []string{"--syn-stage-if", "cli0,atk0"}, want: daemon.SynStageConfig{Mode: "auto", Interfaces: []string{"cli0", "atk0"}}},
		{args: []string{"--syn-stage-if", "cli0,none"}, wantFail: true},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var f runFlags
			fs := flag.NewFlagSet("run", flag.ContinueOnError)
			f.register(fs, true)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			cfg, err := f.config(log)
			if tc.wantFail {
				if err == nil {
					t.Errorf("config(%q) = %+v, want an error", tc.args, cfg.SynStage)
				}
				return
			}
			if err != nil {
				t.Fatalf("config(%q): %v", tc.args, err)
			}
			if d := cmp.Diff(tc.want, cfg.SynStage); d != "" {
				t.Errorf("config(%q).SynStage (-want +got):\n%s", tc.args, d)
			}
		})
	}
	_, _, stderr := run("run", "-h")
	if want := "none (or off) for no interface"; !strings.Contains(stderr, want) {
		t.Errorf("synwall run -h does not describe --syn-stage-if none:\n%s", stderr)
	}
}
