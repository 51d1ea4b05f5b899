package trigger

import (
	"cmp"
	"context"
	"iter"
	"slices"
	"time"
)

// Claiming ahead: a trigger armed in the wheel may be claimed ClaimAhead
// before its due time, and its run then starts at that time. Everything
// the run needs is made with the claim, so that when thousands of triggers
// fall due at once (the CRON triggers of one second), their runs start one
// after the other without allocating, computing or looking anything up,
// and their outcomes are recorded once they have all started.
//
// It pays where claiming at the due time would make runs late: when the
// store's claims are slow (a commit to disk, a round trip to a server), or
// when triggers share a due instant, whose claims at that instant would
// wait for one another. Elsewhere it costs: the run is held in memory
// meanwhile, with its context, in a group with a timer of its own. With
// the in-memory store and a hundred thousand triggers a second, each due
// at an instant of its own, a run claimed ahead took 11.1-11.4 µs of
// processor time against 8.8-9.4 µs claimed at its due time (getrusage,
// a million triggers). So a trigger's claim timer is armed ClaimAhead
// before its due time, and when it fires, the trigger is claimed then only
// where it pays (claimsAhead); otherwise its timer is armed again for its
// due time. Deciding then, not when the trigger is armed, lets the
// decision use what the claims of the meantime showed.

// slowClaim is how long a claim takes, at least, for claiming ahead to pay
// for every trigger: longer than the wheel driver's shortest sleep, which
// lateness includes anyway. An in-memory claim takes microseconds; a
// commit to disk or a round trip to a server takes longer.
const slowClaim = 50 * time.Microsecond

// Scheduler.slowClaims is the share of recent claims that were slow, in
// 1/1024ths (allSlow: all of them), averaged over about the last
// claimsAverage claims. It starts at allSlow, so that triggers are claimed
// ahead until claims are timed.
const (
	allSlow       = 1 << 10
	claimsAverage = 16
)

// instantSlots is the size of the table of the due instants of recent
// claim timers (Scheduler.instants), by which claimTimerLocked sees a
// trigger share its due instant with one armed before it.
const (
	instantBits  = 12
	instantSlots = 1 << instantBits
)

// claimTimerLocked sets e up for the claim timer of its trigger, due at
// due, and returns the timer's instant: ClaimAhead before due (e.ahead),
// or due if ClaimAhead is zero. It marks e shared if a trigger armed
// before it was due at the same instant: of triggers sharing an instant,
// the first armed is claimed at it if claims are fast, the others ahead.
// The table of instants forgets an instant when a later one takes its
// slot; a trigger then may be claimed at its due time, which costs it a
// claim's delay, not a wrong run. s.wmu must be held.
func (s *Scheduler) claimTimerLocked(e *entry, due time.Time) time.Time {
	if s.cfg.ClaimAhead == 0 {
		return due
	}
	at := due.UnixNano()
	slot := &s.instants[uint64(at)*0x9e3779b97f4a7c15>>(64-instantBits)]
	e.shared = *slot == at
	*slot = at
	e.ahead = true
	return due.Add(-s.cfg.ClaimAhead)
}

// claimsAhead reports whether the trigger of e, whose claim timer fired
// ahead of its due time, is to be claimed now: it shares its due instant,
// or claims are slow.
func (s *Scheduler) claimsAhead(e *entry) bool {
	return e.shared || s.slowClaims.Load() > allSlow/2
}

// claimAtDue reports whether the trigger of e, due at due (Unix
// nanoseconds), whose claim timer has come by now, is to be claimed at
// due rather than now: its timer was armed ahead, due has not come, and
// claimsAhead says no. It then clears e.ahead, for the caller to arm e's
// timer again at due.
func (s *Scheduler) claimAtDue(e *entry, due, now int64) bool {
	if !e.ahead || due <= now || s.claimsAhead(e) {
		return false
	}
	e.ahead = false
	return true
}

// timeClaim adds a claim that took d to the share of slow claims. Once
// claims are fast the share stays zero, and timing one writes nothing
// that workers would contend on.
func (s *Scheduler) timeClaim(d time.Duration) {
	v := s.slowClaims.Load()
	switch {
	case d >= slowClaim:
		s.slowClaims.Store(v + (allSlow-v)/claimsAverage)
	case v > 0:
		s.slowClaims.Store(v - (v+claimsAverage-1)/claimsAverage)
	}
}

// aheadRun is a trigger claimed ahead of its due time, waiting for it: the
// run's context, with the trigger as claimed, and the occurrence a CRON run
// stands for.
//
// It holds one copy of the trigger, rc.t, the consumer's. The worker copies
// it for itself when the run starts, before the consumer can change it; a
// run's outcome is deferred (deferLocked) only if the consumer left its
// copy as it was, and is then recorded from that copy, which Consume may no
// longer change once it has returned. Ten thousand CRON triggers claimed at
// once thus cost half a kilobyte less each: fewer collections while they
// start.
type aheadRun struct {
	j      job
	rc     runContext              // rc.t is the trigger as claimed
	cancel context.CancelCauseFunc // rc.Context's
	// oc is the occurrence a run of a CRON trigger stands for if it starts
	// within Config.MisfireGrace of its due time, decided as of that time;
	// nil for other triggers, or when the run is to decide (see execute).
	oc *occurrence
	// dropped: the claim was lost or the trigger canceled before the run
	// started (see dropAheadLocked); a worker skips it.
	dropped bool
}

