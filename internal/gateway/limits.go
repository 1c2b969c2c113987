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
type active struct {
	pol    *policy.Policy
	perSvc []*limit.PerSource // by Service.ID; nil: no per-source limit
	synAck *limit.Bucket      // nil: no global SYN-ACK limit
}

// buildActive makes the limiters of p. Limiters of old are kept, with their
// state, where the service (by name) and its prefix lengths are unchanged.
func buildActive(p *policy.Policy, old *active, slots int) (*active, error) {
	a := &active{pol: p, perSvc: make([]*limit.PerSource, len(p.Services))}
	byName := map[string]*limit.PerSource{}
	if old != nil {
		for i, s := range old.pol.Services {
			if i < len(old.perSvc) && old.perSvc[i] != nil {
				byName[s.Name] = old.perSvc[i]
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
				a.perSvc[i] = ps
				continue
			}
		}
		ps, err := limit.NewPerSource(slots, l.Rate.PerSecond(), l.Burst, p4, p6)
		if err != nil {
			return nil, fmt.Errorf("gateway: service %s: %w", s.Name, err)
		}
		a.perSvc[i] = ps
	}
	if r := p.Limits.SynAckRate; !r.IsZero() {
		burst := max(p.Limits.SynAckBurst, 1)
		if old != nil && old.synAck != nil {
			if err := old.synAck.SetLimit(r.PerSecond(), burst); err != nil {
				return nil, fmt.Errorf("gateway: SYN-ACK limit: %w", err)
			}
			a.synAck = old.synAck
		} else {
			b, err := limit.NewBucket(r.PerSecond(), burst)
			if err != nil {
				return nil, fmt.Errorf("gateway: SYN-ACK limit: %w", err)
			}
			a.synAck = b
		}
	}
	return a, nil
}
