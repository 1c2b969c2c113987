package cookies

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Keys is the key material of a Jar, for handing it to the next process of
// a graceful restart: with it, cookies issued before the restart are
// accepted after it. Every per-counter key derives from Master (see
// counterKey) and the counter counts periods since the Unix epoch, so the
// period and the master key are all there is to save. Keys are secret:
// store them only where a secret file could be (mode 0600, root's).
type Keys struct {
	Period time.Duration // the counter period
	Master [16]byte      // the master key
}

// KeysLen is the length of the binary form of Keys.
const KeysLen = 8 + 16

// Errors of Keys.UnmarshalBinary and NewFromKeys.
var (
	ErrKeysLength    = errors.New("cookies: saved keys have the wrong length")
	ErrKeysPeriod    = errors.New("cookies: saved keys have another period")
	ErrKeysSecret    = errors.New("cookies: saved keys do not come from the configured shared secret")
	ErrKeysMalformed = errors.New("cookies: saved keys are malformed")
)

// Keys returns j's key material.
func (j *Jar) Keys() Keys {
	k := Keys{Period: time.Duration(j.period)}
	binary.LittleEndian.PutUint64(k.Master[0:8], j.master.k0)
	binary.LittleEndian.PutUint64(k.Master[8:16], j.master.k1)
	return k
}

// AppendBinary appends the KeysLen-byte form of k to b: the period in
// nanoseconds (LE64) and the master key.
func (k Keys) AppendBinary(b []byte) ([]byte, error) {
	b = binary.LittleEndian.AppendUint64(b, uint64(k.Period))
	return append(b, k.Master[:]...), nil
}

// UnmarshalBinary reads the form AppendBinary writes.
func (k *Keys) UnmarshalBinary(b []byte) error {
	if len(b) != KeysLen {
		return ErrKeysLength
	}
	p := int64(binary.LittleEndian.Uint64(b[0:8]))
	if p <= 0 {
		return fmt.Errorf("%w: period %d ns", ErrKeysMalformed, p)
	}
	k.Period = time.Duration(p)
	copy(k.Master[:], b[8:24])
	return nil
}

// masterFromSecret derives the master key of a shared secret (as New does).
func masterFromSecret(secret []byte) (key, error) {
	m, err := hkdf.Key(sha256.New, secret, nil, "synwall/cookies/master/v1", 16)
	if err != nil {
		return key{}, fmt.Errorf("cookies: deriving the master key: %w", err)
	}
	return key{binary.LittleEndian.Uint64(m[0:8]), binary.LittleEndian.Uint64(m[8:16])}, nil
}

// NewFromKeys returns a Jar configured by cfg that makes and accepts the
// same cookies as the jar whose Keys k are. It refuses keys of another
// period than cfg's (ErrKeysPeriod). With cfg.Secret set, the keys come from
// the secret as in New, and k must be the keys of that same secret (else
// ErrKeysSecret): a jar never takes keys other than its secret's. Without a
// secret, the jar takes k's master key instead of drawing one, whatever k
// came from (a jar does not remember whether its master came from a secret;
// a cold start draws a fresh one). On any error the caller should start
// with New instead.
func NewFromKeys(cfg Config, k Keys, now time.Time) (*Jar, error) {
	period := cfg.Period
	if period == 0 {
		period = DefaultPeriod
	}
	if period < 0 {
		return nil, fmt.Errorf("cookies: period %v is negative", cfg.Period)
	}
	if k.Period != period {
		return nil, fmt.Errorf("%w: saved %v, configured %v", ErrKeysPeriod, k.Period, period)
	}
	m := key{binary.LittleEndian.Uint64(k.Master[0:8]), binary.LittleEndian.Uint64(k.Master[8:16])}
	j := &Jar{period: int64(period), master: m}
	if cfg.Secret != nil {
		if len(cfg.Secret) < MinSecretLen {
			return nil, fmt.Errorf("cookies: secret is %d bytes, want at least %d", len(cfg.Secret), MinSecretLen)
		}
		sm, err := masterFromSecret(cfg.Secret)
		if err != nil {
			return nil, err
		}
		if sm != m {
			return nil, ErrKeysSecret
		}
	}
	j.ks.Store(j.newKeyset(j.counter(now)))
	return j, nil
}

// CounterKey is the SipHash-2-4 key K(c) of one counter value, as its two
// 64-bit key words (the little-endian halves of the 128-bit key). It is
// secret like Keys.
type CounterKey struct{ K0, K1 uint64 }

// Counter returns the cookie counter of now: floor(now / Period) counted
// from the Unix epoch.
func (j *Jar) Counter(now time.Time) uint64 { return j.counter(now) }

// CounterKey returns the key of counter c, the one ISN and Check use for
// cookies of that counter. A stage outside this process that makes the
// same cookies (the BPF SYN stage) is given these keys and never the master
// key.
func (j *Jar) CounterKey(c uint64) CounterKey {
	k := j.key(j.ks.Load(), c)
	return CounterKey{k.k0, k.k1}
}
