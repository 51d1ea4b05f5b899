package trigger

import (
	"errors"
	"sync"
)

// The finisher.
//
// With a store that implements BatchFinisher (bbolt: its writes wait for a
// commit), a worker does not wait for its run's outcome to be written: it
// hands the outcome over and takes the next trigger. The finisher goroutine
// records the outcomes handed over in groups, one FinishBatch call each, up
// to groupsInFlight groups at once, so a commit carries many outcomes
// however few workers there are. Until its outcome is recorded a run still
// counts as running here: its lease is extended by the heartbeat, a scan
// does not queue it again, and its queue slot stays taken. At most maxDone
// outcomes wait; a worker that would exceed that waits for room
// (backpressure, never loss). Stop lets the finisher record every outcome
// handed over before it returns.
//
// With another store (memstore, whose writes cost no I/O) each worker
// records its own outcome: handing it over would only add a hop, and one
// finisher doing the writes of every worker becomes the bottleneck at
// 100,000 runs a second.

// done is a run whose outcome awaits recording.
type done struct {
	t Trigger // the scheduler's copy, as claimed
	o Outcome
	v verdict
	j job
}

// maxDone returns how many outcomes may wait for the finisher, besides the
// groups being recorded.
func (s *Scheduler) maxDone() int { return max(4*s.cfg.Workers, 64) }

// handOver queues d for the finisher, waiting while the queue is full.
func (s *Scheduler) handOver(d done) {
	s.mu.Lock()
	for len(s.dones) >= s.maxDone() {
		s.doneCond.Wait()
	}
	s.dones = append(s.dones, d)
	s.running[d.t.ID] = run{token: d.t.Token} // the worker's slot goes on to its next trigger
	if len(s.dones) == 1 {
		s.doneCond.Broadcast()
	}
	s.mu.Unlock()
}

// groupsInFlight is how many groups the finisher records at once: while
// one commits, the next is applied (a store that pipelines its commits, as
// bbolt's committer does, needs a second group to work on).
const groupsInFlight = 4

// finisher records the outcomes handed over until the workers have
// returned and none is left.
func (s *Scheduler) finisher() {
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, groupsInFlight)
	for {
		slots <- struct{}{} // a free slot first: what waits stays in dones
		s.mu.Lock()
		for len(s.dones) == 0 && !s.workersDone {
			s.doneCond.Wait()
		}
		if len(s.dones) == 0 {
			s.mu.Unlock()
			return
		}
		batch := s.dones
		s.dones = nil
		s.doneCond.Broadcast() // room for the workers waiting in handOver
		s.mu.Unlock()

		wg.Go(func() {
			defer func() { <-slots }()
			s.record(batch)
		})
	}
}

// record writes the outcomes of batch and ends their runs.
func (s *Scheduler) record(batch []done) {
	if len(batch) == 1 {
		d := &batch[0]
		d.o = s.finish(&d.t, d.o, &d.v)
		s.endRun(&d.t, &d.j, &d.o)
		return
	}
	fs := make([]Finishing, len(batch))
	for i, d := range batch {
		fs[i] = Finishing{ID: d.t.ID, Token: d.t.Token, Outcome: d.o}
	}
	errs := s.batches.FinishBatch(s.io, fs)
	for i := range batch {
		d := &batch[i]
		switch err := errs[i]; {
		case err == nil:
			s.logOutcome(&d.t, d.o, nil)
		case errors.Is(err, ErrConflict), errors.Is(err, ErrInvalid), errors.Is(err, ErrDuplicate):
			// Outcomes that need another look (a spec changed under a
			// CRON run, a refused follow-up) take the single path, which
			// knows how to redo them.
			d.o = s.finish(&d.t, d.o, &d.v)
		default:
			s.logOutcome(&d.t, d.o, err)
		}
		s.endRun(&d.t, &d.j, &d.o)
	}
}