// aheadGroup is the runs claimed ahead that fall due at the same instant,
// as the CRON triggers of one schedule do. One timer, at that instant,
// starts them all: it moves them to the claimed queue
// (Scheduler.claimedRuns).
type aheadGroup struct {
	runs []*aheadRun
}

// keepGroups is how many emptied groups the scheduler keeps for reuse:
// enough that a hundred thousand triggers a second, each due at an instant
// of its own and so in a group of its own, reuse groups rather than
// allocate them. keepGroupRuns is the longest list of runs a kept group
// keeps.
const (
	keepGroups    = 1 << 12
	keepGroupRuns = 1 << 10
)

// claimedAhead arms the run of trigger t of job j, claimed ahead of its due
// time, to start at that time; a scheduler stopping meanwhile gives it
// back.
func (s *Scheduler) claimedAhead(t *Trigger, j *job) {
	a := &aheadRun{j: *j, rc: runContext{t: *t, id: t.ID, token: t.Token}}
	a.rc.Context, a.cancel = context.WithCancelCause(s.io)
	if t.Type == TypeCron {
		if oc, skip := s.claimed(&a.rc.t, time.Unix(0, j.due)); skip == nil && !oc.early {
			a.oc = oc
		}
	}
	s.mu.Lock()
	if s.phase != phaseStarted {
		s.mu.Unlock()
		a.cancel(nil)
		s.release(*t, j.due)
		return
	}
	g, armed := s.aheadAt[j.due]
	if !armed {
		if n := len(s.groups); n > 0 {
			g, s.groups = s.groups[n-1], s.groups[:n-1]
		} else {
			g = new(aheadGroup)
		}
		s.aheadAt[j.due] = g
	}
	g.runs = append(g.runs, a)
	s.aheadRuns++
	s.reserveLocked()
	s.running[t.ID] = run{token: t.Token}
	s.mu.Unlock()
	if !armed {
		s.wmu.Lock()
		s.addTimerLocked(entry{claimed: true}, time.Unix(0, j.due))
		s.wmu.Unlock()
	}
}

// reserveLocked makes room, in the claimed queue and in the list of
// deferred outcomes, for every run claimed ahead: so that the first time
// ten thousand of them fall due at once, those lists grow (and the memory
// they grow into is first touched) with the claims, before the due time,
// not while the runs start. s.mu must be held.
func (s *Scheduler) reserveLocked() {
	s.compactClaimedLocked()
	if n := len(s.claimedRuns) + s.aheadRuns; n > cap(s.claimedRuns) {
		s.claimedRuns = slices.Grow(s.claimedRuns, n-len(s.claimedRuns))
	}
	if n := min(len(s.deferred)+s.aheadRuns, maxDeferred); n > cap(s.deferred) {
		s.deferred = slices.Grow(s.deferred, n-len(s.deferred))
	}
}

// startGroupLocked moves the runs claimed ahead that fell due at at (Unix
// nanoseconds) to the claimed queue, in priority order, for the workers to
// start. s.mu must be held.
func (s *Scheduler) startGroupLocked(at int64) {
	g := s.aheadAt[at]
	if g == nil {
		return // given back by Stop
	}
	delete(s.aheadAt, at)
	runs := g.runs
	s.aheadRuns -= len(runs)
	if slices.ContainsFunc(runs, func(a *aheadRun) bool { return rankOf(&a.j.entry) != rankOf(&runs[0].j.entry) }) {
		slices.SortStableFunc(runs, func(a, b *aheadRun) int {
			return cmp.Compare(rankOf(&a.j.entry), rankOf(&b.j.entry))
		})
	}
	s.compactClaimedLocked()
	s.claimedRuns = append(s.claimedRuns, runs...)
	s.claimedReady.Store(int64(len(s.claimedRuns) - s.claimedHead))
	clear(runs)
	g.runs = runs[:0]
	if cap(runs) > keepGroupRuns {
		g.runs = nil
	}
	if len(s.groups) < keepGroups {
		s.groups = append(s.groups, g)
	}
	s.work.Broadcast()
}

// compactClaimedLocked moves the runs of the claimed queue to the front of
// its array once the runs taken before them fill half of it or more. Runs
// are taken from the front and appended at the back: reset only when empty,
// the array would grow without end under a stream of runs that never
// drains it. Each run is moved at most once on average. s.mu must be held.
func (s *Scheduler) compactClaimedLocked() {
	if h := s.claimedHead; h > 0 && 2*h >= len(s.claimedRuns) {
		n := copy(s.claimedRuns, s.claimedRuns[h:])
		clear(s.claimedRuns[n:])
		s.claimedRuns, s.claimedHead = s.claimedRuns[:n], 0
	}
}

