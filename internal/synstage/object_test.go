package synstage

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestObjectSources checks that the C sources are the ones the committed
// object was generated from (bpf/synstage.sha256 is written by go
// generate): a change to them without `make generate` fails here, clang
// or not.
func TestObjectSources(t *testing.T) {
	rec, err := os.ReadFile("bpf/synstage.sha256")
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for _, f := range []string{"bpf/synstage.c", "bpf/synstage.h"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		fmt.Fprintf(&want, "%s  %s\n", hex.EncodeToString(sum[:]), f)
	}
	if string(rec) != want.String() {
		t.Errorf("bpf/synstage.sha256 = %q, want %q: the C sources changed since the object was generated; run make generate", rec, want.String())
	}
}

// generateArgs returns the bpf2go command of gen.go's go:generate line.
func generateArgs(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile("gen.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(src), "\n") {
		if strings.HasPrefix(l, "//go:generate go run github.com/cilium/ebpf/cmd/bpf2go") {
			f := strings.Fields(l)
			return f[2:] // run github.com/...
		}
	}
	t.Fatal("gen.go has no bpf2go go:generate line")
	return nil
}

// TestObjectFresh rebuilds the object with gen.go's own command into a
// temporary directory and compares it, and the generated Go, with the
// committed files. It needs clang and llvm-strip; without them it skips,
// except in CI, where the tools are part of the setup.
func TestObjectFresh(t *testing.T) {
	if testing.Short() {
		t.Skip("rebuilds the BPF object")
	}
	for _, tool := range []string{"clang", "llvm-strip"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is missing (deploy/setup.sh installs it)", tool)
			}
			t.Skipf("%s is missing: cannot rebuild the object to compare", tool)
		}
	}
	dir := t.TempDir()
	args := generateArgs(t)
	// Insert the output directory before the bpf2go options.
	var cmdArgs []string
	for i, a := range args {
		cmdArgs = append(cmdArgs, a)
		if strings.HasPrefix(a, "github.com/cilium/ebpf/cmd/bpf2go@") {
			cmdArgs = append(cmdArgs, "-output-dir", dir, "-go-package", "synstage")
			cmdArgs = append(cmdArgs, args[i+1:]...)
			break
		}
	}
	cmd := exec.Command("go", cmdArgs...)
	cmd.Env = append(os.Environ(), "GOPACKAGE=synstage")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(cmdArgs, " "), err, out)
	}
	for _, f := range []string{"synstage_bpfel.o", "synstage_bpfel.go"} {
		got, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from a fresh build of bpf/synstage.c: run make generate and commit the result", f)
		}
	}
}
