// Command synwall is a SYN-flood defense gateway: a transparent SYN proxy
// (RFC 4987 §3.8) fed by NFQUEUE. See the README and `synwall help`.
//
// This package is the command line only: flags become a daemon.Config
// (package internal/daemon runs the gateway) and the other subcommands
// (check, rules, discover, status, reload, restart) are thin clients of
// the policy, firewall, probe and daemon packages. The lab drivers (demo,
// lab up|down) are the separate binary cmd/synwall-lab.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/synwall/synwall/internal/cli"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

// Exit codes. They mean the same for every subcommand.
const (
	exitOK      = cli.ExitOK    // done, or a clean shutdown
	exitFailure = 1             // the work failed (a check found errors, the gateway stopped on an error)
	exitUsage   = cli.ExitUsage // bad command line
	exitSetup   = 3             // could not start: policy, privileges, queue binding or firewall rules
)

type command struct {
	name, args, summary string
	run                 func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

var commands []command

func init() {
	commands = []command{
		{"run", "[flags]", "run the gateway in the foreground until SIGINT/SIGTERM (SIGHUP reloads the policy, SIGUSR2 restarts gracefully)", cmdRun},
		{"check", "[FILE]", "validate a policy file and print the effective policy (the embedded default without FILE)", cmdCheck},
		{"discover", "[--policy FILE]", "probe the backends of services with advertise.discover and print what their SYN-ACKs advertise", cmdDiscover},
		{"rules", "[flags]", "print the firewall rules synwall would install (iptables and nftables), touching nothing", cmdRules},
		{"reload", "[--pid-file FILE]", "ask the running gateway to reload its policy (sends SIGHUP)", cmdReload},
		{"status", "[--json] [--watch]", "show what the running gateway is doing: rates, drops by reason, top attacked services and source prefixes, table fill", cmdStatus},
		{"restart", "[--pid-file FILE]", "graceful restart of the running gateway (SIGUSR2): keeps flows, cookie keys and rules, re-executes the binary", cmdRestart},
		{"version", "", "print the version", cmdVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `synwall %s — SYN-flood defense gateway (transparent SYN proxy on NFQUEUE)

Usage: synwall COMMAND [flags]

Commands:
`, version)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %-18s %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprint(w, `
Run "synwall COMMAND -h" for the flags of a command.

Exit codes: 0 ok or clean shutdown, 1 failure, 2 bad usage,
3 could not start (policy, privileges, queue or firewall rules), or, for
status, no daemon answers.
`)
}

func main() {
	os.Exit(mainArgs(os.Args[1:], os.Stdout, os.Stderr))
}

func mainArgs(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(stdout)
		return exitOK
	case "-v", "--version":
		args[0] = "version"
	}
	for _, c := range commands {
		if c.name == args[0] {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "synwall: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

// newFlags returns a FlagSet whose -h prints a man-page-like help.
func newFlags(name, args, about string, stderr io.Writer) *flag.FlagSet {
	return cli.NewFlags("synwall", name, args, about, stderr)
}

// parseFlags parses args and maps the outcome to an exit code (-1: go on).
func parseFlags(fs *flag.FlagSet, args []string) int { return cli.ParseFlags(fs, args) }

func cmdVersion(_ context.Context, _ []string, stdout, _ io.Writer) int {
	fmt.Fprintf(stdout, "synwall %s\n", version)
	return exitOK
}
