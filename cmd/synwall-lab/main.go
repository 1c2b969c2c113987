package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/synwall/synwall/internal/cli"
)

// Exit codes, as synwall's.
const (
	exitOK      = cli.ExitOK
	exitFailure = 1
	exitUsage   = cli.ExitUsage
	exitSetup   = 3 // could not start: privileges, tools, the synwall binary
)

func usage(w io.Writer) {
	fmt.Fprint(w, `synwall-lab — network-namespace lab and demo for synwall

Usage: synwall-lab COMMAND [flags]

Commands:
  demo     [flags]           build a namespace lab, flood it (spoofed generator + hping3) behind no defense,
                             kernel SYNPROXY and synwall, print CPU per SYN-ACK and legitimate success
  lab      up|down [flags]   build or remove the network-namespace lab by hand
  synflood -dst ADDR:PORT -rate PPS -duration D [flags]
                             bounded spoofed-SYN generator (sources only in 198.18.0.0/15 or
                             2001:db8::/32); run it inside the lab's attacker namespace

Run "synwall-lab COMMAND -h" for the flags of a command. Needs root.
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
	var run func(context.Context, []string, io.Writer, io.Writer) int
	switch args[0] {
	case "-h", "--help", "help":
		usage(stdout)
		return exitOK
	case "demo":
		run = cmdDemo
	case "lab":
		run = cmdLab
	case "synflood":
		run = cmdSynflood
	default:
		fmt.Fprintf(stderr, "synwall-lab: unknown command %q\n\n", args[0])
		usage(stderr)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args[1:], stdout, stderr)
}

// newFlags returns a FlagSet whose -h prints a man-page-like help.
func newFlags(name, args, about string, stderr io.Writer) *flag.FlagSet {
	return cli.NewFlags("synwall-lab", name, args, about, stderr)
}

// parseFlags parses args and maps the outcome to an exit code (-1: go on).
func parseFlags(fs *flag.FlagSet, args []string) int { return cli.ParseFlags(fs, args) }

// synwallFlag registers --synwall: the synwall binary the lab runs.
func synwallFlag(fs *flag.FlagSet) *string {
	return fs.String("synwall", "", "the synwall `BINARY` to run in the gateway (default: synwall next to synwall-lab)")
}

// synwallPath returns flag, or the synwall binary next to this one, as an
// absolute path to an existing file.
func synwallPath(flag string) (string, error) {
	if flag == "" {
		self, err := os.Executable()
		if err != nil {
			return "", err
		}
		flag = filepath.Join(filepath.Dir(self), "synwall")
	}
	abs, err := filepath.Abs(flag)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(abs); err != nil {
		return "", fmt.Errorf("synwall binary: %w (build it, or name it with --synwall)", err)
	}
	return abs, nil
}
