package cookies

import (
	"encoding/binary"
	"testing"

	"github.com/dchest/siphash"
)

// cookieMsg is the byte message cookieMAC hashes, written out the slow way.
func cookieMsg(t *Tuple, isn uint32, idx uint32, counter uint64) []byte {
	n := 4
	fam := byte(4)
	if t.V6 {
		n, fam = 16, 6
	}
	var b []byte
	b = append(b, t.Src[:n]...)
	b = append(b, t.Dst[:n]...)
	b = binary.LittleEndian.AppendUint16(b, t.SrcPort)
	b = binary.LittleEndian.AppendUint16(b, t.DstPort)
	b = binary.LittleEndian.AppendUint32(b, isn)
	b = append(b, byte(idx), fam)
	var c [8]byte
	binary.LittleEndian.PutUint64(c[:], counter)
	return append(b, c[:5]...)
}

// TestSipHashMatchesReference checks the word-wise SipHash-2-4 against
// github.com/dchest/siphash over the documented byte messages.
func TestSipHashMatchesReference(t *testing.T) {
	r := seeded(1)
	for i := range 2000 {
		v6 := i%2 == 1
		tp := randomTuple(r, v6)
		k := key{r.Uint64(), r.Uint64()}
		isn, idx, ctr := r.Uint32(), uint32(r.IntN(4)), r.Uint64()

		msg := cookieMsg(&tp, isn, idx, ctr)
		if want := map[bool]int{false: cookieMsgLen4, true: cookieMsgLen6}[v6]; len(msg) != want {
			t.Fatalf("cookie message is %d bytes, want %d", len(msg), want)
		}
		if got, want := cookieMAC(k, &tp, isn, idx, ctr), siphash.Hash(k.k0, k.k1, msg); got != want {
			t.Fatalf("cookieMAC(%+v, %#x, %d, %d) = %#x, want %#x", tp, isn, idx, ctr, got, want)
		}
	}
}

// TestSipHashVector checks the reference against the test vector of the
// SipHash paper (key 00..0f, message 00..0e, 15 bytes), and the word-wise
// code against the reference on the paper's key and messages 00..(n-1) of
// the lengths sip2 and sip5 take.
func TestSipHashVector(t *testing.T) {
	k := key{0x0706050403020100, 0x0f0e0d0c0b0a0908}
	msg := make([]byte, 48) // one spare byte for reading the last word whole
	for i := range msg {
		msg[i] = byte(i)
	}
	if got, want := siphash.Hash(k.k0, k.k1, msg[:15]), uint64(0xa129ca6149be45e5); got != want {
		t.Errorf("siphash.Hash(paper vector) = %#x, want %#x", got, want)
	}
	w := func(i int) uint64 { return binary.LittleEndian.Uint64(msg[8*i:]) }
	last := func(n int) uint64 { return uint64(n)<<56 | w(n/8)&(1<<(8*(n%8))-1) }
	if got, want := sip2(k, w(0), w(1), last(23)), siphash.Hash(k.k0, k.k1, msg[:23]); got != want {
		t.Errorf("sip2(00..16) = %#x, want %#x", got, want)
	}
	if got, want := sip5(k, w(0), w(1), w(2), w(3), w(4), last(47)), siphash.Hash(k.k0, k.k1, msg[:47]); got != want {
		t.Errorf("sip5(00..2e) = %#x, want %#x", got, want)
	}
}

// TestMACIsKeyedSipHash: MAC of a cookie from ISN is the top MACBits bits of
// the SipHash-2-4 of the cookie message under the counter's key, the bits
// the engine picks SYN-cache buckets with.
func TestMACIsKeyedSipHash(t *testing.T) {
	r := seeded(3)
	j, err := New(Config{Rand: chacha(3)}, t0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		v6 := i%2 == 1
		tp := randomTuple(r, v6)
		isn := r.Uint32()
		cookie := j.ISN(&tp, isn, 1460, t0)
		cur, ks := j.clock(t0)
		idx := mssIndex(v6, 1460)
		mac := siphash.Hash(j.key(ks, cur).k0, j.key(ks, cur).k1, cookieMsg(&tp, isn, idx, cur))
		if got, want := MAC(cookie), uint32(mac>>(64-MACBits)); got != want {
			t.Fatalf("MAC(ISN(%+v, %#x)) = %#x, want %#x (top %d bits of the SipHash)", tp, isn, got, want, MACBits)
		}
	}
}
