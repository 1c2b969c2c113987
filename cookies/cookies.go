package cookies

import (
	"errors"
	"io"
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
	// periods after it was made.
	Period time.Duration
	// Secret, when set, derives every key from it, so that gateways sharing
	// the secret accept each other's cookies. At least 16 bytes.
	Secret []byte
	// Rand is the source of the random master key when Secret is empty;
	// nil means crypto/rand.
	Rand io.Reader
}

// DefaultPeriod is the default counter period. See doc.go for why.
const DefaultPeriod = 30 * time.Second

// Sentinel errors of Check. They are values, never built per packet.
var (
	ErrInvalid = errors.New("cookies: invalid cookie")
	ErrExpired = errors.New("cookies: expired cookie")
)

// Jar makes and checks cookies. It is safe for concurrent use.
type Jar struct{ _ struct{} }

// New returns a Jar whose keys are drawn or derived now.
func New(cfg Config, now time.Time) (*Jar, error) { panic("todo") }

// ISN returns the cookie to use as the SYN-ACK sequence number for a SYN on t
// with client sequence number clientISN and client MSS mss (0 when the client
// sent none). The MSS is rounded down to the largest class in MSSTable(t.V6)
// that does not exceed it (the smallest class when it is below all).
func (j *Jar) ISN(t *Tuple, clientISN uint32, mss uint16, now time.Time) uint32 {
	panic("todo")
}

// Check validates cookie (the client's ACK number minus one) for t and the
// client's ISN (its ACK's sequence number minus one). It returns the MSS of
// the encoded class, or ErrExpired / ErrInvalid.
func (j *Jar) Check(t *Tuple, clientISN, cookie uint32, now time.Time) (mss uint16, err error) {
	panic("todo")
}

// MSSTable returns the MSS classes for the family, ascending.
func MSSTable(v6 bool) [4]uint16 { panic("todo") }

// TSOptions are the client options carried in the low bits of our TSval.
type TSOptions struct {
	WScale uint8 // 0..14; NoWScale when the client sent none
	SACK   bool
	ECN    bool
}

// NoWScale marks a client that did not send a window-scale option.
const NoWScale = 0x0f

// TSBits is how many low bits of TSval EncodeTS uses.
const TSBits = 6

// EncodeTS returns ts with its low TSBits replaced by o.
func EncodeTS(ts uint32, o TSOptions) uint32 { panic("todo") }

// DecodeTS reads the options back from an echoed TSecr; ok is false when the
// bits cannot have been made by EncodeTS.
func DecodeTS(tsecr uint32) (o TSOptions, ok bool) { panic("todo") }
