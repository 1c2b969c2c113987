package daemon

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/synwall/synwall/internal/firewall"
	"github.com/synwall/synwall/internal/policy"
)

// stageLink is an interface as the SYN stage's automatic selection sees it.
type stageLink struct {
	Name     string
	Index    int
	Up       bool // IFF_UP
	Loopback bool // IFF_LOOPBACK
}

// serviceRoute is the kernel's route toward the first address of a guarded
// service's prefix: the interface the gateway forwards that service's
// traffic out of, which faces the servers.
type serviceRoute struct {
	Prefix netip.Prefix
	Index  int   // output interface; 0 when the lookup failed
	Err    error // why there is no route
}

// stageIfChoice says whether the automatic selection attaches the stage to
// one interface, and why.
type stageIfChoice struct {
	Interface string
	Chosen    bool
	Reason    string
}

// servicePrefixes returns the distinct prefixes of p's guarded services,
// leaving out the ones of length 0 (any address: no route names the
// servers' side).
func servicePrefixes(p *policy.Policy) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range p.Services {
		for _, pf := range s.Prefixes {
			pf = pf.Masked()
			if pf.Bits() == 0 || slices.Contains(out, pf) {
				continue
			}
			out = append(out, pf)
		}
	}
	return out
}

// selectStageInterfaces picks the interfaces that face clients, where the
// SYN stage answers SYNs (--syn-stage-if left empty): every interface that
// is up and not loopback, and, when guarded traffic is forwarded (--hook
// forward or both), not one the kernel routes a guarded service's
// addresses through (it faces the servers, whose SYN-ACKs and segments
// must not meet the stage). With --hook input alone this host is the
// server: every up, non-loopback interface faces clients. It returns the
// chosen names in links' order and a choice with its reason for every
// link.
func selectStageInterfaces(links []stageLink, routes []serviceRoute, forward bool) (chosen []string, choices []stageIfChoice) {
	for _, l := range links {
		c := stageIfChoice{Interface: l.Name}
		switch {
		case l.Loopback:
			c.Reason = "loopback"
		case !l.Up:
			c.Reason = "down"
		case forward && serverFacing(l, routes) != nil:
			r := serverFacing(l, routes)
			c.Reason = fmt.Sprintf("faces the servers: the route to %s (guarded prefix %s) goes out through it", r.Prefix.Addr(), r.Prefix)
		case forward:
			c.Chosen = true
			c.Reason = "up, not loopback, no guarded service routed through it"
		default:
			c.Chosen = true
			c.Reason = "up, not loopback (--hook input: this host is the server)"
		}
		if c.Chosen {
			chosen = append(chosen, l.Name)
		}
		choices = append(choices, c)
	}
	return chosen, choices
}

// serverFacing returns the first route to a guarded prefix through l, or nil.
func serverFacing(l stageLink, routes []serviceRoute) *serviceRoute {
	for i := range routes {
		if routes[i].Err == nil && routes[i].Index == l.Index {
			return &routes[i]
		}
	}
	return nil
}

// selectStageInterfaces chooses the stage's interfaces in this network
// namespace (SynStageConfig.Auto) and logs the choice: the interfaces
// chosen, and why each other one is left out.
func (d *Daemon) selectStageInterfaces(p *policy.Policy) []string {
	forward := slices.Contains(d.cfg.Traffic.Hooks, firewall.HookForward)
	links, err := stageLinks()
	if err != nil {
		d.log.Warn("SYN stage: selecting the client-facing interfaces failed", "err", err)
		return nil
	}
	var routes []serviceRoute
	if forward {
		routes = serviceRoutes(servicePrefixes(p))
		for _, r := range routes {
			if r.Err != nil {
				d.log.Warn("SYN stage: no route to a guarded prefix; the interface toward its servers is not known", "prefix", r.Prefix, "err", r.Err)
			}
		}
	}
	chosen, choices := selectStageInterfaces(links, routes, forward)
	for _, c := range choices {
		if !c.Chosen {
			d.log.Info("SYN stage: interface left out by the automatic selection", "interface", c.Interface, "reason", c.Reason)
		}
	}
	d.log.Info("SYN stage: client-facing interfaces selected (--syn-stage-if to name them)", "interfaces", strings.Join(chosen, ","), "hooks", hooksName(d.cfg.Traffic.Hooks))
	return chosen
}
