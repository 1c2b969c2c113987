//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package synstage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Inherited is what an earlier process handed over (InheritFromEnv): the
// stage's maps and programs and its attachments, each an open descriptor
// of this process. Load adopts it (Options.Inherited); Close releases what
// Load did not take, which detaches the attachments left.
type Inherited struct {
	doc   *handoverDoc
	maps  map[string]*ebpf.Map
	progs map[string]*ebpf.Program
	links []attachment
}

// objectHash is the SHA-256 of the embedded BPF object.
func objectHash() string {
	h := sha256.Sum256(_SynstageBytes)
	return hex.EncodeToString(h[:])
}

// InheritFromEnv picks up the objects named in HandoverEnv, if set, and
// unsets it (a later execve must not name them twice). Every descriptor
// must be the kind of BPF object its entry says; each gets close-on-exec
// back. On an error no object is used and every named descriptor that is
// a BPF object is closed (attachments among them detach: the caller then
// loads and attaches afresh). It returns nil, nil when the variable is not set.
func InheritFromEnv() (*Inherited, error) {
	s, ok := os.LookupEnv(HandoverEnv)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(HandoverEnv)
	doc, err := parseHandover(s)
	if err != nil {
		return nil, err
	}
	in := &Inherited{doc: doc, maps: map[string]*ebpf.Map{}, progs: map[string]*ebpf.Program{}}
	// From here on each descriptor is owned by exactly one of: an object
	// in in, or the list of those still raw.
	raw := map[int]bool{}
	for _, fd := range doc.fds() {
		raw[fd] = true
	}
	var errs []error
	for name, fd := range doc.Maps {
		if err := isKind(fd, kindMap); err != nil {
			errs = append(errs, fmt.Errorf("map %s (fd %d): %w", name, fd, err))
			continue
		}
		delete(raw, fd)
		unix.CloseOnExec(fd)
		m, err := ebpf.NewMapFromFD(fd)
		if err != nil {
			closeBPF(fd)
			errs = append(errs, fmt.Errorf("map %s (fd %d): %w", name, fd, err))
			continue
		}
		in.maps[name] = m
	}
	for name, fd := range doc.Progs {
		if err := isKind(fd, kindProg); err != nil {
			errs = append(errs, fmt.Errorf("program %s (fd %d): %w", name, fd, err))
			continue
		}
		delete(raw, fd)
		unix.CloseOnExec(fd)
		p, err := ebpf.NewProgramFromFD(fd)
		if err != nil {
			closeBPF(fd)
			errs = append(errs, fmt.Errorf("program %s (fd %d): %w", name, fd, err))
			continue
		}
		in.progs[name] = p
	}
	for _, hl := range doc.Links {
		if err := isKind(hl.FD, kindLink); err != nil {
			errs = append(errs, fmt.Errorf("link on %s (fd %d): %w", hl.Interface, hl.FD, err))
			continue
		}
		delete(raw, hl.FD)
		unix.CloseOnExec(hl.FD)
		mode, _ := ParseAttachMode(hl.Mode)
		l, err := link.NewFromFD(hl.FD)
		if err != nil {
			closeBPF(hl.FD)
			errs = append(errs, fmt.Errorf("link on %s (fd %d): %w", hl.Interface, hl.FD, err))
			continue
		}
		in.links = append(in.links, attachment{ifname: hl.Interface, mode: mode, l: l})
	}
	for fd := range raw {
		closeBPF(fd)
	}
	if len(errs) > 0 {
		in.Close()
		return nil, fmt.Errorf("synstage: %s: %w", HandoverEnv, errors.Join(errs...))
	}
	return in, nil
}

// BPF object kinds as /proc/self/fd names them.
const (
	kindMap  = "anon_inode:bpf-map"
	kindProg = "anon_inode:bpf-prog"
	kindLink = "anon_inode:bpf_link"
)

// isKind reports whether descriptor fd is a BPF object of kind: wrapping
// another file would close it (cilium/ebpf closes what it fails to wrap).
func isKind(fd int, kind string) error {
	target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return err
	}
	if target != kind {
		return fmt.Errorf("%s, want %s", target, kind)
	}
	return nil
}

