package policy

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var cmpPolicy = []cmp.Option{
	cmpopts.IgnoreUnexported(Policy{}),
	cmpopts.IgnoreFields(Policy{}, "Name"),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmpopts.EquateEmpty(),
}

// roundTrip formats p, parses the output and checks the result equals p.
func roundTrip(t *testing.T, p *Policy) {
	t.Helper()
	var buf bytes.Buffer
	if err := p.Format(&buf); err != nil {
		t.Fatalf("Format: %v", err)
	}
	q, err := Parse("formatted", buf.Bytes())
	if err != nil {
		t.Fatalf("Parse(Format(p)): %v\n%s", err, buf.String())
	}
	if d := cmp.Diff(p, q, cmpPolicy...); d != "" {
		t.Errorf("Parse(Format(p)) differs from p (-want +got):\n%s\n%s", d, buf.String())
	}
}

func TestDefault(t *testing.T) {
	p, err := Default()
	if err != nil {
		t.Fatalf("Default() error: %v", err)
	}
	if len(p.Services) != 1 {
		t.Fatalf("Default() has %d services, want 1", len(p.Services))
	}
	s := p.Services[0]
	want := Advertise{MSS4: 1460, MSS6: 1440, WScale: labWScale, SACK: true, Timestamps: true, Window: 65535}
	if s.Advertise != want || s.Mode != ModeProxy {
		t.Errorf("Default() service = mode %v %+v, want proxy %+v", s.Mode, s.Advertise, want)
	}
	for _, c := range []struct {
		addr string
		port uint16
		hit  bool
	}{
		{"198.18.3.2", 80, true}, {"198.18.3.254", 1, true}, {"198.18.3.2", 65535, true},
		{"2001:db8:3::2", 443, true}, {"2001:db8:3:0:ffff::1", 22, true},
		{"198.18.2.2", 80, false}, {"2001:db8:4::2", 80, false}, {"198.18.3.2", 0, false},
	} {
		if got := lookup(p, netip.MustParseAddr(c.addr), c.port) != nil; got != c.hit {
			t.Errorf("Default().LookupIP(%s, %d) guarded = %t, want %t", c.addr, c.port, got, c.hit)
		}
	}
	roundTrip(t, p)
}

func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../../deploy/policies/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 {
		t.Fatalf("found %d example policies in deploy/policies, want at least 4", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			p, err := Load(f)
			if err != nil {
				t.Fatalf("Load(%s): %v", f, err)
			}
			if len(p.Services) == 0 {
				t.Errorf("Load(%s) has no services", f)
			}
			roundTrip(t, p)
		})
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !os.IsNotExist(errorsUnwrap(err)) {
		t.Errorf("Load(missing) = %v, want a not-exist error", err)
	}
}

func errorsUnwrap(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestFormatDefaultMatchesEmbedded(t *testing.T) {
	// The embedded default leaves the defaults out; its effective form,
	// as `synwall check` prints it, has them all.
	p, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := p.Format(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `syn_per_source: {rate: 1000/s, burst: 2000, prefix4: 32, prefix6: 64}`) {
		t.Errorf("Format(Default()) lacks the per-source limit:\n%s", buf.String())
	}
}
