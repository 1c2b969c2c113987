//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package synstage

import (
	"testing"

	"github.com/synwall/synwall/internal/gateway/header"
)

// TestReasonValues holds the program's drop counters to the engine's
// reasons: the counter of a reason is the reason's value, so Stats.Drops
// is indexed like the engine's Stats.Drops and uses the same names.
func TestReasonValues(t *testing.T) {
	tests := []struct {
		c    bpfCounter
		want header.Reason
	}{
		{synstageSynstageCounterSYNSTAGE_REASON_INVALID, header.ReasonInvalid},
		{synstageSynstageCounterSYNSTAGE_REASON_OK, header.OK},
		{synstageSynstageCounterSYNSTAGE_REASON_TRUNCATED, header.Truncated},
		{synstageSynstageCounterSYNSTAGE_REASON_BAD_VERSION, header.BadVersion},
		{synstageSynstageCounterSYNSTAGE_REASON_BAD_IHL, header.BadIHL},
		{synstageSynstageCounterSYNSTAGE_REASON_BAD_TOTAL_LENGTH, header.BadTotalLength},
		{synstageSynstageCounterSYNSTAGE_REASON_FRAGMENT, header.Fragment},
		{synstageSynstageCounterSYNSTAGE_REASON_BAD_EXT_HEADER, header.BadExtHeader},
		{synstageSynstageCounterSYNSTAGE_REASON_NOT_TCP, header.NotTCP},
		{synstageSynstageCounterSYNSTAGE_REASON_BAD_DATA_OFFSET, header.BadDataOffset},
		{synstageSynstageCounterSYNSTAGE_REASON_BAD_OPTION, header.BadOption},
		{synstageSynstageCounterSYNSTAGE_REASON_SYN_FIN, header.SynFin},
		{synstageSynstageCounterSYNSTAGE_REASON_SYN_RST, header.SynRst},
		{synstageSynstageCounterSYNSTAGE_REASON_FIN_NO_ACK, header.FinNoAck},
		{synstageSynstageCounterSYNSTAGE_REASON_NULL_FLAGS, header.NullFlags},
		{synstageSynstageCounterSYNSTAGE_REASON_XMAS, header.Xmas},
		{synstageSynstageCounterSYNSTAGE_REASON_NO_ACK, header.NoAck},
		{synstageSynstageCounterSYNSTAGE_REASON_SYN_ACK_FROM_CLIENT, header.SynAckFromClient},
		{synstageSynstageCounterSYNSTAGE_REASON_SERVER_SYN, header.ServerSyn},
		{synstageSynstageCounterSYNSTAGE_REASON_RST_FIN, header.RstFin},
		{synstageSynstageCounterSYNSTAGE_NUM_REASONS, header.NumReasons},
	}
	if len(tests) != int(header.NumReasons)+1 {
		t.Fatalf("the table covers %d reasons, the engine has %d", len(tests)-1, header.NumReasons)
	}
	for _, tc := range tests {
		if header.Reason(tc.c) != tc.want {
			t.Errorf("program counter %d, want %d (%v)", tc.c, tc.want, tc.want)
		}
	}
	if synstageSynstageCounterSYNSTAGE_ANSWERED < synstageSynstageCounterSYNSTAGE_NUM_REASONS {
		t.Errorf("event counters start at %d, inside the reasons", synstageSynstageCounterSYNSTAGE_ANSWERED)
	}
}
