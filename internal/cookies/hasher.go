package cookies

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
)

// Hasher is a keyed hash of a Tuple, for choosing SYN-cache buckets that an
// attacker cannot aim at. The zero Hasher hashes with an all-zero key, which
// anyone can predict; use NewHasher.
type Hasher struct{ k key }

// NewHasher returns a Hasher with a 128-bit key read from r; nil means
// crypto/rand.
func NewHasher(r io.Reader) (Hasher, error) {
	if r == nil {
		r = rand.Reader
	}
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return Hasher{}, fmt.Errorf("cookies: drawing the hasher key: %w", err)
	}
	return Hasher{key{binary.LittleEndian.Uint64(b[0:8]), binary.LittleEndian.Uint64(b[8:16])}}, nil
}

// Sum returns the SipHash-2-4 of t under h's key (addresses, ports and
// family; see tupleHash for the exact message).
func (h Hasher) Sum(t *Tuple) uint64 { return tupleHash(h.k, t) }
