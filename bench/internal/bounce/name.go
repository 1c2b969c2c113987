package bounce

// Name is the bounce's row in the benchmarks' tables.
const Name = "bare bounce (floor: no cookie, no state)"
