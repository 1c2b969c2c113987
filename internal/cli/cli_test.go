package cli

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want int
	}{
		{nil, -1},
		{[]string{"-n", "3"}, -1},
		{[]string{"-h"}, ExitOK},
		{[]string{"-nope"}, ExitUsage},
		{[]string{"-n", "x"}, ExitUsage},
	} {
		var out bytes.Buffer
		fs := NewFlags("prog", "sub", "[flags]", "About it.", &out)
		fs.Int("n", 0, "a number")
		if got := ParseFlags(fs, tt.args); got != tt.want {
			t.Errorf("ParseFlags(%q) = %d, want %d", tt.args, got, tt.want)
		}
		if len(tt.args) > 0 && tt.args[0] == "-h" && !strings.HasPrefix(out.String(), "Usage: prog sub [flags]\n\nAbout it.\n\nFlags:\n") {
			t.Errorf("-h printed %q, want the usage line, the about text and the flags", out.String())
		}
	}
}
