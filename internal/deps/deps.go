// Package deps pins the project's chosen dependencies while the packages
// that use them are being written. It is removed once they are all in use.
package deps

import (
	_ "github.com/dchest/siphash"
	_ "github.com/florianl/go-nfqueue/v2"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/google/gopacket/layers"
	_ "github.com/google/gopacket/pcapgo"
	_ "github.com/mdlayher/netlink"
	_ "golang.org/x/sync/errgroup"
	_ "golang.org/x/sys/unix"
	_ "gopkg.in/yaml.v3"
)
