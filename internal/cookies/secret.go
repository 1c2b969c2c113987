package cookies

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// maxSecretFile bounds how much of a secret file is read.
const maxSecretFile = 64 << 10

// ReadSecretFile reads a shared cookie secret from path. Leading and trailing
// white space is trimmed. The file is refused when it is not a regular file,
// when its group or others have any permission on it (mode & 0o077 != 0), or
// when the trimmed secret is shorter than MinSecretLen bytes or longer than
// 64 KiB. Errors name the file and the reason.
func ReadSecretFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cookies: secret file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cookies: secret file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("cookies: secret file %s: not a regular file (mode %v)", path, fi.Mode())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("cookies: secret file %s: mode %04o lets group or others access it; want 0600 or stricter", path, perm)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("cookies: secret file %s: %w", path, err)
	}
	if len(b) > maxSecretFile {
		return nil, fmt.Errorf("cookies: secret file %s: longer than %d bytes", path, maxSecretFile)
	}
	s := bytes.TrimSpace(b)
	if len(s) < MinSecretLen {
		return nil, fmt.Errorf("cookies: secret file %s: secret is %d bytes after trimming white space, want at least %d", path, len(s), MinSecretLen)
	}
	return bytes.Clone(s), nil
}
