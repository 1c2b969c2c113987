package header

import (
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// icmp4 wraps quoted (an IPv4 packet, cut as a router would) in an ICMP
// message of type typ sent from 198.18.9.9 to dst4's owner.
func icmp4(typ uint8, quoted []byte) []byte {
	m := append([]byte{typ, 4, 0, 0, 0, 0, 0x05, 0xdc}, quoted...)
	b := make([]byte, 20, 20+len(m))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(20+len(m)))
	b[8], b[9] = 64, ProtocolICMP
	copy(b[12:], []byte{198, 18, 9, 9})
	copy(b[16:], src4[:4])
	return append(b, m...)
}

// icmp6 is icmp4 for ICMPv6 (the checksum is left zero).
func icmp6(typ uint8, quoted []byte) []byte {
	m := append([]byte{typ, 0, 0, 0, 0, 0, 0x05, 0x00}, quoted...)
	b := make([]byte, 40, 40+len(m))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(m)))
	b[6], b[7] = ProtocolICMPv6, 64
	copy(b[8:], dst6[:])
	copy(b[24:], src6[:])
	return append(b, m...)
}

func TestParseICMPError(t *testing.T) {
	q4 := v4(nil, seg(ACK, nil, []byte("data")))
	q6 := v6(ProtocolTCP, nil, seg(ACK, nil, []byte("data")))
	want4 := ICMPError{Src: [16]byte{198, 18, 9, 9}, Dst: src4, InnerSrc: src4, InnerDst: dst4, InnerSrcPort: 40000, InnerDstPort: 80,
		ICMPOffset: 20, SeqOffset: 20 + 8 + 20 + 4}
	want6 := ICMPError{V6: true, Src: dst6, Dst: src6, InnerSrc: src6, InnerDst: dst6, InnerSrcPort: 40000, InnerDstPort: 80,
		ICMPOffset: 40, SeqOffset: 40 + 8 + 40 + 4}
	tests := []struct {
		name string
		b    []byte
		r    Reason
		want ICMPError
	}{
		{"v4 fragmentation needed, whole quote", icmp4(ICMPDestUnreachable, q4), OK, want4},
		{"v4 time exceeded, 8 bytes of TCP", icmp4(ICMPTimeExceeded, q4[:28]), OK, want4},
		{"v4 quote too short", icmp4(ICMPDestUnreachable, q4[:27]), NotTCP, ICMPError{}},
		{"v4 echo request", icmp4(8, q4), NotTCP, ICMPError{}},
		{"v4 quoting UDP", icmp4(ICMPDestUnreachable, mod(q4[:28], func(b []byte) { b[9] = 17 })), NotTCP, ICMPError{}},
		{"v4 TCP", q4, NotTCP, ICMPError{}},
		{"v6 packet too big", icmp6(ICMPv6PacketTooBig, q6), OK, want6},
		{"v6 8 bytes of TCP", icmp6(ICMPv6DestUnreachable, q6[:48]), OK, want6},
		{"v6 echo", icmp6(128, q6), NotTCP, ICMPError{}},
		{"v6 quoting v4", icmp6(ICMPv6PacketTooBig, q4), NotTCP, ICMPError{}},
		{"v6 short", icmp6(ICMPv6PacketTooBig, q6)[:45], BadTotalLength, ICMPError{}},
		{"empty", nil, Truncated, ICMPError{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e ICMPError
			r := ParseICMPError(tt.b, &e)
			if r != tt.r {
				t.Fatalf("ParseICMPError = %v, want %v", r, tt.r)
			}
			if r != OK {
				return
			}
			if d := cmp.Diff(tt.want, e); d != "" {
				t.Errorf("ParseICMPError (-want +got):\n%s", d)
			}
			if got := binary.BigEndian.Uint32(tt.b[e.SeqOffset:]); got != 1000 {
				t.Errorf("sequence number at SeqOffset = %d, want the quoted segment's 1000", got)
			}
		})
	}
}
