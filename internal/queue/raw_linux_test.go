package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/synwall/synwall/internal/engine"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// rawPair returns a raw worker whose socket is one end of a datagram
// socketpair, and the other end, which plays the kernel: it sends the
// worker nfnetlink_queue messages and reads the verdicts the worker writes.
func rawPair(t testing.TB, proc engine.Processor, inj Injector) (*rawWorker, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	t.Cleanup(func() {
		unix.Close(fds[0])
		unix.Close(fds[1])
	})
	for _, fd := range fds {
		// Room for a few messages of MaxCopyRange bytes in flight.
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20)
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
	}
	tv := unix.NsecToTimeval((20 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fds[0], unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatalf("SO_RCVTIMEO: %v", err)
	}
	tv = unix.NsecToTimeval((5 * time.Second).Nanoseconds())
	if err := unix.SetsockoptTimeval(fds[1], unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatalf("SO_RCVTIMEO: %v", err)
	}
	now := time.Unix(1000, 0)
	w := &rawWorker{
		cfg:   Config{FlushInterval: time.Millisecond, Now: func() time.Time { return now }},
		queue: 3,
		proc:  proc,
		inj:   inj,
		c:     &counters{queue: 3},
		fd:    fds[0],
	}
	w.initRecv()
	w.pipe = newPipeline(w.queue, w.proc, w.inj, w.c, w.write)
	return w, fds[1]
}

// TestRawRecvManyBatch checks that one receive takes every queued datagram
// up to the batch size, each whole in its own slot and in the order sent.
func TestRawRecvManyBatch(t *testing.T) {
	w, peer := rawPair(t, &fakeProc{}, &fakeInj{})
	const total = recvBatch + 7
	var sent [][]byte
	for i := range total {
		payload := bytes.Repeat([]byte{'A'}, 20+i)
		if i == 5 {
			payload = make([]byte, MaxCopyRange) // the largest message fits a slot
			payload[0] = 'A'
		}
		msg := packetMsg(3, uint32(i+1), 0, 0, payload)
		if _, err := unix.Write(peer, msg); err != nil {
			t.Fatalf("write message %d: %v", i, err)
		}
		sent = append(sent, msg)
	}
	var got [][]byte
	for _, want := range []int{recvBatch, total - recvBatch} {
		n, err := w.recvMany(unix.MSG_DONTWAIT)
		if err != nil || n != want {
			t.Fatalf("recvMany(MSG_DONTWAIT) = %d, %v, want %d, nil", n, err, want)
		}
		for i := range n {
			got = append(got, append([]byte(nil), w.bufs[i][:w.msgs[i].Len]...))
		}
	}
	if diff := cmp.Diff(sent, got); diff != "" {
		t.Errorf("datagrams (-sent +received):\n%s", diff)
	}
	if n, err := w.recvMany(unix.MSG_DONTWAIT); err != unix.EAGAIN {
		t.Errorf("recvMany(MSG_DONTWAIT) on an empty socket = %d, %v, want 0, EAGAIN", n, err)
	}
	if n, err := w.recvMany(unix.MSG_WAITFORONE); err != unix.EAGAIN {
		t.Errorf("recvMany(MSG_WAITFORONE) on an empty socket = %d, %v, want 0, EAGAIN after SO_RCVTIMEO", n, err)
	}
}

