package main

import (
	"context"
	"fmt"
	"io"

	"github.com/synwall/synwall/internal/daemon"
)

func cmdCheck(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", "[FILE]", `Validates a policy file strictly (unknown keys, wrong types, overlapping
services and out-of-range values are errors naming file, line, field and the
allowed range) and prints the effective policy, every default filled in.
Without FILE it checks and prints the embedded default policy.
Exit status 0 when the policy is valid, 1 when it is not.`, stderr)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return exitUsage
	}
	p, err := daemon.LoadPolicy(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFailure
	}
	if err := p.Format(stdout); err != nil {
		fmt.Fprintln(stderr, "synwall check:", err)
		return exitFailure
	}
	return exitOK
}
