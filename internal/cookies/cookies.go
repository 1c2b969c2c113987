package cookies

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// Tuple names a connection from the client's side: Src is the client, Dst the
// guarded server. IPv4 addresses sit in the first 4 bytes of Src and Dst and
// the rest is zero.
type Tuple struct {
	Src, Dst         [16]byte
	SrcPort, DstPort uint16
	V6               bool
}

// Config sets up a Jar.
type Config struct {
	// Period is how often the cookie counter ticks (and the key rotates).
	// Zero means DefaultPeriod. A cookie is accepted for between one and two
	// periods after it was made. Gateways that share a Secret must also
	// share the Period (and keep their clocks in step).
	Period time.Duration
	// Secret, when set, derives every key from it, so that gateways sharing
	// the secret accept each other's cookies. At least 16 bytes.
	Secret []byte
	// Rand is the source of the random master key when Secret is empty;
	// nil means crypto/rand. It is not used when Secret is set.
	Rand io.Reader
}

// DefaultPeriod is the default counter period. See doc.go for why.
const DefaultPeriod = 30 * time.Second

// MinSecretLen is the shortest Config.Secret (and secret file) accepted.
const MinSecretLen = 16

// Sentinel errors of Check. They are values, never built per packet.
var (
	ErrInvalid = errors.New("cookies: invalid cookie")
	ErrExpired = errors.New("cookies: expired cookie")
)

// Cookie layout (bit 31 is the most significant):
//
//	bits 31..4  the top 28 bits of the MAC
//	bits  3..0  (mssIndex<<2 | counter&3) XOR bits 31..28
const (
	macMask     = 0xfffffff0
	macBits     = 28
	counterMask = 3
)

// MACBits is how many bits MAC returns.
const MACBits = macBits

// MAC returns the keyed MAC bits of a cookie (its top MACBits bits, a
// SipHash-2-4 of tuple, client ISN, MSS class and counter). Nobody without the
// key can choose a SYN whose cookie has given MAC bits; they can only read
// them off the SYN-ACK afterwards. The same SYN within one counter period gets
// the same bits. The engine picks SYN-cache buckets with them, which saves a
// second keyed hash per SYN and per handshake ACK.
func MAC(cookie uint32) uint32 { return cookie >> (32 - macBits) }

// keysetKeys is how many per-counter keys a keyset caches: counters
// cur-keysetPast .. cur+1.
const (
	keysetPast = 6
	keysetKeys = keysetPast + 2
)

// keyset holds the keys of the counters around cur. It is immutable once
// published.
type keyset struct {
	cur   uint64
	start int64  // Unix nanoseconds at which counter cur begins
	base  uint64 // counter of keys[0], cur - keysetPast
	keys  [keysetKeys]key
}

// Jar makes and checks cookies. It is safe for concurrent use. The zero Jar
// is not usable; call New.
type Jar struct {
	period int64 // nanoseconds, > 0
	master key
	ks     atomic.Pointer[keyset]
	weak   uint32 // cookie bits Check does not compare: 0 but in WeakenedForTest
}

// WeakenedForTest returns a Jar with j's keys and period whose Check
// compares only the top n MAC bits of a cookie (0 < n <= 28) and its low
// bits, so that a test can count forged ACKs accepted at odds of 2^-n
// through the whole engine and hold the measured rate to the computed one
// (the production odds, 2^-28, are too small to measure). Nothing but
// tests may use it.
func (j *Jar) WeakenedForTest(n int) *Jar {
	n = min(max(n, 1), macBits)
	w := &Jar{period: j.period, master: j.master, weak: macMask &^ uint32(0xffffffff<<(32-n))}
	w.ks.Store(j.ks.Load())
	return w
}

