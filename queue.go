package trigger

import (
	"log/slog"
	"math"
	"time"
)

// Queues and priorities in the ready queue.
//
// The ready queue orders due triggers by priority, then puts retried and
// resumed triggers (boost) ahead of new work of the same priority, then by
// due time. A trigger armed by a scan carries no boost: the store's due
// order has already put it at its due time.
//
// Config.QueueLimits caps the runs of a queue on this scheduler. A slot is
// taken when a worker takes the trigger (before its claim) and freed when
// its run ends (it finished, parked, failed or was given back) or its claim
// failed. A trigger whose queue is full waits in that queue's own heap,
// unclaimed, and moves back to the ready queue when a slot frees. A trigger
// brought in by a scan has no known queue until it is claimed: if its queue
// is full then, the claim is given back (without using an attempt) and the
// trigger waits like the others.

// unknownQueue marks an entry whose queue is unknown until its claim.
const unknownQueue = math.MaxUint16

// queues holds the per-queue limits. Only limited queues have a state;
// index 0 stands for every queue without a limit.
type queues struct {
	index map[string]uint16 // limited queue name -> its index in q, from 1
	q     []queueState
}

type queueState struct {
	name    string
	limit   int
	running int        // slots taken
	blocked readyQueue // due, waiting for a slot
}

func newQueues(limits map[string]int) queues {
	qs := queues{q: make([]queueState, 1, len(limits)+1)}
	if len(limits) == 0 {
		return qs
	}
	qs.index = make(map[string]uint16, len(limits))
	for name, limit := range limits {
		qs.index[name] = uint16(len(qs.q))
		qs.q = append(qs.q, queueState{name: name, limit: limit})
	}
	return qs
}

// checkQueueLimits reports a bad Config.QueueLimits.
func checkQueueLimits(limits map[string]int) error {
	if len(limits) >= unknownQueue {
		return invalidf("config: QueueLimits has %d queues; at most %d are allowed", len(limits), unknownQueue-1)
	}
	for name, limit := range limits {
		if limit <= 0 {
			return invalidf("config: QueueLimits[%q] = %d; a limit must be positive (leave the queue out for no limit)", name, limit)
		}
	}
	return nil
}

// entryOf returns the wheel entry of t.
func (s *Scheduler) entryOf(t *Trigger, boost bool) entry {
	return entry{id: t.ID, priority: int16(t.Priority), queue: s.queues.index[t.Queue], boost: boost}
}

// refEntry returns the wheel entry of a trigger found by a scan.
func (s *Scheduler) refEntry(r Ref) entry {
	e := entry{id: r.ID, priority: int16(r.Priority)}
	if len(s.queues.index) > 0 {
		e.queue = unknownQueue
	}
	return e
}

// armTrigger arms t at due as armNew does, as of now, and reports whether
// it woke a worker or the wheel driver (see yieldIf). A trigger just
// stored waiting for a key may have been resumed by the write that stored
// it (the resume came first): it is read back and armed if so.
func (s *Scheduler) armTrigger(t *Trigger, due time.Time, boost bool, now time.Time) bool {
	if due.IsZero() && t.WaitKey != "" {
		return s.armStored(s.io, t.ID, true)
	}
	return s.armNew(s.entryOf(t, boost), due, now)
}

// popReadyLocked takes the first ready trigger whose queue has a free slot,
// and takes the slot; the triggers of full queues it meets move to their
// queue's heap. It reports false when none is left.
func (s *Scheduler) popReadyLocked() (job, bool) {
	for s.ready.len() > 0 {
		j := s.ready.pop()
		q := j.queue
		if q == 0 || q == unknownQueue {
			return j, true
		}
		st := &s.queues.q[q]
		if st.running >= st.limit {
			st.blocked.push(j)
			continue
		}
		st.running++
		return j, true
	}
	return job{}, false
}

// takeSlotLocked counts a run of queue q.
func (s *Scheduler) takeSlotLocked(q uint16) {
	if q != 0 && q != unknownQueue {
		s.queues.q[q].running++
	}
}

// freeSlotLocked frees a slot of queue q and lets the next trigger waiting
// for one back into the ready queue.
func (s *Scheduler) freeSlotLocked(q uint16) {
	if q == 0 || q == unknownQueue {
		return
	}
	st := &s.queues.q[q]
	st.running--
	if st.blocked.len() > 0 && st.running < st.limit {
		s.ready.push(st.blocked.pop())
		s.work.Signal()
	}
}

// queueSlot takes a slot for a claimed trigger whose queue was unknown
// before its claim. It reports false when the queue is full: the claim is
// then given back and the trigger waits for a slot.
func (s *Scheduler) queueSlot(t *Trigger, j *job) bool {
	if j.queue != unknownQueue {
		return true
	}
	s.mu.Lock()
	q := s.queues.index[t.Queue]
	j.queue = q
	if q == 0 {
		s.mu.Unlock()
		return true
	}
	if st := &s.queues.q[q]; st.running < st.limit {
		st.running++
		s.mu.Unlock()
		return true
	}
	s.mu.Unlock()
	now := time.Now()
	if err := s.store.Finish(s.io, t.ID, t.Token, Outcome{Kind: OutcomeSnooze, Now: now, At: notBefore(now, j.due)}); err != nil {
		s.log.Warn("could not give back a trigger whose queue is full; it runs when its lease expires",
			slog.String("trigger_id", t.ID), slog.String("queue", t.Queue), slog.Any("error", err))
		s.mu.Lock()
		s.dequeueLocked(j)
		s.mu.Unlock()
		return false
	}
	s.mu.Lock()
	st := &s.queues.q[q]
	st.blocked.push(*j)
	if st.running < st.limit { // a slot freed meanwhile
		s.ready.push(st.blocked.pop())
		s.work.Signal()
	}
	s.mu.Unlock()
	return false
}
