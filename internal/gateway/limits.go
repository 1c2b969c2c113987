package gateway

import (
	"fmt"

	"github.com/synwall/synwall/internal/gateway/limit"
	"github.com/synwall/synwall/internal/policy"
)

// DefaultLimitSlots is the size of each service's per-source limiter table.
const DefaultLimitSlots = 1 << 14

// active is the policy in force with the rate limiters built from it; it is
// swapped as a whole.
//
// Handshakes (valid ACKs that open the server side) have limiters of
// their own with the same rates: a valid cookie replayed must not open
// server connections faster than the SYNs it stands for were allowed.
type active struct {
	pol      *policy.Policy
	perSvc   []*limit.PerSource // by Service.ID; nil: no per-source limit
	perSvcHs []*limit.PerSource // the same for handshakes
	synAck   *limit.Bucket      // nil: no global SYN-ACK limit
	hs       *limit.Bucket      // the same for handshakes
}

// buildActive makes the limiters of p. Limiters of old are kept, with their
// state, where the service (by name) and its prefix lengths are unchanged.
func buildActive(p *policy.Policy, old *active, slots int) (*active, error) {
	a := &active{pol: p}
	var oldSyn, oldHs []*limit.PerSource
	var oldSynAck, oldHsB *limit.Bucket
	var oldPol *policy.Policy
	if old != nil {
		oldSyn, oldHs, oldSynAck, oldHsB, oldPol = old.perSvc, old.perSvcHs, old.synAck, old.hs, old.pol
	}
	var err error
	if a.perSvc, err = perSource(p, oldPol, oldSyn, slots); err != nil {
		return nil, err
	}
	if a.perSvcHs, err = perSource(p, oldPol, oldHs, slots); err != nil {
		return nil, err
	}
	if a.synAck, err = global(p, oldSynAck, "SYN-ACK"); err != nil {
		return nil, err
	}
	if a.hs, err = global(p, oldHsB, "handshake"); err != nil {
		return nil, err
	}
	return a, nil
}

// perSource makes the per-source limiters of p's services, keeping those
// of old (made for oldPol) whose service and prefix lengths are unchanged.
func perSource(p, oldPol *policy.Policy, old []*limit.PerSource, slots int) ([]*limit.PerSource, error) {
	out := make([]*limit.PerSource, len(p.Services))
	byName := map[string]*limit.PerSource{}
	if oldPol != nil {
		for i, s := range oldPol.Services {
			if i < len(old) && old[i] != nil {
				byName[s.Name] = old[i]
			}
		}
	}
	for i, s := range p.Services {
		l := s.Limit
		if l.Rate.IsZero() || s.Mode != policy.ModeProxy {
			continue
		}
		p4, p6 := int(l.Prefix4), int(l.Prefix6)
		if p4 == 0 {
			p4 = 24
		}
		if p6 == 0 {
			p6 = 64
		}
		if ps := byName[s.Name]; ps != nil {
			if o4, o6 := ps.Prefixes(); o4 == p4 && o6 == p6 {
				if err := ps.SetLimit(l.Rate.PerSecond(), l.Burst); err != nil {
					return nil, fmt.Errorf("gateway: service %s: %w", s.Name, err)
				}
				out[i] = ps
				continue
			}
		}
		ps, err := limit.NewPerSource(slots, l.Rate.PerSecond(), l.Burst, p4, p6)
		if err != nil {
			return nil, fmt.Errorf("gateway: service %s: %w", s.Name, err)
		}
		out[i] = ps
	}
	return out, nil
}

// global makes the global limiter of p's SYN-ACK rate (nil when it has
// none), reusing old with its state.
func global(p *policy.Policy, old *limit.Bucket, what string) (*limit.Bucket, error) {
	r := p.Limits.SynAckRate
	if r.IsZero() {
		return nil, nil
	}
	burst := max(p.Limits.SynAckBurst, 1)
	if old != nil {
		if err := old.SetLimit(r.PerSecond(), burst); err != nil {
			return nil, fmt.Errorf("gateway: %s limit: %w", what, err)
		}
		return old, nil
	}
	b, err := limit.NewBucket(r.PerSecond(), burst)
	if err != nil {
		return nil, fmt.Errorf("gateway: %s limit: %w", what, err)
	}
	return b, nil
}