// TestRawLoopFIFO runs the receive loop against a fake kernel and checks
// that every packet gets exactly one verdict, in the order the packets were
// queued, while batches of receives overlap with unsent verdicts.
func TestRawLoopFIFO(t *testing.T) {
	inj := &fakeInj{}
	w, peer := rawPair(t, &fakeProc{}, inj)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.loop(ctx) }()

	const total = 500
	kinds := []byte("AADRAIDA")
	want := make([]verdictOut, 0, total)
	var wantInj [][]byte
	for i := range total {
		id := uint32(i + 1)
		k := kinds[i%len(kinds)]
		payload := []byte{k, 'x', byte(i), byte(i >> 8)}
		if i%97 == 0 {
			payload = append(payload, make([]byte, 60000)...)
		}
		v := verdictOut{Queue: 3, ID: id, Accept: k == 'A' || k == 'R'}
		if k == 'R' {
			// fakeProc upper-cases at most 64 bytes.
			v.Payload = append([]byte(nil), payload[:min(len(payload), 64)]...)
			for j := range v.Payload {
				v.Payload[j] &^= 0x20
			}
		}
		if k == 'I' {
			wantInj = append(wantInj, payload, payload)
		}
		want = append(want, v)
		if _, err := unix.Write(peer, packetMsg(3, id, 0, 0, payload)); err != nil {
			t.Fatalf("write message %d: %v", i, err)
		}
	}

	// Read verdicts until every id is covered, expanding batches.
	got := make([]verdictOut, 0, total)
	buf := make([]byte, 1<<20)
	for len(got) < total {
		n, err := unix.Read(peer, buf)
		if err != nil {
			t.Fatalf("reading verdicts after %d of %d: %v", len(got), total, err)
		}
		for _, v := range decodeVerdicts(t, buf[:n]) {
			if !v.Batch {
				if v.ID != uint32(len(got)+1) {
					t.Fatalf("verdict for id %d after %d verdicts: out of order", v.ID, len(got))
				}
				got = append(got, v)
				continue
			}
			if v.ID <= uint32(len(got)) {
				t.Fatalf("batch verdict up to id %d after %d verdicts: covers nothing new", v.ID, len(got))
			}
			for id := uint32(len(got) + 1); id <= v.ID; id++ {
				got = append(got, verdictOut{Queue: v.Queue, ID: id, Accept: v.Accept})
			}
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("loop() = %v, want nil after cancel", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantInj, inj.sent); diff != "" {
		t.Errorf("injected (-want +got):\n%s", diff)
	}
	if s := w.c.snapshot(); s.Packets != total || s.ParseErrors != 0 {
		t.Errorf("stats: packets %d, parse errors %d, want %d, 0", s.Packets, s.ParseErrors, total)
	}
}

// TestRawReceiveAllocs asserts that receiving a batch, handling every
// message in it and flushing the verdicts allocates nothing.
func TestRawReceiveAllocs(t *testing.T) {
	w, peer := rawPair(t, &fakeProc{}, nopInj{})
	var msgs [][]byte
	for i := range 8 {
		msgs = append(msgs, packetMsg(3, uint32(i+1), 0, 0, []byte("ADRI"[i%4:i%4+1])))
	}
	sink := make([]byte, 1<<16)
	allocs := testing.AllocsPerRun(100, func() {
		for _, m := range msgs {
			if _, err := unix.Write(peer, m); err != nil {
				t.Fatal(err)
			}
		}
		n, err := w.recvMany(unix.MSG_DONTWAIT)
		if err != nil || n != len(msgs) {
			t.Fatalf("recvMany = %d, %v, want %d, nil", n, err, len(msgs))
		}
		for i := range n {
			if err := w.parse(w.bufs[i][:w.msgs[i].Len], nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.pipe.flush(); err != nil {
			t.Fatal(err)
		}
		if _, err := unix.Read(peer, sink); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("recvmmsg+parse+flush allocs = %v, want 0", allocs)
	}
}

// BenchmarkRawReceive compares taking a drain of recvBatch small messages
// (SYN-sized packets) with one recvfrom per message and with recvmmsg.
// Only the receiving is timed.
func BenchmarkRawReceive(b *testing.B) {
	var msgs [][]byte
	for i := range recvBatch {
		msgs = append(msgs, packetMsg(3, uint32(i+1), 0, 0, make([]byte, 60)))
	}
	for _, bc := range []struct {
		name string
		recv func(w *rawWorker) (int, error)
	}{
		{"recvfrom", func(w *rawWorker) (int, error) {
			for i := range recvBatch {
				if _, err := w.recv(unix.MSG_DONTWAIT); err != nil {
					return i, err
				}
			}
			return recvBatch, nil
		}},
		{"recvmmsg", func(w *rawWorker) (int, error) { return w.recvMany(unix.MSG_DONTWAIT) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w, peer := rawPair(b, &fakeProc{}, nopInj{})
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				for _, m := range msgs {
					if _, err := unix.Write(peer, m); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				if n, err := bc.recv(w); err != nil || n != recvBatch {
					b.Fatalf("received %d, %v, want %d", n, err, recvBatch)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*recvBatch), "ns/msg")
		})
	}
}

// TestSocketTakesKernelMessagesOnly: a queue worker's netlink socket
// refuses messages from other netlink sockets (here one of our own, which
// as root could otherwise send to any port), so nothing but the kernel can
// hand the engine a packet or a verdict error.
func TestSocketTakesKernelMessagesOnly(t *testing.T) {
	w := &rawWorker{queue: 7, cfg: Config{RcvBuf: 1 << 20}}
	if err := w.openSocket(); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(w.fd)
	sa, err := unix.Getsockname(w.fd)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*unix.SockaddrNetlink).Pid

	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		t.Fatal(err)
	}
	// An NFQNL_MSG_PACKET-shaped message: header only.
	msg := make([]byte, 20)
	binary.NativeEndian.PutUint32(msg[0:], 20)
	binary.NativeEndian.PutUint16(msg[4:], 3<<8) // NFNL_SUBSYS_QUEUE << 8 | NFQNL_MSG_PACKET
	err = unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Pid: port})
	switch {
	case errors.Is(err, unix.EPERM):
		t.Skipf("sending to another netlink port needs CAP_NET_ADMIN: %v", err)
	case !errors.Is(err, unix.ECONNREFUSED):
		t.Fatalf("Sendto(queue socket, port %d) = %v, want %v", port, err, unix.ECONNREFUSED)
	}
}