// closeBPF closes fd if it is a BPF object (a map, program or link of an
// earlier process), never another file a wrong entry might name.
func closeBPF(fd int) {
	target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err == nil && strings.HasPrefix(target, "anon_inode:bpf") {
		unix.Close(fd)
	}
}

// Attachments lists the inherited attachments.
func (in *Inherited) Attachments() []Attachment {
	if in == nil {
		return nil
	}
	out := make([]Attachment, 0, len(in.links))
	for _, a := range in.links {
		out = append(out, Attachment{Interface: a.ifname, Mode: a.mode})
	}
	return out
}

// Close releases every inherited object Load did not adopt. Attachments
// among them are detached. It is safe on nil and twice.
func (in *Inherited) Close() error {
	if in == nil {
		return nil
	}
	var errs []error
	for _, m := range in.maps {
		errs = append(errs, m.Close())
	}
	for _, p := range in.progs {
		errs = append(errs, p.Close())
	}
	for _, a := range in.links {
		errs = append(errs, a.l.Close())
	}
	in.maps, in.progs, in.links = nil, nil, nil
	return errors.Join(errs...)
}

// objectFields calls f with the name and address of every map and program
// field of o, in the order of the generated structs.
func (o *synstageObjects) fields(fm func(name string, m **ebpf.Map), fp func(name string, p **ebpf.Program)) {
	walk := func(v reflect.Value) {
		t := v.Type()
		for i := range t.NumField() {
			name := t.Field(i).Tag.Get("ebpf")
			switch f := v.Field(i).Addr().Interface().(type) {
			case **ebpf.Map:
				fm(name, f)
			case **ebpf.Program:
				fp(name, f)
			}
		}
	}
	walk(reflect.ValueOf(&o.synstageMaps).Elem())
	walk(reflect.ValueOf(&o.synstagePrograms).Elem())
}

// adopt takes in's maps and programs as s.objs when they are the ones this
// object would load (same object, same SYN cache geometry, every map
// compatible with the spec). It returns why not otherwise, leaving in
// untouched.
func (s *Stage) adopt(in *Inherited) error {
	d := in.doc
	if d.Object != objectHash() {
		return errors.New("another BPF object (the binary changed the program)")
	}
	if d.Buckets != s.cacheBuckets || d.Per != s.cachePer {
		return fmt.Errorf("SYN cache of %d×%d entries handed over, %d×%d configured", d.Buckets, d.Per, s.cacheBuckets, s.cachePer)
	}
	var errs []error
	s.objs.fields(func(name string, _ **ebpf.Map) {
		m, ok := in.maps[name]
		if !ok {
			errs = append(errs, fmt.Errorf("map %s not handed over", name))
			return
		}
		if err := s.spec.Maps[name].Compatible(m); err != nil {
			errs = append(errs, fmt.Errorf("map %s: %w", name, err))
		}
	}, func(name string, _ **ebpf.Program) {
		p, ok := in.progs[name]
		if !ok {
			errs = append(errs, fmt.Errorf("program %s not handed over", name))
			return
		}
		if p.Type() != s.spec.Programs[name].Type {
			errs = append(errs, fmt.Errorf("program %s is of type %v, want %v", name, p.Type(), s.spec.Programs[name].Type))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	s.objs.fields(func(name string, m **ebpf.Map) {
		*m = in.maps[name]
		delete(in.maps, name)
	}, func(name string, p **ebpf.Program) {
		*p = in.progs[name]
		delete(in.progs, name)
	})
	// What the previous process wrote, so that SetKeys and SetPolicy go
	// on from it: the state (generation, counter), the key ring, the
	// limiter ids.
	err := s.objs.State.Lookup(uint32(0), &s.st)
	if err == nil {
		err = s.objs.Policy.Lookup(s.st.Gen&1, &s.pol)
	}
	for i := range s.slots {
		if err == nil {
			err = s.objs.Keys.Lookup(uint32(i), &s.slots[i])
		}
	}
	if err != nil {
		s.objs.Close()
		return fmt.Errorf("reading the handed-over state: %w", err)
	}
	for _, l := range d.Limits {
		s.limitIDs[limitName{l.Service, l.Pfx4, l.Pfx6}] = l.ID
	}
	s.adopted = true
	return nil
}

// takeLinks makes in's attachments the stage's inherited ones: they run
// the stage's program from now on (moved onto it in one step, without a
// moment detached, when the program is not the one they ran). An
// attachment that cannot be moved is detached.
func (s *Stage) takeLinks(in *Inherited) error {
	var errs []error
	for _, a := range in.links {
		if !s.adopted {
			p := s.objs.SynstageTc
			if a.mode == AttachXDP {
				p = s.objs.SynstageXdp
			}
			if err := a.l.Update(p); err != nil {
				a.l.Close()
				errs = append(errs, fmt.Errorf("moving the attachment on %s to the new program: %w", a.ifname, err))
				continue
			}
		}
		s.inherited = append(s.inherited, a)
	}
	in.links = nil
	return errors.Join(errs...)
}

// Adopted reports whether the stage runs the program and maps an earlier
// process handed over (Options.Inherited), and why not if it has none.
func (s *Stage) Adopted() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.adopted, s.adoptErr
}

// CacheSeed returns the tuple-hash seed the SYN cache's entries were
// written with (ShareCache), if the cache was shared: an engine adopting
// the cache of an earlier process must hash tuples with it to find them.
func (s *Stage) CacheSeed() ([4]uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var c synstageSynstageCacheConfig
	if s.closed || s.objs.CacheConfig.Lookup(uint32(0), &c) != nil || c.Enabled == 0 {
		return [4]uint64{}, false
	}
	return c.Seed, true
}

// ReleaseInherited detaches the inherited attachments that Attach did not
// claim (interfaces no longer configured, or another mode) and returns
// them.
func (s *Stage) ReleaseInherited() ([]Attachment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Attachment
	var errs []error
	for _, a := range s.inherited {
		out = append(out, Attachment{Interface: a.ifname, Mode: a.mode})
		if err := a.l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("synstage: detaching from %s: %w", a.ifname, err))
		}
	}
	s.inherited = nil
	return out, errors.Join(errs...)
}

