package policy

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDiff(t *testing.T) {
	a, err := Parse("a.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if d := Diff(a, a); len(d) != 0 {
		t.Errorf("Diff(a, a) = %q, want nothing", d)
	}
	changed := strings.Replace(base, "mss: 1460", "mss: 1400", 1) + `  - name: ssh
    addresses: [198.18.3.9/32]
    ports: [22]
tables: {flows: 1Mi, idle_timeout: 1m}
queue: {numbers: "0-5", syn_queues: 2}
`
	b, err := Parse("b.yaml", []byte(changed))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"tables.flows: 262144 -> 1048576 (needs restart)",
		"tables.idle_timeout: 10m -> 1m",
		"queue.numbers: [0 1 2 3] -> [0 1 2 3 4 5] (needs restart)",
		`service "web" advertise: {MSS4:1460 MSS6:1440 WScale:7 SACK:true Timestamps:true ECN:false Window:65535 Discover:false} -> {MSS4:1400 MSS6:1380 WScale:7 SACK:true Timestamps:true ECN:false Window:65535 Discover:false}`,
		`service "ssh" added`,
	}
	if d := cmp.Diff(want, Diff(a, b)); d != "" {
		t.Errorf("Diff mismatch (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{`service "ssh" removed`}, Diff(b, a)[3:4]); d != "" {
		t.Errorf("Diff(b, a) mismatch (-want +got):\n%s", d)
	}
	wantRestart := []string{want[0], want[2]}
	if d := cmp.Diff(wantRestart, NeedsRestart(a, b)); d != "" {
		t.Errorf("NeedsRestart mismatch (-want +got):\n%s", d)
	}
}
