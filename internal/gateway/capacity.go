package gateway

// Capacity is how full the engine's fixed tables are.
type Capacity struct {
	CacheEntries  int   // SYN cache entries in use (answered SYNs not yet completed or replaced)
	CacheCapacity int   // buckets × entries per bucket
	Flows         int64 // flows in the table (Stats.FlowsActive)
	FlowsCapacity int
	PendingUsed   int // client segments held during handshakes
	PendingSlots  int
}

// Capacity counts the SYN cache entries in use (taking each bucket's lock
// in turn, a pass over the tags: call it about once a second, not per
// packet) and reports the other tables' fill.
func (e *Engine) Capacity() Capacity {
	c := Capacity{
		CacheCapacity: e.cache.nbuckets * e.cache.per,
		Flows:         max(e.flows.st.active.Load(), 0),
		FlowsCapacity: len(e.flows.slots),
		PendingSlots:  e.flows.pending.slots(),
	}
	for _, n := range e.cache.load() {
		c.CacheEntries += n
	}
	c.PendingUsed = c.PendingSlots - e.flows.pending.freeCount()
	return c
}
