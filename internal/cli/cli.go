// Package cli holds what the synwall and synwall-lab commands share on
// their command lines: a FlagSet whose -h prints a man-page-like help, and
// the mapping of a parse outcome to the commands' exit codes.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// Exit codes both commands use for their command lines.
const (
	ExitOK    = 0 // done (also after -h)
	ExitUsage = 2 // bad command line
)

// NewFlags returns a FlagSet for subcommand name of program prog whose -h
// prints "Usage: prog name args", the about text and the flags.
func NewFlags(prog, name, args, about string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s %s %s\n\n%s\n\nFlags:\n", prog, name, args, about)
		fs.PrintDefaults()
	}
	return fs
}

// ParseFlags parses args and maps the outcome to an exit code: ExitOK
// after -h, ExitUsage for a bad command line, -1 to go on.
func ParseFlags(fs *flag.FlagSet, args []string) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	return -1
}
