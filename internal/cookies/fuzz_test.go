package cookies

import (
	"encoding/binary"
	"testing"
	"time"
)

// fuzzTuple builds a tuple from arbitrary bytes: 16 source, 16 destination,
// 2+2 ports, 1 family byte; missing bytes are zero.
func fuzzTuple(b []byte) Tuple {
	var buf [37]byte
	copy(buf[:], b)
	var t Tuple
	copy(t.Src[:], buf[0:16])
	copy(t.Dst[:], buf[16:32])
	t.SrcPort = binary.BigEndian.Uint16(buf[32:34])
	t.DstPort = binary.BigEndian.Uint16(buf[34:36])
	t.V6 = buf[36]&1 == 1
	return t
}

// FuzzCheck feeds arbitrary tuples, ISNs, cookies and clock offsets to Check.
// It must never panic; anything it accepts must be what ISN makes for that
// tuple and ISN at the current or the previous counter; and a cookie made by
// ISN must come back with its MSS class.
func FuzzCheck(f *testing.F) {
	t4 := tuple4("198.18.0.1", 40000, "198.19.0.80", 80)
	t6 := tuple6("2001:db8::1", 40000, "2001:db8::80", 443)
	enc := func(t Tuple) []byte {
		b := append(append([]byte{}, t.Src[:]...), t.Dst[:]...)
		b = binary.BigEndian.AppendUint16(b, t.SrcPort)
		b = binary.BigEndian.AppendUint16(b, t.DstPort)
		if t.V6 {
			return append(b, 1)
		}
		return append(b, 0)
	}
	j := mustJar(f, Config{Secret: testSecret}, t0)
	f.Add(enc(t4), uint32(1), j.ISN(&t4, 1, 1460, t0), uint16(1460), int64(0))
	f.Add(enc(t6), uint32(0xffffffff), j.ISN(&t6, 0xffffffff, 9000, t0), uint16(9000), int64(testPeriod))
	f.Add(enc(t4), uint32(7), uint32(0), uint16(0), int64(-1))
	f.Add([]byte{}, uint32(0), uint32(0xffffffff), uint16(536), int64(3*testPeriod))
	f.Fuzz(func(t *testing.T, tb []byte, isn, cookie uint32, mss uint16, offset int64) {
		tp := fuzzTuple(tb)
		now := t0.Add(time.Duration(offset))
		if got, err := j.Check(&tp, isn, cookie, now); err == nil {
			cur := j.ISN(&tp, isn, got, now)
			prev := j.ISN(&tp, isn, got, now.Add(-testPeriod))
			if cookie != cur && cookie != prev {
				t.Fatalf("Check(%+v, %#x, %#x, %v) accepted (mss %d), but ISN makes %#x now and %#x a period ago", tp, isn, cookie, now, got, cur, prev)
			}
		} else if err != ErrInvalid && err != ErrExpired {
			t.Fatalf("Check() error = %v, want ErrInvalid or ErrExpired", err)
		}
		c := j.ISN(&tp, isn, mss, now)
		got, err := j.Check(&tp, isn, c, now)
		tab := MSSTable(tp.V6)
		want := tab[mssIndex(tp.V6, mss)]
		if err != nil || got != want || got > max(mss, tab[0]) {
			t.Fatalf("Check(ISN(%+v, %#x, mss %d)) = %d, %v, want %d, nil", tp, isn, mss, got, err, want)
		}
	})
}
