//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package synstage

// fill sets s from the program's counter array.
func (s *Stats) fill(raw []uint64) {
	copy(s.Drops[:], raw[:synstageSynstageCounterSYNSTAGE_NUM_REASONS])
	at := func(c bpfCounter) uint64 { return raw[c] }
	s.Answered = at(synstageSynstageCounterSYNSTAGE_ANSWERED)
	s.Unguarded = at(synstageSynstageCounterSYNSTAGE_PASS_UNGUARDED)
	s.Unparsed = at(synstageSynstageCounterSYNSTAGE_PASS_UNPARSED)
	s.PassMode = at(synstageSynstageCounterSYNSTAGE_PASS_MODE)
	s.NotSYN = at(synstageSynstageCounterSYNSTAGE_PASS_NOT_SYN)
	s.InvalidCounted = at(synstageSynstageCounterSYNSTAGE_PASS_INVALID_COUNTED)
	s.NoKey = at(synstageSynstageCounterSYNSTAGE_PASS_NO_KEY)
	s.BadIPChecksum = at(synstageSynstageCounterSYNSTAGE_PASS_BAD_IP_CSUM)
	s.Martian = at(synstageSynstageCounterSYNSTAGE_PASS_MARTIAN)
	s.OtherHost = at(synstageSynstageCounterSYNSTAGE_PASS_OTHER_HOST)
	s.TooManyRanges = at(synstageSynstageCounterSYNSTAGE_PASS_TOO_MANY_RANGES)
	s.Errors = at(synstageSynstageCounterSYNSTAGE_PASS_ERROR)
	s.Denied = at(synstageSynstageCounterSYNSTAGE_DROP_DENIED)
	s.PolicyDrops = at(synstageSynstageCounterSYNSTAGE_DROP_POLICY)
	s.SynLimited = at(synstageSynstageCounterSYNSTAGE_DROP_SYN_LIMITED)
	s.SynAckLimited = at(synstageSynstageCounterSYNSTAGE_DROP_SYNACK_LIMITED)
	s.LiveFlow = at(synstageSynstageCounterSYNSTAGE_PASS_LIVE_FLOW)
}
