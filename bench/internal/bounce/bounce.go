//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bounce

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"

	"github.com/synwall/synwall/deploy/lab"
)

// Attach loads the program and attaches it with tcx to the ingress of
// interface ifname in namespace ns. The returned function detaches and
// frees it.
func Attach(ns, ifname string) (undo func() error, err error) {
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, err
	}
	var objs bounceObjects
	if err := loadBounceObjects(&objs, nil); err != nil {
		return nil, fmt.Errorf("bounce: loading: %w", err)
	}
	var l link.Link
	err = lab.InNetns(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		l, err = link.AttachTCX(link.TCXOptions{Interface: ifi.Index, Program: objs.Bounce, Attach: ebpf.AttachTCXIngress})
		return err
	})
	if err != nil {
		objs.Close()
		return nil, fmt.Errorf("bounce: attaching to %s in %s: %w", ifname, ns, err)
	}
	return func() error { return errors.Join(l.Close(), objs.Close()) }, nil
}

// Defense is the bounce in the lab's gateway, on the interface the
// spoofed floods arrive on, as a row of lab.MeasureSyn.
func Defense() lab.Defense {
	return lab.Defense{Name: Name, Kind: lab.DefenseCustom, Setup: func(_ context.Context, l *lab.Lab) (func() error, error) {
		return Attach(l.Gateway, lab.IfAttacker)
	}}
}