// takeClaimedLocked takes the next claimed run to start, unless the ready
// queue's first job goes first (a higher priority, or due no later: the
// first trigger of a burst's instant, claimed at it, goes before the runs
// claimed ahead for it), and reports whether it took one. s.mu must be
// held.
func (s *Scheduler) takeClaimedLocked() (*aheadRun, bool) {
	for s.claimedHead < len(s.claimedRuns) {
		a := s.claimedRuns[s.claimedHead]
		if !a.dropped && s.ready.len() > 0 && !(readyKey{due: a.j.due, rank: rankOf(&a.j.entry)}).less(s.ready.peek()) {
			return nil, false
		}
		s.claimedRuns[s.claimedHead] = nil
		s.claimedHead++
		s.claimedReady.Add(-1)
		if !a.dropped {
			return a, true
		}
	}
	return nil, false
}

// readyDueLocked reports whether the ready queue's first job is due at now.
// s.mu must be held.
func (s *Scheduler) readyDueLocked(now time.Time) bool {
	return s.ready.len() > 0 && s.ready.peek().due <= now.UnixNano()
}

// claimedWaiting reports whether claimed runs wait to start. s.mu must be
// held.
func (s *Scheduler) claimedWaiting() bool { return s.claimedHead < len(s.claimedRuns) }

// aheadLocked yields every run claimed ahead and not started, but those
// dropped: waiting for their due time, or due and waiting for a worker.
// s.mu must be held.
func (s *Scheduler) aheadLocked() iter.Seq[*aheadRun] {
	return func(yield func(*aheadRun) bool) {
		for _, g := range s.aheadAt {
			for _, a := range g.runs {
				if !a.dropped && !yield(a) {
					return
				}
			}
		}
		for _, a := range s.claimedRuns[s.claimedHead:] {
			if !a.dropped && !yield(a) {
				return
			}
		}
	}
}

// dropAheadLocked drops every run claimed ahead and not started of which
// match holds: its claim is lost or its trigger canceled. s.mu must be
// held.
func (s *Scheduler) dropAheadLocked(match func(id string, token uint64) bool, cause error) {
	for a := range s.aheadLocked() {
		if match(a.rc.id, a.rc.token) {
			a.dropped = true
			delete(s.running, a.rc.id)
			s.forgetLocked(&a.j)
			a.cancel(cause)
		}
	}
}

// takeAllAheadLocked takes every run claimed ahead and not started, for a
// stopping scheduler to give back. s.mu must be held.
func (s *Scheduler) takeAllAheadLocked() []firedJob {
	var out []firedJob
	for a := range s.aheadLocked() {
		a.cancel(nil)
		out = append(out, firedJob{t: a.rc.t, j: a.j})
	}
	clear(s.aheadAt)
	s.aheadRuns = 0
	s.claimedRuns, s.claimedHead = nil, 0
	s.claimedReady.Store(0)
	return out
}

// maxDeferred bounds the outcomes deferred while claimed runs wait to
// start (each holds its aheadRun, about 700 bytes, until recorded: eleven
// megabytes at most). It is more than the ten thousand CRON triggers of
// one second, whose runs all start before any of their outcomes is
// recorded; past it, each run records its own.
const maxDeferred = 1 << 14

// recordShare is how many deferred outcomes a worker records before it
// looks again for claimed runs to start.
const recordShare = 64

// deferredRun is a run whose outcome is to be recorded later: the trigger
// claimed ahead (a) and what its run came to.
type deferredRun struct {
	a *aheadRun
	v verdict
}

// deferLocked defers recording the outcome of the run of t, claimed ahead
// as a, that came to v, if more runs claimed ahead wait to
// start: when ten thousand of them fall due at once, every one starts
// before the outcomes (the store writes, the next CRON occurrences) are
// recorded, rather than each waiting for the outcomes of those before it.
// Until it is recorded, the run still counts as running here, like one
// handed over to the finisher. The outcome is recorded from the consumer's
// copy of the trigger, so it is deferred only if that copy is still the
// same as t, the scheduler's. It reports whether it deferred the outcome.
// The worker calls it with s.mu held for the next job, so that deferring
// takes no lock of its own.
func (s *Scheduler) deferLocked(a *aheadRun, t *Trigger, v *verdict) bool {
	if s.phase != phaseStarted || !s.claimedWaiting() || len(s.deferred) >= maxDeferred || !sameTrigger(&a.rc.t, t) {
		return false
	}
	s.deferred = append(s.deferred, deferredRun{a, *v})
	return true // its entry in the running map, from its claim, stays
}

// recordDeferred records the deferred outcomes of batch and ends their
// runs.
func (s *Scheduler) recordDeferred(batch []deferredRun) {
	for _, d := range batch {
		// finish may change its trigger, and the consumer may still read
		// its copy: record from a copy of that copy.
		t := d.a.rc.t
		o := s.finish(&t, s.decide(&t, &d.v), &d.v)
		s.endRun(&t, &d.a.j, &o)
	}
}
