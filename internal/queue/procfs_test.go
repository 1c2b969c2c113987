package queue

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseKernelQueueStats(t *testing.T) {
	in := "    0  12345     3 2 65535     17   250 90001  1\n" +
		"   1 4294967295 0 2 65531 0 0 0 1\n\n"
	got, err := ParseKernelQueueStats(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []KernelQueueStats{
		{Queue: 0, PortID: 12345, Waiting: 3, CopyMode: 2, CopyRange: 65535, Dropped: 17, UserDropped: 250, LastID: 90001},
		{Queue: 1, PortID: 4294967295, CopyMode: 2, CopyRange: 65531},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseKernelQueueStats() (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"0 1 2 3\n", "0 1 2 3 4 x 6 7 1\n", "70000 1 2 3 4 5 6 7 1\n"} {
		if _, err := ParseKernelQueueStats(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseKernelQueueStats(%q) = nil error, want one", bad)
		}
	}
}
