package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// RootModule is the module path of synwall itself. bench/go.mod requires it
// and replaces it with the checkout around bench/ (../).
const RootModule = "github.com/synwall/synwall"

// ModuleDir returns the directory of module path as the go command in the
// working directory resolves it. Run inside the bench module, the
// directory of RootModule is the repository root.
func ModuleDir(ctx context.Context, path string) (string, error) {
	var stderr strings.Builder
	c := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", path)
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s: %w: %s (run inside the bench module)", path, err, strings.TrimSpace(stderr.String()))
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("go list -m %s: no directory (run inside the bench module)", path)
	}
	return dir, nil
}

// BuildSynwall builds the synwall binary into out. It builds in the root
// module (go build -C), so the binary measured is the one its go.mod and
// go.sum make, not one resolved through the bench module's requirements.
func BuildSynwall(ctx context.Context, out string, log io.Writer) error {
	root, err := ModuleDir(ctx, RootModule)
	if err != nil {
		return err
	}
	if out, err = filepath.Abs(out); err != nil {
		return err
	}
	return goBuild(ctx, log, "-C", root, "-o", out, "./cmd/synwall")
}

// BuildSynflood builds the SYN generator (bench/synflood) into out.
func BuildSynflood(ctx context.Context, out string, log io.Writer) error {
	return goBuild(ctx, log, "-o", out, RootModule+"/bench/synflood")
}

func goBuild(ctx context.Context, log io.Writer, args ...string) error {
	if log == nil {
		log = os.Stderr
	}
	pkg := args[len(args)-1]
	fmt.Fprintf(log, "building %s\n", pkg)
	c := exec.CommandContext(ctx, "go", append([]string{"build"}, args...)...)
	c.Stdout, c.Stderr = log, log
	if err := c.Run(); err != nil {
		if ctx.Err() != nil {
			return errors.Join(ctx.Err(), err)
		}
		return fmt.Errorf("go build %s: %w", pkg, err)
	}
	return nil
}
