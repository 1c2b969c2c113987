package queue

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// ProcPath is where the kernel reports its queues.
const ProcPath = "/proc/net/netfilter/nfnetlink_queue"

// KernelQueueStats is one line of /proc/net/netfilter/nfnetlink_queue
// (net/netfilter/nfnetlink_queue.c, seq_show).
type KernelQueueStats struct {
	Queue       uint16
	PortID      uint32 // netlink port id of the bound program
	Waiting     uint32 // packets queued awaiting a verdict
	CopyMode    uint8
	CopyRange   uint32
	Dropped     uint64 // queue_dropped: the queue was full (queue_maxlen)
	UserDropped uint64 // queue_user_dropped: the netlink socket buffer was full
	LastID      uint32 // id of the last packet queued
}

// ParseKernelQueueStats parses the text of /proc/net/netfilter/nfnetlink_queue.
func ParseKernelQueueStats(r io.Reader) ([]KernelQueueStats, error) {
	var out []KernelQueueStats
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) < 8 {
			return nil, fmt.Errorf("queue: %s line %d: %d fields, want at least 8", ProcPath, line, len(f))
		}
		var s KernelQueueStats
		var err error
		num := func(i, bits int) uint64 {
			if err != nil {
				return 0
			}
			var v uint64
			v, err = strconv.ParseUint(f[i], 10, bits)
			if err != nil {
				err = fmt.Errorf("queue: %s line %d field %d: %w", ProcPath, line, i+1, err)
			}
			return v
		}
		s.Queue = uint16(num(0, 16))
		s.PortID = uint32(num(1, 32))
		s.Waiting = uint32(num(2, 32))
		s.CopyMode = uint8(num(3, 8))
		s.CopyRange = uint32(num(4, 32))
		s.Dropped = num(5, 64)
		s.UserDropped = num(6, 64)
		s.LastID = uint32(num(7, 32))
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// ReadKernelQueueStats reads ProcPath. The file exists once the
// nfnetlink_queue module is loaded; it lists bound queues only.
func ReadKernelQueueStats() ([]KernelQueueStats, error) {
	f, err := os.Open(ProcPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseKernelQueueStats(f)
}
