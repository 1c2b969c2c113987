package synstage

import (
	"encoding/json"
	"fmt"
	"slices"
)

// HandoverEnv is the environment variable that names the stage's objects
// handed from one process to the next across execve (a graceful restart):
// a JSON document of file descriptors (see Stage.Handover and
// InheritFromEnv).
const HandoverEnv = "SYNWALL_SYNSTAGE_FDS"

// handoverDoc is HandoverEnv's value.
type handoverDoc struct {
	// Object is the SHA-256 of the BPF object the programs and maps were
	// loaded from: a new binary with another object loads its own and
	// moves the attachments onto it.
	Object  string          `json:"object"`
	Buckets int             `json:"cache_buckets"`
	Per     int             `json:"cache_entries"`
	Maps    map[string]int  `json:"maps"`
	Progs   map[string]int  `json:"progs"`
	Links   []handoverLink  `json:"links"`
	Limits  []handoverLimit `json:"limits,omitempty"`
}

type handoverLink struct {
	Interface string `json:"if"`
	Mode      string `json:"mode"`
	FD        int    `json:"fd"`
}

// handoverLimit keeps a per-source limiter's id with its service, so that
// the next process's SetPolicy keeps the limiter's buckets.
type handoverLimit struct {
	Service string `json:"service"`
	Pfx4    uint8  `json:"prefix4"`
	Pfx6    uint8  `json:"prefix6"`
	ID      uint32 `json:"id"`
}

// fds returns every descriptor the document names.
func (d *handoverDoc) fds() []int {
	var out []int
	for _, fd := range d.Maps {
		out = append(out, fd)
	}
	for _, fd := range d.Progs {
		out = append(out, fd)
	}
	for _, l := range d.Links {
		out = append(out, l.FD)
	}
	return out
}

// parseHandover reads HandoverEnv's value. Descriptors must be above 2
// (never stdin, stdout or stderr) and named once.
func parseHandover(s string) (*handoverDoc, error) {
	var d handoverDoc
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		return nil, fmt.Errorf("synstage: %s: %w", HandoverEnv, err)
	}
	fds := d.fds()
	if len(fds) == 0 {
		return nil, fmt.Errorf("synstage: %s names no descriptor", HandoverEnv)
	}
	slices.Sort(fds)
	for i, fd := range fds {
		if fd <= 2 {
			return nil, fmt.Errorf("synstage: %s: descriptor %d: want one above 2", HandoverEnv, fd)
		}
		if i > 0 && fds[i-1] == fd {
			return nil, fmt.Errorf("synstage: %s: descriptor %d named twice", HandoverEnv, fd)
		}
	}
	for _, l := range d.Links {
		if _, err := ParseAttachMode(l.Mode); err != nil || l.Interface == "" {
			return nil, fmt.Errorf("synstage: %s: link %+v: want an interface and tc or xdp", HandoverEnv, l)
		}
	}
	return &d, nil
}