// Handover returns the environment entry ("NAME=VALUE") that hands the
// stage's program, maps and attachments to the next process across
// execve: each is a duplicate descriptor without close-on-exec, which
// keeps the object alive (and attached) when this process closes its own.
// Call it right before the execve and then Close the stage as usual; if
// the execve fails the process should exit, which detaches everything.
func (s *Stage) Handover() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", ErrClosed
	}
	d := handoverDoc{Object: objectHash(), Buckets: s.cacheBuckets, Per: s.cachePer,
		Maps: map[string]int{}, Progs: map[string]int{}}
	var dups []int
	fail := func(err error) (string, error) {
		for _, fd := range dups {
			unix.Close(fd)
		}
		return "", fmt.Errorf("synstage: handing over: %w", err)
	}
	dup := func(fd int) (int, error) {
		// Above 2 and without close-on-exec.
		n, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD, 3)
		if err == nil {
			dups = append(dups, n)
		}
		return n, err
	}
	var errs []error
	s.objs.fields(func(name string, m **ebpf.Map) {
		fd, err := dup((*m).FD())
		errs = append(errs, err)
		d.Maps[name] = fd
	}, func(name string, p **ebpf.Program) {
		fd, err := dup((*p).FD())
		errs = append(errs, err)
		d.Progs[name] = fd
	})
	if err := errors.Join(errs...); err != nil {
		return fail(err)
	}
	for _, a := range append(append([]attachment(nil), s.links...), s.inherited...) {
		f, ok := a.l.(interface{ FD() int })
		if !ok {
			return fail(fmt.Errorf("the attachment on %s is not a BPF link", a.ifname))
		}
		fd, err := dup(f.FD())
		if err != nil {
			return fail(err)
		}
		d.Links = append(d.Links, handoverLink{Interface: a.ifname, Mode: a.mode.String(), FD: fd})
	}
	for n, id := range s.limitIDs {
		d.Limits = append(d.Limits, handoverLimit{Service: n.service, Pfx4: n.pfx4, Pfx6: n.pfx6, ID: id})
	}
	b, err := json.Marshal(&d)
	if err != nil {
		return fail(err)
	}
	return HandoverEnv + "=" + string(b), nil
}
