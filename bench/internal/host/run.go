package host

import (
	"context"
	"flag"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Sleep waits for d or until ctx is done, whichever comes first.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// GitCommit is the short commit of the working directory's checkout, with
// " (work tree modified)" when tracked files differ from it, or "unknown".
func GitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		c += " (work tree modified)"
	}
	return c
}

// CommandLine is "go run PKG" with the flags of fs that were set, quoted
// where needed, so that a report can say how to run it again.
func CommandLine(pkg string, fs *flag.FlagSet) string {
	args := []string{"go", "run", pkg}
	fs.Visit(func(f *flag.Flag) {
		v := f.Value.String()
		if isBool(f) && v == "true" {
			args = append(args, "-"+f.Name)
			return
		}
		if strings.ContainsAny(v, " \t\"") || v == "" {
			v = fmt.Sprintf("%q", v)
		}
		args = append(args, "-"+f.Name+"="+v)
	})
	return strings.Join(args, " ")
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}
