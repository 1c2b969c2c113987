package policy

import (
	"fmt"
	"strings"
)

// Error is one problem found in a policy: where (file, line, field path) and
// what. Parse and New return several of them joined with errors.Join.
type Error struct {
	File string // file name, or "" for a policy built in Go
	Line int    // 1-based line, or 0 when unknown
	Path string // field path, e.g. services[1].advertise.mss
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// where formats a file:line position for use inside a message.
func where(file string, line int) string {
	switch {
	case file != "" && line > 0:
		return fmt.Sprintf("%s:%d", file, line)
	case line > 0:
		return fmt.Sprintf("line %d", line)
	}
	return ""
}