// New returns a Jar whose keys are drawn or derived now.
func New(cfg Config, now time.Time) (*Jar, error) {
	period := cfg.Period
	if period == 0 {
		period = DefaultPeriod
	}
	if period < 0 {
		return nil, fmt.Errorf("cookies: period %v is negative", cfg.Period)
	}
	j := &Jar{period: int64(period)}
	if cfg.Secret != nil {
		if len(cfg.Secret) < MinSecretLen {
			return nil, fmt.Errorf("cookies: secret is %d bytes, want at least %d", len(cfg.Secret), MinSecretLen)
		}
		m, err := hkdf.Key(sha256.New, cfg.Secret, nil, "synwall/cookies/master/v1", 16)
		if err != nil {
			return nil, fmt.Errorf("cookies: deriving the master key: %w", err)
		}
		j.master = key{binary.LittleEndian.Uint64(m[0:8]), binary.LittleEndian.Uint64(m[8:16])}
	} else {
		r := cfg.Rand
		if r == nil {
			r = rand.Reader
		}
		var m [16]byte
		if _, err := io.ReadFull(r, m[:]); err != nil {
			return nil, fmt.Errorf("cookies: drawing the master key: %w", err)
		}
		j.master = key{binary.LittleEndian.Uint64(m[0:8]), binary.LittleEndian.Uint64(m[8:16])}
	}
	j.ks.Store(j.newKeyset(j.counter(now)))
	return j, nil
}

// Period returns the counter period of j.
func (j *Jar) Period() time.Duration { return time.Duration(j.period) }

// counter returns floor(now / period), counted from the Unix epoch so that
// gateways with synchronized clocks agree on it.
func (j *Jar) counter(now time.Time) uint64 {
	ns := now.UnixNano()
	c := ns / j.period
	if ns%j.period < 0 {
		c--
	}
	return uint64(c)
}

func (j *Jar) newKeyset(cur uint64) *keyset {
	ks := &keyset{cur: cur, start: int64(cur) * j.period, base: cur - keysetPast}
	for i := range ks.keys {
		ks.keys[i] = counterKey(j.master, ks.base+uint64(i))
	}
	return ks
}

// clock returns the counter of now and a keyset that is current for it or
// newer. Within the period of the published keyset it needs no division.
func (j *Jar) clock(now time.Time) (cur uint64, ks *keyset) {
	ns := now.UnixNano()
	ks = j.ks.Load()
	if uint64(ns-ks.start) < uint64(j.period) {
		return ks.cur, ks
	}
	return j.clockSlow(now)
}

// clockSlow serves a clock outside the published keyset's period. The
// published keyset only moves forward, so that callers whose clocks straddle
// a tick do not swap it back and forth; a caller that lags is served by key's
// fallback.
func (j *Jar) clockSlow(now time.Time) (uint64, *keyset) {
	cur := j.counter(now)
	ks := j.ks.Load()
	if int64(cur-ks.cur) <= 0 {
		return cur, ks
	}
	return cur, j.rotate(cur)
}

// rotate publishes a keyset for cur unless a newer one already is.
func (j *Jar) rotate(cur uint64) *keyset {
	nks := j.newKeyset(cur)
	for {
		ks := j.ks.Load()
		if int64(cur-ks.cur) <= 0 {
			return ks
		}
		if j.ks.CompareAndSwap(ks, nks) {
			return nks
		}
	}
}

// key returns the key of counter c, from ks when cached, else derived.
func (j *Jar) key(ks *keyset, c uint64) key {
	if d := c - ks.base; d < keysetKeys {
		return ks.keys[d]
	}
	return counterKey(j.master, c)
}

// mssIndex returns the index of the largest class in the table that does not
// exceed mss, 0 when mss is below all.
func mssIndex(v6 bool, mss uint16) uint32 {
	tab := MSSTable(v6)
	for i := len(tab) - 1; i > 0; i-- {
		if mss >= tab[i] {
			return uint32(i)
		}
	}
	return 0
}

// makeCookie lays out a cookie from its MAC, MSS index and counter.
func makeCookie(mac uint64, idx uint32, counter uint64) uint32 {
	hi := uint32(mac>>32) & macMask
	return hi | ((idx<<2 | uint32(counter&counterMask)) ^ hi>>macBits)
}

// ISN returns the cookie to use as the SYN-ACK sequence number for a SYN on t
// with client sequence number clientISN and client MSS mss (0 when the client
// sent none). The MSS is rounded down to the largest class in MSSTable(t.V6)
// that does not exceed it (the smallest class when it is below all).
func (j *Jar) ISN(t *Tuple, clientISN uint32, mss uint16, now time.Time) uint32 {
	cur, ks := j.clock(now)
	idx := mssIndex(t.V6, mss)
	return makeCookie(cookieMAC(j.key(ks, cur), t, clientISN, idx, cur), idx, cur)
}

