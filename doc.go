// Package trigger is an embeddable scheduler for persisted units of work.
//
// # Overview
//
// A [Scheduler] persists [Trigger] values ("run node N of workflow instance S
// at time T with payload P") in a pluggable [Store], arms the ones due soon
// in a hierarchical timing wheel, claims each in the store (a lease with a
// fencing token) when it is due, or shortly before where that keeps its
// run on time (Config.ClaimAhead), and runs it when it is due through the
// host's [Consumer] on a bounded pool of workers. A periodic scan and
// startup recovery read the store, so nothing is missed after a crash, a
// lost timer or the death of another node.
//
//	store := memstore.New() // or boltstore.Open("app.db", nil)
//	s, err := trigger.New(store, trigger.ConsumerFunc(run), trigger.Config{})
//	if err != nil { ... }
//	s.Start(ctx)
//	defer s.Stop(ctx)
//	id, err := s.Schedule(ctx, trigger.Trigger{NodeID: "send-mail", DueAt: time.Now().Add(time.Minute)})
//
// # Triggers
//
// A trigger has a [Type] (NEXT, RETRY, LOOP, TIMER, CRON, MANUAL, EVENT) that
// tells the consumer why it exists, and a [State] that the store keeps:
//
//	Schedule ─► scheduled ──── due: claim ────► running ─── success ───► completed
//	              ▲   ▲                        │ │ │ ▲
//	              │   └── Snooze, Reschedule ──┘ │ │ └── lease expired: claimed
//	              │                              │ │     again (recovery)
//	              │     retrying ◄── error, ─────┘ │
//	              │        │    attempts left      │
//	              │        └── due: claim ──► running
//	              │                                │
//	              └── Retry ── failed ◄── error, no attempt left, or Fail
//
//	waiting (MANUAL/EVENT without a due time) ── Fire: claim ──► running
//	running ── WaitUntil ──► scheduled (at the time)
//	running ── WaitFor, WaitChildren ──► waiting ── Resume, timeout, last child ──► scheduled / running
//	scheduled, retrying, waiting, running ── Cancel ──► canceled
//
// A wait ([WaitUntil], [WaitFor], [WaitChildren]) ends the run and parks the
// trigger in the store, holding no worker; [Scheduler.Resume] delivers a
// token (even before the waiter parks), and the next run reads how the wait
// ended with [WaitResultFrom]. The store remembers a token, which is what
// makes Resume idempotent, for [Config.Retention] once no trigger waits for
// it. See [WaitStore].
//
// Completed, failed and canceled are final. A failed trigger is the dead
// letter: it stays in the store with its last error until [Scheduler.Retry]
// or retention purges it. Any trigger that is not final can be paused
// ([Scheduler.Pause]): it keeps its state but is not claimed when due until
// [Scheduler.Unpause] (Fire still runs it; a run in progress finishes).
//
// # Recurring and timed triggers
//
// A TIMER trigger runs once, at DueAt or Delay after it is scheduled.
//
// A CRON trigger runs at every occurrence of its Cron spec: a cron
// expression with five fields or six (leading seconds), a descriptor
// (@daily, @hourly, @every 90s), or "@name" for a schedule of
// Config.Schedules (a store keeps the name: any Go value with a Next method,
// such as a robfig/cron Schedule, can be named). Specs are parsed with
// github.com/robfig/cron/v3 and read in Trigger.TimeZone (or a CRON_TZ=
// prefix; UTC by default). Register it from every replica at start:
//
//	res, err := s.Register(ctx, trigger.Trigger{ID: "nightly-report", Cron: "0 3 * * *", TimeZone: "Europe/Berlin"})
//
// Registration is idempotent: the same definition changes nothing (not
// even the next due time, so that what was missed during a downtime is
// still known), a changed one updates the trigger in one atomic store write
// (a changed spec plans the next occurrence anew; a run in progress finishes
// first). The trigger is one record: each occurrence is claimed like any
// trigger and its outcome writes the next occurrence into the same record
// in the same store write, so an occurrence runs once across all nodes
// without leader election (at least once if a node dies mid-run). Runs never
// overlap: the next occurrence is written when a run ends. A failed
// occurrence is retried as usual, and when no attempt is left the trigger
// moves on to the next occurrence with the error in LastError: it never
// fails for good. Trigger.PlannedAt names the occurrence a run (or a retry)
// stands for; [OccurrenceFromContext] tells the consumer the same and
// whether the run is a misfire catch-up.
//
// An occurrence claimed more than Config.MisfireGrace (1m) after its due
// time is a misfire: the scheduler was down, or the previous run took
// longer than the interval. The trigger's MisfirePolicy (or Config.Misfire)
// decides: MisfireFireOnce (the default) runs once for all of them and goes
// on from the first occurrence after that run started; MisfireSkip skips to
// the next occurrence without running; MisfireFireAll runs each missed
// occurrence for its own scheduled time, at most Config.MisfireCap of them
// (the newest).
//
// Daylight saving time follows the classic cron daemons: a wall-clock time
// that is skipped when clocks go forward (02:30 in New York on the March
// change) fires at the instant of the jump, once; one that happens twice when
// they go back (01:30 on the November change) fires at its first
// occurrence only; a spec whose hour field matches every hour ("*/15 * * *
// *", @hourly) follows real time and fires in both passes of the repeated
// hour. Name the zone: "Local" is refused, as it differs between nodes.
//
// A LOOP trigger runs its node again Interval after each run until the
// consumer returns [Complete] (or MaxIterations runs completed, or it fails
// for good); Iteration, 0 during the first run, tells the consumer where it
// is.
//
// A run of a CRON or LOOP trigger may end in a wait like any other: the
// trigger parks, and when the wait ends the run goes on as the same
// occurrence (PlannedAt and [OccurrenceFromContext] still name it, and the
// misfire policy does not skip it halfway, however late the wait ended).
// Its outcome then plans the next occurrence after the one it stands for,
// and clears the wait. Registering the trigger again, as a restarting
// replica does, leaves a wait in progress as it is, with the payload its run
// checkpointed and its resumes delivered; a changed spec abandons it (the
// trigger is planned anew).
//
// # Stores
//
// The root package never imports a concrete store. store/memstore keeps
// triggers in memory (tests, ephemeral work); store/boltstore keeps them in a
// bbolt file (a single binary, durable). A store shared by several
// schedulers coordinates them through its claims. store/storetest is the
// conformance suite every store passes; run it on your own store with one
// call.
//
// # Delivery guarantees
//
//   - Persist first: Schedule returns once the store has the trigger.
//   - At least once, never twice at the same time: every path that starts a
//     trigger (its timer, the scan, Fire, recovery, another node) claims it
//     in the store first, and every later write of the run is fenced by the
//     claim's token. A run cut off by a crash runs again, with
//     Trigger.Recovered set: consumers must be idempotent.
//   - Nothing is silently dropped: an error or a panic goes through the
//     retry policy (exponential backoff with jitter, MaxAttempts) and ends in
//     the failed state, never in deletion. A full worker pool only delays.
//   - Atomic outcomes: a run's outcome and its follow-up triggers (and the
//     next occurrence of a CRON trigger) are one store write.
//   - Once per occurrence: a CRON trigger is one record whose occurrences
//     are claimed like any trigger; registering it from every replica is
//     idempotent.
//   - Bounded memory: only triggers due within Config.Horizon are armed.
//
// # Timing
//
// Triggers due within the horizon wait in a timing wheel with a 1 ms tick
// that fires each at its own instant, never before it. On Linux the
// wheel's driver sleeps on a timerfd, which wakes it to the tenth of a
// millisecond where Go's timers can be a millisecond late (and up to ten
// while a garbage collection marks); elsewhere it uses Go's timers.
//
// A Scheduler works inside a testing/synctest bubble, on the bubble's fake
// clock: started in a bubble (recognised by its clock in the year 2000),
// it uses Go's timers, which the bubble drives.
//
// # Thread safety
//
// A Scheduler is safe for concurrent use. Consumers run concurrently on up
// to Config.Workers goroutines and must be safe for concurrent use. Stores
// are safe for concurrent use.
package trigger
