package cookies

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		// Chmod after writing: WriteFile's mode is filtered by the umask.
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const good = "k7Qe1vX9pL2mN4bR8sT0wY6zA3cF5hJ"
	tests := []struct {
		name    string
		path    string
		want    string // the secret, when no error is wanted
		wantErr string // part of the error
	}{
		{"ok", write("ok", good, 0o600), good, ""},
		{"ok read-only", write("ro", good, 0o400), good, ""},
		{"trimmed", write("trim", "\n  "+good+" \r\n\t", 0o600), good, ""},
		{"binary", write("bin", "\x00\x01\x02\x03\x04\x05\x06\x07\x08\xff\xfe\xfd\xfc\xfb\xfa\xf9", 0o600), "\x00\x01\x02\x03\x04\x05\x06\x07\x08\xff\xfe\xfd\xfc\xfb\xfa\xf9", ""},
		{"world readable", write("world", good, 0o604), "", "mode 0604 lets group or others access it"},
		{"group readable", write("group", good, 0o640), "", "mode 0640 lets group or others access it"},
		{"group writable", write("gw", good, 0o620), "", "mode 0620"},
		{"others executable", write("ox", good, 0o601), "", "mode 0601"},
		{"too short", write("short", "0123456789abcde", 0o600), "", "secret is 15 bytes after trimming white space, want at least 16"},
		{"short after trimming", write("spaces", "   0123456789   \n\n\n\n", 0o600), "", "secret is 10 bytes"},
		{"empty", write("empty", "", 0o600), "", "secret is 0 bytes"},
		{"too long", write("long", strings.Repeat("x", maxSecretFile+1), 0o600), "", "longer than"},
		{"directory", dir, "", "not a regular file"},
		{"missing", filepath.Join(dir, "missing"), "", "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadSecretFile(tt.path)
			if tt.wantErr == "" {
				if err != nil || string(got) != tt.want {
					t.Errorf("ReadSecretFile(%s) = %q, %v, want %q, nil", tt.name, got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ReadSecretFile(%s) = %q, nil, want error containing %q", tt.name, got, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.path) {
				t.Errorf("ReadSecretFile(%s) error = %q, want it to contain %q and the path", tt.name, err, tt.wantErr)
			}
		})
	}
}

func TestSecretFileJarsAgree(t *testing.T) {
	// Two gateways read the same file (one with a trailing newline) and
	// accept each other's cookies.
	dir := t.TempDir()
	p1, p2 := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	const s = "shared-secret-for-two-gateways-0001"
	if err := os.WriteFile(p1, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p2, []byte(s+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s1, err1 := ReadSecretFile(p1)
	s2, err2 := ReadSecretFile(p2)
	if err1 != nil || err2 != nil {
		t.Fatalf("ReadSecretFile = %v, %v", err1, err2)
	}
	a := mustJar(t, Config{Secret: s1}, t0)
	b := mustJar(t, Config{Secret: s2}, t0)
	tp := tuple4("198.18.1.1", 2000, "198.19.1.1", 443)
	c := a.ISN(&tp, 31337, 1300, t0)
	if mss, err := b.Check(&tp, 31337, c, t0); err != nil || mss != 1300 {
		t.Errorf("Check on the second gateway = %d, %v, want 1300, nil", mss, err)
	}
}
