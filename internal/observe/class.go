package observe

import (
	"github.com/synwall/synwall/internal/engine"
	"github.com/synwall/synwall/internal/gateway/header"
)

// Class is why a packet was dropped. Values below header.NumReasons are the
// header.Reason of a packet dropped by the header checks (Class(r)); the
// values after them are the engine's other drops. The zero value is
// invalid, and so is Class(header.OK).
type Class uint8

const (
	ClassInvalid       Class = 0
	ClassPolicyDrop    Class = Class(header.NumReasons) + iota - 1 // service in drop mode, or a denied source
	ClassRateLimited                                               // SYN refused by a rate limit
	ClassBadCookie                                                 // ACK whose cookie does not verify
	ClassExpiredCookie                                             // ACK whose cookie is too old
	ClassNoFlow                                                    // neither a handshake packet nor one of a known flow
	NumClasses
)

var extraNames = [...]string{"policy_drop", "rate_limited", "bad_cookie", "expired_cookie", "no_flow"}

// String returns the snake_case name used in logs, metrics and status.
func (c Class) String() string {
	switch {
	case c == ClassInvalid || c == Class(header.OK):
		return "invalid"
	case c < Class(header.NumReasons):
		return header.Reason(c).String()
	case c < NumClasses:
		return extraNames[c-ClassPolicyDrop]
	}
	return "invalid"
}

// ClassOf returns the drop class of a result, or ClassInvalid when the
// packet was not dropped (or a header failure only counted and let through).
func ClassOf(r *engine.Result) Class {
	if r.Verdict != engine.Drop {
		return ClassInvalid
	}
	switch r.Event {
	case engine.EventMalformed:
		if r.Reason > header.OK && r.Reason < header.NumReasons {
			return Class(r.Reason)
		}
	case engine.EventPolicyDrop:
		return ClassPolicyDrop
	case engine.EventSynLimited:
		return ClassRateLimited
	case engine.EventBadCookie:
		return ClassBadCookie
	case engine.EventExpiredCookie:
		return ClassExpiredCookie
	case engine.EventUnknown:
		return ClassNoFlow
	}
	return ClassInvalid
}
