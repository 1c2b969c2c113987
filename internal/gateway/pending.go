package gateway

import (
	"sync"

	"github.com/synwall/synwall/internal/gateway/header"
)

// pendingPool holds client payloads while a flow waits for its server: a
// fixed number of fixed-size slots and a free list. The flow table owns it
// (flowTable.hold).
type pendingPool struct {
	mu    sync.Mutex
	data  []byte
	len   []uint16
	seq   []uint32
	flags []uint8  // FIN, PSH, URG, ECE and CWR of the held segment
	urg   []uint16 // its urgent pointer (RFC 9293 §3.1)
	freeL []int32
}

func (p *pendingPool) init(n int) {
	p.data = make([]byte, n*PendingSize)
	p.len = make([]uint16, n)
	p.seq = make([]uint32, n)
	p.flags = make([]uint8, n)
	p.urg = make([]uint16, n)
	p.freeL = make([]int32, n)
	for i := range p.freeL {
		p.freeL[i] = int32(n - 1 - i)
	}
}

// put stores payload with its sequence number, flags and urgent pointer
// and returns the slot, or -1 when the pool is full or the payload too big.
func (p *pendingPool) put(seq uint32, payload []byte, flags uint8, urg uint16) int32 {
	if len(payload) > PendingSize {
		return -1
	}
	p.mu.Lock()
	n := len(p.freeL)
	if n == 0 {
		p.mu.Unlock()
		return -1
	}
	s := p.freeL[n-1]
	p.freeL = p.freeL[:n-1]
	p.mu.Unlock()
	copy(p.data[int(s)*PendingSize:], payload)
	p.len[s] = uint16(len(payload))
	p.seq[s] = seq
	p.flags[s], p.urg[s] = flags&heldFlags, urg
	return s
}

// heldFlags are the flags a held segment keeps; it is replayed with ACK
// and these.
const heldFlags = header.FIN | header.PSH | header.URG | header.ECE | header.CWR

// extra returns the flags and urgent pointer of slot s.
func (p *pendingPool) extra(s int32) (flags uint8, urg uint16) { return p.flags[s], p.urg[s] }

func (p *pendingPool) get(s int32) (seq uint32, payload []byte) {
	o := int(s) * PendingSize
	return p.seq[s], p.data[o : o+int(p.len[s])]
}

func (p *pendingPool) free(s int32) {
	p.mu.Lock()
	p.freeL = append(p.freeL, s)
	p.mu.Unlock()
}

// slots returns the pool's size.
func (p *pendingPool) slots() int { return len(p.len) }

// freeCount returns how many slots are free.
func (p *pendingPool) freeCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.freeL)
}
