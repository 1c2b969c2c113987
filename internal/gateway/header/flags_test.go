package header

import (
	"strings"
	"testing"
)

func TestCheckFlags(t *testing.T) {
	type dir struct {
		fromServer bool
		want       Reason
	}
	tests := []struct {
		name   string
		flags  uint8
		client Reason // sent by a client toward the service
		server Reason // sent by the service
	}{
		{"syn", SYN, OK, ServerSyn},
		{"syn+ece+cwr (ECN setup, RFC 3168 §6.1.1)", SYN | ECE | CWR, OK, ServerSyn},
		{"syn+psh", SYN | PSH, OK, ServerSyn},
		{"syn+urg", SYN | URG, OK, ServerSyn},
		{"syn+ack", SYN | ACK, SynAckFromClient, OK},
		{"syn+ack+ece", SYN | ACK | ECE, SynAckFromClient, OK},
		{"syn+ack+psh", SYN | ACK | PSH, SynAckFromClient, OK},
		{"ack", ACK, OK, OK},
		{"ack+psh", ACK | PSH, OK, OK},
		{"ack+urg", ACK | URG, OK, OK},
		{"ack+cwr", ACK | CWR, OK, OK},
		{"fin+ack", FIN | ACK, OK, OK},
		{"fin+ack+psh+urg", FIN | ACK | PSH | URG, OK, OK},
		{"rst", RST, OK, OK},
		{"rst+ack", RST | ACK, OK, OK},
		{"rst+psh", RST | PSH, OK, OK},
		{"syn+fin", SYN | FIN, SynFin, SynFin},
		{"syn+fin+psh", SYN | FIN | PSH, SynFin, SynFin},
		{"syn+fin+ack", SYN | FIN | ACK, SynFin, SynFin},
		{"syn+fin+rst", SYN | FIN | RST, SynFin, SynFin},
		{"syn+rst", SYN | RST, SynRst, SynRst},
		{"syn+rst+ack", SYN | RST | ACK, SynRst, SynRst},
		{"rst+fin", RST | FIN, RstFin, RstFin},
		{"rst+fin+ack", RST | FIN | ACK, RstFin, RstFin},
		{"fin", FIN, FinNoAck, FinNoAck},
		{"fin+psh", FIN | PSH, FinNoAck, FinNoAck},
		{"fin+urg", FIN | URG, FinNoAck, FinNoAck},
		{"null", 0, NullFlags, NullFlags},
		{"ece+cwr only", ECE | CWR, NullFlags, NullFlags},
		{"xmas", FIN | PSH | URG, Xmas, Xmas},
		{"xmas+ece", FIN | PSH | URG | ECE, Xmas, Xmas},
		{"psh", PSH, NoAck, NoAck},
		{"urg", URG, NoAck, NoAck},
		{"psh+urg", PSH | URG, NoAck, NoAck},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, d := range []dir{{false, tt.client}, {true, tt.server}} {
				if got := CheckFlags(tt.flags, d.fromServer); got != d.want {
					t.Errorf("CheckFlags(%#02x, %v) = %v, want %v", tt.flags, d.fromServer, got, d.want)
				}
			}
		})
	}
	// Every flag reason must be reachable from some flags byte.
	seen := map[Reason]bool{}
	for f := range 256 {
		for _, s := range []bool{false, true} {
			r := CheckFlags(uint8(f), s)
			seen[r] = true
			// ECE and CWR never change the verdict.
			if r2 := CheckFlags(uint8(f)&^(ECE|CWR), s); r2 != r {
				t.Errorf("CheckFlags(%#02x, %v) = %v but without ECE/CWR %v", f, s, r, r2)
			}
		}
	}
	for r := SynFin; r < NumReasons; r++ {
		if !seen[r] {
			t.Errorf("no flags byte gives %v", r)
		}
	}
	for r := range seen {
		if r != OK && r < SynFin {
			t.Errorf("CheckFlags returned header reason %v", r)
		}
	}
}

func TestReasonString(t *testing.T) {
	names := map[string]Reason{}
	for r := ReasonInvalid; r < NumReasons; r++ {
		s := r.String()
		if s == "" || s == "unknown" || strings.ToLower(s) != s || strings.ContainsAny(s, " -") {
			t.Errorf("Reason(%d).String() = %q, want a snake_case name", r, s)
		}
		if o, dup := names[s]; dup {
			t.Errorf("Reason(%d).String() = %q, same as Reason(%d)", r, s, o)
		}
		names[s] = r
	}
	for in, want := range map[Reason]string{SynFin: "syn_fin", BadIHL: "bad_ihl", OK: "ok", NumReasons: "unknown", 255: "unknown"} {
		if got := in.String(); got != want {
			t.Errorf("Reason(%d).String() = %q, want %q", in, got, want)
		}
	}
}