// Check validates cookie (the client's ACK number minus one) for t and the
// client's ISN (its ACK's sequence number minus one). It returns the MSS of
// the encoded class, or ErrExpired / ErrInvalid.
//
// The two low counter bits in the cookie name one of the counters cur-2,
// cur-1, cur and cur+1 (cur from now); the MAC is checked with that counter's
// key. A cookie whose MAC fails is ErrInvalid; one whose MAC holds but whose
// counter is cur-2 (made two periods ago) or cur+1 (made in the next period,
// the clock has moved back) is ErrExpired.
func (j *Jar) Check(t *Tuple, clientISN, cookie uint32, now time.Time) (mss uint16, err error) {
	cur, ks := j.clock(now)
	bits := (cookie ^ cookie>>macBits) & 0xf
	idx := bits >> 2
	age := (cur - uint64(bits&counterMask)) & counterMask // 0..3; 3 means cur+1
	c := cur - age
	if age == 3 {
		c = cur + 1
	}
	if (makeCookie(cookieMAC(j.key(ks, c), t, clientISN, idx, c), idx, c)^cookie)&^j.weak != 0 {
		return 0, ErrInvalid
	}
	if age > 1 {
		return 0, ErrExpired
	}
	return MSSTable(t.V6)[idx], nil
}

// MSSTable returns the MSS classes for the family, ascending. The classes are
// those of Linux's syncookies (net/ipv4/syncookies.c msstab,
// net/ipv6/syncookies.c msstab): the smallest are the RFC 9293 §3.7.1 default
// for IPv4 (536) and the IPv6 minimum link MTU (RFC 8200 §5) less 60 bytes
// of headers (1220).
func MSSTable(v6 bool) [4]uint16 {
	if v6 {
		return [4]uint16{1220, 1420, 1440, 8940}
	}
	return [4]uint16{536, 1300, 1440, 1460}
}

// TSOptions are the client options carried in the low bits of our TSval.
type TSOptions struct {
	WScale uint8 // 0..14; NoWScale when the client sent none
	SACK   bool
	ECN    bool
}

// NoWScale marks a client that did not send a window-scale option.
const NoWScale = 0x0f

// MaxWScale is the largest window-scale shift count (RFC 7323 §2.3).
const MaxWScale = 14

// TSBits is how many low bits of TSval EncodeTS uses.
const TSBits = 6

const (
	tsWScaleMask = 0x0f
	tsSACK       = 1 << 4
	tsECN        = 1 << 5
	tsMask       = 1<<TSBits - 1
)

// EncodeTS returns ts with its low TSBits replaced by o: bits 3..0 the window
// scale (NoWScale for none), bit 4 SACK-permitted, bit 5 ECN, as Linux's
// cookie_init_timestamp does. A WScale above MaxWScale other than NoWScale is
// stored as MaxWScale, which is how RFC 7323 §2.3 says to treat it.
func EncodeTS(ts uint32, o TSOptions) uint32 {
	ws := uint32(o.WScale)
	if ws != NoWScale && ws > MaxWScale {
		ws = MaxWScale
	}
	bits := ws
	if o.SACK {
		bits |= tsSACK
	}
	if o.ECN {
		bits |= tsECN
	}
	return ts&^tsMask | bits
}

// DecodeTS reads the options back from an echoed TSecr; ok is false when the
// bits cannot have been made by EncodeTS. With this layout every pattern of
// the six bits is one EncodeTS makes (window scale 0..14, or 15 for none,
// with either SACK and ECN value), so ok is always true; the caller still has
// to check that TSecr echoes a TSval it sent.
func DecodeTS(tsecr uint32) (o TSOptions, ok bool) {
	return TSOptions{
		WScale: uint8(tsecr & tsWScaleMask),
		SACK:   tsecr&tsSACK != 0,
		ECN:    tsecr&tsECN != 0,
	}, true
}
