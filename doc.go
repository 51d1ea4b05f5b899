// Package trigger is an embeddable scheduler for persisted units of work.
//
// # Overview
//
// A [Scheduler] persists [Trigger] values ("run node N of workflow instance S
// at time T with payload P") in a pluggable [Store], arms the ones due soon
// in a hierarchical timing wheel, and when one is due claims it in the store
// (a lease with a fencing token) and runs it through the host's [Consumer] on
// a bounded pool of workers. A periodic scan and startup recovery read the
// store, so nothing is missed after a crash, a lost timer or the death of
// another node.
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
//	scheduled, retrying, waiting, running ── Cancel ──► canceled
//
// Completed, failed and canceled are final. A failed trigger is the dead
// letter: it stays in the store with its last error until [Scheduler.Retry]
// or retention purges it.
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
//   - Atomic outcomes: a run's outcome and its follow-up triggers are one
//     store write.
//   - Bounded memory: only triggers due within Config.Horizon are armed.
//
// # Thread safety
//
// A Scheduler is safe for concurrent use. Consumers run concurrently on up
// to Config.Workers goroutines and must be safe for concurrent use. Stores
// are safe for concurrent use.
package trigger
