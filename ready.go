package trigger

// readyQueue is a heap of due jobs: higher priority first, then boosted
// (retried or resumed) ones, then earlier due time.
//
// The heap holds 16-byte keys without pointers, and the jobs sit still in a
// slab that the keys index: when ten thousand CRON triggers come due at
// once, sifting moves small keys that the collector ignores instead of
// jobs whose ID strings need a write barrier per move while it runs.
type readyQueue struct {
	h    []readyKey
	jobs []job    // indexed by readyKey.slot
	free []uint32 // slots of jobs not in the heap
}

// keepJobs is the most job slots an empty queue keeps for reuse.
const keepJobs = 1024

type readyKey struct {
	due  int64  // Unix nanoseconds
	rank uint32 // lower first: see rankOf
	slot uint32
}

// rankOf orders priorities, higher first, and within one the boosted
// jobs first.
func rankOf(e *entry) uint32 {
	r := uint32(MaxPriority-int32(e.priority)) << 1
	if !e.boost {
		r |= 1
	}
	return r
}

func (k readyKey) less(o readyKey) bool {
	if k.rank != o.rank {
		return k.rank < o.rank
	}
	return k.due < o.due
}

func (q *readyQueue) len() int { return len(q.h) }

// peek returns the key of the first job. q must not be empty.
func (q *readyQueue) peek() readyKey { return q.h[0] }

func (q *readyQueue) push(j job) {
	var slot uint32
	if n := len(q.free); n > 0 {
		slot = q.free[n-1]
		q.free = q.free[:n-1]
		q.jobs[slot] = j
	} else {
		slot = uint32(len(q.jobs))
		q.jobs = append(q.jobs, j)
	}
	k := readyKey{due: j.due, rank: rankOf(&j.entry), slot: slot}
	i := len(q.h)
	q.h = append(q.h, k)
	for i > 0 {
		p := (i - 1) / 2
		if !k.less(q.h[p]) {
			break
		}
		q.h[i] = q.h[p]
		i = p
	}
	q.h[i] = k
}

func (q *readyQueue) pop() job {
	top := q.h[0].slot
	n := len(q.h) - 1
	k := q.h[n]
	q.h = q.h[:n]
	if n > 0 {
		i := 0
		for {
			c := 2*i + 1
			if c >= n {
				break
			}
			if c+1 < n && q.h[c+1].less(q.h[c]) {
				c++
			}
			if !q.h[c].less(k) {
				break
			}
			q.h[i] = q.h[c]
			i = c
		}
		q.h[i] = k
	}
	j := q.jobs[top]
	q.jobs[top] = job{}
	switch {
	case n == 0 && cap(q.jobs) > keepJobs:
		q.jobs, q.free = nil, nil // a burst is over: let its slab go
	case n == 0:
		q.jobs, q.free = q.jobs[:0], q.free[:0]
	default:
		q.free = append(q.free, top)
	}
	return j
}
