package trigger

import (
	"sync"
	"testing"
)

// The claimed queue keeps its runs in order and its array bounded under a
// stream of runs that never drains it: each instant brings two runs and
// the workers take two, one instant behind.
func TestClaimedQueueStaysBounded(t *testing.T) {
	s := &Scheduler{aheadAt: map[int64]*aheadGroup{}}
	s.work = sync.NewCond(&s.mu)
	var next int64 // the instant of the next run to take
	for at := range int64(100_000) {
		s.aheadAt[at] = &aheadGroup{runs: []*aheadRun{{j: job{due: at}}, {j: job{due: at}}}}
		s.aheadRuns += 2
		s.reserveLocked()
		s.startGroupLocked(at)
		if at == 0 {
			continue // one instant behind from here on
		}
		for range 2 {
			a, ok := s.takeClaimedLocked()
			if !ok {
				t.Fatalf("instant %d: no claimed run to take", at)
			}
			if a.j.due != next/2 {
				t.Fatalf("instant %d: took a run due at %d, want %d", at, a.j.due, next/2)
			}
			next++
		}
		if n := s.claimedReady.Load(); n != 2 {
			t.Fatalf("instant %d: %d runs queued, want 2", at, n)
		}
	}
	if c := cap(s.claimedRuns); c > 16 {
		t.Fatalf("the claimed queue's array holds %d runs for the 2 queued", c)
	}
}
