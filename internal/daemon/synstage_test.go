package daemon

import (
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/synwall/synwall/internal/synstage"
)

func TestParseSynStageMode(t *testing.T) {
	for _, s := range []string{"auto", "tc", "xdp", "off"} {
		if got, err := ParseSynStageMode(s); err != nil || got != s {
			t.Errorf("ParseSynStageMode(%q) = %q, %v, want %q", s, got, err, s)
		}
	}
	for _, s := range []string{"", "tcx", "on", "XDP"} {
		if _, err := ParseSynStageMode(s); err == nil {
			t.Errorf("ParseSynStageMode(%q) succeeded", s)
		}
	}
}

// TestSynStageOff checks the modes that leave SYNs to NFQUEUE alone and
// say why in the status and metrics: off, auto without interfaces, and a
// strict mode without interfaces refused.
func TestSynStageOff(t *testing.T) {
	tests := []struct {
		name   string
		cfg    SynStageConfig
		reason string
	}{
		{"zero", SynStageConfig{}, "off (--syn-stage off)"},
		{"off", SynStageConfig{Mode: "off", Interfaces: []string{"eth0"}}, "off (--syn-stage off)"},
		{"auto without interfaces", SynStageConfig{Mode: "auto"}, "off: no client-facing interfaces given (--syn-stage-if)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig("")
			cfg.SynStage = tc.cfg
			d := testDaemon(t, cfg)
			st := d.status(d.now())
			if st.SynStage.Mode != "off" || st.SynStage.Reason != tc.reason {
				t.Errorf("status syn_stage = %+v, want off with reason %q", st.SynStage, tc.reason)
			}
			if got, ok := series(t, d.cfg.Registry)["synwall_syn_stage_up{mode=off}"]; !ok || got != 0 {
				t.Errorf("synwall_syn_stage_up{mode=off} = %v (present %v), want 0", got, ok)
			}
		})
	}
	cfg := testConfig("")
	cfg.SynStage = SynStageConfig{Mode: "tc"}
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "no interfaces") {
		t.Errorf("New with --syn-stage tc and no interfaces = %v, want an error", err)
	}
}

// TestSynStageAutoFallback loads the stage (root) and fails to attach it to
// an interface that does not exist: in auto mode the daemon goes on with
// NFQUEUE alone and says why; in tc mode attaching is an error.
func TestSynStageAutoFallback(t *testing.T) {
	if _, err := synstage.Load(synstage.Options{}); errors.Is(err, unix.EPERM) || errors.Is(err, os.ErrPermission) {
		t.Skipf("loading BPF needs root: %v", err)
	} else if err != nil {
		t.Fatalf("synstage.Load: %v", err)
	}
	cfg := testConfig("")
	cfg.SynStage = SynStageConfig{Mode: "auto", Interfaces: []string{"nosuch-syn0"}}
	d := testDaemon(t, cfg)
	if mode, _ := d.syn.describe(); mode != "tc" {
		t.Fatalf("after New the stage is %q, want tc (loaded)", mode)
	}
	if c := d.engine.Capacity(); c.CacheCapacity == 0 {
		t.Fatal("engine without a SYN cache")
	}
	if err := d.syn.attach(); err != nil {
		t.Fatalf("attach in auto mode: %v", err)
	}
	st := d.status(d.now())
	if st.SynStage.Mode != "off" || !strings.Contains(st.SynStage.Reason, "nosuch-syn0") {
		t.Errorf("status syn_stage = %+v, want off naming the interface", st.SynStage)
	}

	cfg.SynStage.Mode = "tc"
	d = testDaemon(t, cfg)
	defer d.closeStage()
	if err := d.syn.attach(); !errors.Is(err, synstage.ErrUnavailable) {
		t.Errorf("attach in tc mode = %v, want ErrUnavailable", err)
	}
}
