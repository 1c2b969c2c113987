package observe

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/synwall/synwall/internal/engine"
)

// fakeProc answers every packet with res.
type fakeProc struct{ res engine.Result }

func (f *fakeProc) Process(pkt []byte, meta engine.Meta, now time.Time, r *engine.Result) {
	*r = f.res
}

// tcpPacket builds an IPv4 or IPv6 packet with a 20-byte TCP header (no
// checksums: the observer does not read them).
func tcpPacket(src, dst netip.Addr, sport, dport uint16, flags uint8) []byte {
	var p []byte
	var t []byte
	if src.Is4() {
		p = make([]byte, 40)
		p[0] = 0x45
		binary.BigEndian.PutUint16(p[2:], 40)
		p[8], p[9] = 64, 6
		s, d := src.As4(), dst.As4()
		copy(p[12:], s[:])
		copy(p[16:], d[:])
		t = p[20:]
	} else {
		p = make([]byte, 60)
		p[0] = 0x60
		binary.BigEndian.PutUint16(p[4:], 20)
		p[6], p[7] = 6, 64
		s, d := src.As16(), dst.As16()
		copy(p[8:], s[:])
		copy(p[24:], d[:])
		t = p[40:]
	}
	binary.BigEndian.PutUint16(t[0:], sport)
	binary.BigEndian.PutUint16(t[2:], dport)
	t[12] = 5 << 4
	t[13] = flags
	return p
}

// fixedRand is a deterministic key source.
type fixedRand struct{}

func (fixedRand) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i*7 + 1)
	}
	return len(p), nil
}
