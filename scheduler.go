package trigger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/triggerkit/trigger/internal/alarm"
	"github.com/triggerkit/trigger/internal/backoff"
	"github.com/triggerkit/trigger/internal/slicepool"
	"github.com/triggerkit/trigger/internal/wheel"
)

// Scheduler persists triggers in a Store, arms those due soon in a timing
// wheel, claims each when it is due and runs it through a Consumer on a
// bounded pool of workers. It is safe for concurrent use.
//
// Every path that can start a trigger (its timer, the periodic scan, Fire,
// recovery at start, another scheduler on the same store) goes through the
// store's claim, so a trigger never runs twice at once.
type Scheduler struct {
	store    Store
	consumer Consumer
	cfg      Config
	log      *slog.Logger
	backoff  backoff.Policy

	// wmu guards the timing wheel and the arming window. It is never held
	// with mu: the wheel driver takes what fired out of the wheel under
	// wmu, then queues it under mu, so that arming (Schedule) and firing
	// do not wait for the workers, nor they for them.
	wmu        sync.Mutex
	wheel      *wheel.Wheel[entry]
	armedUntil time.Time // triggers due by then are armed when scheduled
	// wakeAt is when the wheel wants advancing next (Unix nanoseconds):
	// written under wmu, read without it by the workers (helpAdvance).
	wakeAt atomic.Int64
	// instants holds the due instants of recent claim timers, each in
	// the slot its hash picks (see claimTimerLocked).
	instants [instantSlots]int64
	// slowClaims is the share of recent claims that took slowClaim or
	// longer, in 1/1024ths (see timeClaim).
	slowClaims atomic.Int32

	mu   sync.Mutex
	work *sync.Cond // signaled when ready or fired grows, or on stop
	// waiting is how many workers wait on work: a Signal wakes one if
	// it is above zero.
	waiting int
	phase   phase
	// queued holds the triggers in the ready queue or running here, so a
	// scan does not queue them twice. Triggers armed in the wheel are not
	// in it: a map entry per armed trigger would cost a random memory access
	// on every Schedule and bytes for every trigger within the horizon. A
	// trigger armed twice (a scan racing Schedule) or a stale timer (of a
	// trigger canceled or fired early) is harmless: its claim fails.
	queued map[string]uint64 // the seq of its job
	seq    uint64            // the last job's seq
	ready  readyQueue        // due, not yet claimed
	fired  []firedJob        // claimed by Fire, not yet started
	// Runs claimed ahead of their due times (ahead.go): aheadAt groups
	// those not yet due by due time; claimedRuns[claimedHead:] are due,
	// to start in order; groups keeps emptied groups for reuse.
	aheadAt     map[int64]*aheadGroup
	aheadRuns   int // how many runs aheadAt holds
	claimedRuns []*aheadRun
	claimedHead int
	groups      []*aheadGroup
	// deferred holds runs ended while claimed runs were waiting to start:
	// their outcomes are recorded once none waits (see deferLocked).
	deferred []deferredRun
	// claimedReady is len(claimedRuns) - claimedHead, read without mu at
	// the end of every run.
	claimedReady atomic.Int64
	running      map[string]run // claimed runs no worker holds: see run
	slots        []*slot        // each worker's run
	queues       queues         // per-queue concurrency limits; see queue.go
	shutdown     atomic.Bool    // Stop's context ended: runs are canceled
	// batches is the store as a BatchFinisher, or nil. With one, runs hand
	// their outcomes to the finisher (finisher.go): dones are those that
	// await it; doneCond is signaled when it gains its first or loses
	// them all.
	batches     BatchFinisher
	dones       []done
	doneCond    *sync.Cond
	workersDone bool // no run will be handed over any more
	moreDue     bool // the last scan left overdue triggers in the store

	alarm    *alarm.Alarm  // wakes the wheel driver; made by Start
	poked    atomic.Bool   // the driver was woken to look at the wheel again
	scanNow  chan struct{} // pokes the scanner
	stopping chan struct{} // closed by Stop
	idle     chan struct{} // closed when no run can start or be in progress
	stopped  chan struct{} // closed when every goroutine has returned

	// io carries the values of Start's context and is never canceled: it is
	// the context of store calls and the parent of every run's context (a
	// run is canceled through its own cancel func, which keeps runs from
	// contending on a shared parent).
	io   context.Context
	wg   sync.WaitGroup // workers, wheel and scan loops
	hbWG sync.WaitGroup // the heartbeat, which outlives the workers
}

type phase uint8

const (
	phaseNew phase = iota
	phaseStarted
	phaseStopped
)

// entry is what the wheel and the ready queue hold for a trigger: just
// enough to claim it and to order it.
//
// A trigger is armed ClaimAhead before its due time (ahead set), to be
// claimed then or armed again for its due time (see claimsAhead). The
// runs claimed ahead that fall due at the same instant share one timer,
// whose entry has claimed set and no id (see claimedAhead). It is 24
// bytes, as a wheel node holds one.
type entry struct {
	id       string
	priority int16  // Trigger.Priority, which fits
	queue    uint16 // see queues.index; 0: not limited
	boost    bool   // retried or resumed: ahead of new work of its priority
	claimed  bool   // the timer of a group of runs claimed ahead
	ahead    bool   // armed ClaimAhead before its due time
	shared   bool   // due at an instant a trigger armed before it shares
}

// job is a due trigger on its way to a run: in the ready queue, in a full
// queue's heap, or taken by a worker.
type job struct {
	entry
	due int64  // Unix nanoseconds; orders the ready queue
	seq uint64 // tells this job from a later one of the same trigger in queued
}

// firedJob is a trigger claimed by Fire, waiting for a worker.
type firedJob struct {
	t Trigger
	j job
}

// Runs: what the heartbeat extends, and Cancel and Stop stop, is the runs
// claimed here. A worker's run is in its slot, from when it takes the job
// until the run ends; the slot has a lock of its own, which the worker takes
// twice a run (uncontended), so that the scheduler's lock guards no map
// write per run. Runs that no worker holds (claimed by Fire or ahead of
// their due time and not yet taken, or run and awaiting the finisher) are
// in the running map. Locks: mu before a slot's.

// run is a claimed run that no worker holds.
type run struct {
	token  uint64
	cancel context.CancelCauseFunc // nil when no consumer runs
}

// slot is a worker's run; id is empty when it has none, and token zero
// while its claim is under way.
type slot struct {
	mu     sync.Mutex
	id     string
	token  uint64
	cancel context.CancelCauseFunc
}

func (sl *slot) set(id string, token uint64, cancel context.CancelCauseFunc) {
	sl.mu.Lock()
	sl.id, sl.token, sl.cancel = id, token, cancel
	sl.mu.Unlock()
}

// cancelRuns cancels with cause every run here of trigger id, or only the
// one with the given token if it is not zero.
func (s *Scheduler) cancelRuns(id string, token uint64, cause error) {
	s.cancelWhere(func(rid string, rtoken uint64) bool {
		return rid == id && (token == 0 || rtoken == token)
	}, cause)
}

// cancelWhere cancels with cause every run here, in the running map or in
// a worker's slot, of which match holds. A run not started yet (claimed
// ahead of its due time, or by Fire) is dropped: no worker runs it. (On
// shutdown, the workers give those back instead.)
func (s *Scheduler) cancelWhere(match func(id string, token uint64) bool, cause error) {
	s.mu.Lock()
	for id, r := range s.running {
		if r.cancel != nil && match(id, r.token) {
			r.cancel(cause)
		}
	}
	if cause != errShutdown {
		s.dropAheadLocked(match, cause)
		s.dropFiredLocked(match)
	}
	s.mu.Unlock()
	for _, sl := range s.slots {
		sl.mu.Lock()
		if sl.cancel != nil && match(sl.id, sl.token) {
			sl.cancel(cause)
		}
		sl.mu.Unlock()
	}
}

// holds reports whether the run of trigger id under token is still held
// here: not started, running, or awaiting the record of its outcome.
func (s *Scheduler) holds(id string, token uint64) bool {
	s.mu.Lock()
	r, ok := s.running[id]
	s.mu.Unlock()
	if ok && r.token == token {
		return true
	}
	for _, sl := range s.slots {
		sl.mu.Lock()
		held := sl.id == id && sl.token == token
		sl.mu.Unlock()
		if held {
			return true
		}
	}
	return false
}

// dropFiredLocked drops every run claimed by Fire and not started of which
// match holds: its trigger was canceled or its claim lost. s.mu must be
// held.
func (s *Scheduler) dropFiredLocked(match func(id string, token uint64) bool) {
	kept := s.fired[:0]
	for _, f := range s.fired {
		if match(f.t.ID, f.t.Token) {
			delete(s.running, f.t.ID)
			s.forgetLocked(&f.j)
			continue
		}
		kept = append(kept, f)
	}
	clear(s.fired[len(kept):])
	s.fired = kept
}

var (
	errLeaseLost = fmt.Errorf("run stopped: %w", ErrLeaseLost)
	errCanceled  = errors.New("run stopped: trigger canceled")
	errShutdown  = errors.New("run stopped: scheduler stopping")
)

// New returns a scheduler over store that runs triggers with consumer. It
// validates cfg and reports how to fix a bad field. The scheduler does
// nothing until Start; Schedule may be called before.
func New(store Store, consumer Consumer, cfg Config) (*Scheduler, error) {
	if store == nil {
		return nil, invalidf("New: nil Store; use memstore.New() for an in-memory store")
	}
	if consumer == nil {
		return nil, invalidf("New: nil Consumer; pass the Consumer that runs your triggers (trigger.ConsumerFunc adapts a function)")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Scheduler{
		store:    store,
		consumer: consumer,
		cfg:      cfg,
		log:      cfg.Logger.With(slog.String("node", cfg.NodeID)),
		backoff:  backoff.Policy{Base: cfg.RetryBase, Max: cfg.RetryMax, Factor: cfg.RetryFactor, Jitter: 0.2},
		queued:   make(map[string]uint64),
		running:  make(map[string]run),
		aheadAt:  make(map[int64]*aheadGroup),
		scanNow:  make(chan struct{}, 1),
		stopping: make(chan struct{}),
		idle:     make(chan struct{}),
		stopped:  make(chan struct{}),
		queues:   newQueues(cfg.QueueLimits),
	}
	s.work = sync.NewCond(&s.mu)
	s.doneCond = sync.NewCond(&s.mu)
	s.slowClaims.Store(allSlow) // until claims are timed: see claimsAhead
	s.batches, _ = store.(BatchFinisher)
	return s, nil
}

// NodeID returns the owner name of this scheduler's claims.
func (s *Scheduler) NodeID() string { return s.cfg.NodeID }

// Start starts the scheduler and returns at once. Its first act is
// recovery: it reads the store for every trigger due within the horizon
// (overdue ones first) and arms them; then it runs the timing wheel, the
// periodic scan, the heartbeat and the workers until Stop. The values of
// ctx (not its cancellation) are passed on to the runs; stop the scheduler
// with Stop. Start fails after Stop or when called twice.
func (s *Scheduler) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.phase {
	case phaseStarted:
		return errors.New("trigger: scheduler already started")
	case phaseStopped:
		return ErrStopped
	}
	s.phase = phaseStarted
	s.io = context.WithoutCancel(ctx)
	s.wmu.Lock()
	s.wheel = wheel.New[entry](s.cfg.Tick, time.Now())
	s.alarm = alarm.New()
	s.wmu.Unlock()
	s.wg.Go(s.scanLoop)
	s.wg.Go(s.wheelLoop)
	s.slots = make([]*slot, s.cfg.Workers)
	for i := range s.slots {
		sl := new(slot)
		s.slots[i] = sl
		s.wg.Go(func() { s.worker(sl) })
	}
	s.hbWG.Go(s.heartbeatLoop)
	var finisher sync.WaitGroup
	if s.batches != nil {
		finisher.Go(s.finisher)
	}
	go func() { // owned by Stop, which waits for stopped
		s.wg.Wait()
		s.mu.Lock()
		s.workersDone = true
		s.doneCond.Broadcast()
		s.mu.Unlock()
		finisher.Wait()
		close(s.idle)
		s.hbWG.Wait()
		close(s.stopped)
	}()
	return nil
}

// Stop stops the scheduler: it stops claiming, lets running consumers
// finish, records their outcomes and returns. Triggers that were armed or
// queued but not claimed stay scheduled in the store; triggers claimed by
// Fire but not started are given back. If ctx ends first, Stop cancels the
// context of every run (whose consumer should then return; its trigger is
// given back without using an attempt) and returns ctx.Err() without
// waiting further; Stopped tells when everything has returned.
//
// Stop is idempotent and may be called on a scheduler never started. After
// Stop, methods return ErrStopped; a scheduler cannot be restarted.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.mu.Lock()
	switch s.phase {
	case phaseNew:
		s.phase = phaseStopped
		close(s.stopping)
		close(s.idle)
		close(s.stopped)
	case phaseStarted:
		s.phase = phaseStopped
		close(s.stopping)
		s.work.Broadcast()
		s.pokeDriver() // it sees stopping when it wakes
	}
	s.mu.Unlock()

	select {
	case <-s.stopped:
		return nil
	case <-ctx.Done():
		s.shutdown.Store(true)
		s.cancelWhere(func(string, uint64) bool { return true }, errShutdown)
		return ctx.Err()
	}
}

// Stopped returns a channel closed when the scheduler has stopped and every
// goroutine it started has returned.
func (s *Scheduler) Stopped() <-chan struct{} { return s.stopped }

func (s *Scheduler) isStopped() bool {
	select {
	case <-s.stopping:
		return true
	default:
		return false
	}
}

// Schedule validates t, fills its defaults, persists it and, when it is due
// within the horizon, arms it. It returns the trigger's ID once the store
// has it (for a durable store: once it is on disk).
//
// Defaults: an empty ID becomes a UUIDv7, a zero Type becomes TypeNext. A
// zero DueAt is now plus Delay when Delay is set (a TIMER after a delay), the
// first occurrence of the spec for a CRON trigger (see Register for the
// idempotent way to create those), and now for a LOOP trigger. State,
// attempts and lease fields are ignored. A due time in the past means now. A
// MANUAL or EVENT trigger without a due time waits until fired.
//
// Bad input gets an error wrapping ErrInvalid and stores nothing; an ID
// already stored gets ErrDuplicate.
func (s *Scheduler) Schedule(ctx context.Context, t Trigger) (string, error) {
	if s.isStopped() {
		return "", ErrStopped
	}
	now := time.Now()
	prepare(&t, now)
	if err := s.prepareRecurring(&t, now); err != nil {
		return "", fmt.Errorf("schedule %q: %w", t.ID, err)
	}
	if err := s.store.Save(ctx, now, t); err != nil {
		return "", fmt.Errorf("schedule %q: %w", t.ID, err)
	}
	yieldIf(s.armTrigger(&t, t.DueAt, false, now))
	return t.ID, nil
}

// ScheduleBatch schedules every trigger of ts in one atomic store write, as
// by Schedule: either all are stored or none. It returns their IDs in order.
func (s *Scheduler) ScheduleBatch(ctx context.Context, ts []Trigger) ([]string, error) {
	if s.isStopped() {
		return nil, ErrStopped
	}
	if len(ts) == 0 {
		return nil, invalidf("ScheduleBatch: no triggers")
	}
	now := time.Now()
	buf := batches.Get(len(ts))
	defer batches.Put(buf)
	*buf = append(*buf, ts...)
	batch := *buf
	ids := make([]string, len(ts))
	for i := range batch {
		t := &batch[i]
		prepare(t, now)
		if err := s.prepareRecurring(t, now); err != nil {
			return nil, fmt.Errorf("schedule batch: %w", err)
		}
		ids[i] = t.ID
	}
	if err := s.store.SaveBatch(ctx, now, batch); err != nil {
		return nil, fmt.Errorf("schedule batch: %w", err)
	}
	for i := range batch {
		// Yield as each trigger wakes a worker or the driver, as Schedule
		// does, not once at the end: the woken goroutine would wait
		// behind the rest of the batch. A million triggers in batches of
		// 1,000 (go run ./bench -runs batch -timeline): lateness p50 of
		// the triggers due during the scheduling 253-338 -> 141-193 µs,
		// p99 of all 2.5-17.7 -> 1.2-2.9 ms, six interleaved runs.
		yieldIf(s.armTrigger(&batch[i], batch[i].DueAt, false, now))
	}
	return ids, nil
}

// batches holds ScheduleBatch's copies of its triggers for reuse: a
// thousand triggers take half a megabyte.
var batches = slicepool.New[Trigger](8192)

// prepare fills the defaults of a trigger about to be saved and clears what
// the store owns.
func prepare(t *Trigger, now time.Time) {
	if t.ID == "" {
		t.ID = newID(now)
	}
	if t.Type == 0 {
		t.Type = TypeNext
	}
	if t.DueAt.IsZero() && t.Delay > 0 {
		t.DueAt = now.Add(t.Delay)
	}
	t.State, t.Attempt, t.Owner, t.LeaseUntil, t.Token, t.Recovered = 0, 0, "", time.Time{}, 0, false
	t.CreatedAt, t.UpdatedAt, t.LastError = time.Time{}, time.Time{}, ""
	t.PlannedAt, t.Paused = time.Time{}, false
	if t.Delay > 0 {
		t.Delay = 0 // applied (or overridden by DueAt); a negative one is refused by Validate
	}
}

// Get returns the stored trigger with the given id.
func (s *Scheduler) Get(ctx context.Context, id string) (Trigger, error) {
	if id == "" {
		return Trigger{}, invalidf("Get: empty id")
	}
	return s.store.Get(ctx, id)
}

// List returns up to q.Limit stored triggers in state q.State, ordered by
// ID and starting after q.After: the dead letters (StateFailed), the
// triggers waiting to be fired (StateWaiting), and so on. Bad queries get
// ErrInvalid.
func (s *Scheduler) List(ctx context.Context, q ListQuery) ([]Trigger, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	return s.store.List(ctx, q)
}

// Fire runs the trigger now, whatever its due time: a scheduled trigger
// before its time, or a MANUAL or EVENT trigger that waits. It claims the
// trigger like every other path, so a trigger that is running (here or on
// another node) fails with ErrClaimed and a final one with ErrInvalidState.
// It returns once the trigger is claimed and queued to run ahead of
// triggers that are merely due.
func (s *Scheduler) Fire(ctx context.Context, id string) error {
	if id == "" {
		return invalidf("Fire: empty id")
	}
	s.mu.Lock()
	p := s.phase
	s.mu.Unlock()
	switch p {
	case phaseNew:
		return ErrNotStarted
	case phaseStopped:
		return ErrStopped
	}
	now := time.Now()
	t, err := s.store.Claim(ctx, id, s.claim(now, true))
	if err != nil {
		return fmt.Errorf("fire %q: %w", id, err)
	}
	s.mu.Lock()
	if s.phase != phaseStarted {
		s.mu.Unlock()
		s.release(t, 0) // stopped while claiming: give it back
		return ErrStopped
	}
	s.seq++
	j := job{entry: s.entryOf(&t, false), due: now.UnixNano(), seq: s.seq}
	s.takeSlotLocked(j.queue) // a fired trigger runs even over its queue's limit
	s.queued[id] = j.seq
	s.running[id] = run{token: t.Token}
	s.fired = append(s.fired, firedJob{t: t, j: j})
	woke := s.signalLocked()
	s.mu.Unlock()
	yieldIf(woke)
	return nil
}

// Cancel cancels a trigger: it will not run again. A run in progress here
// has its context canceled, and one claimed here but not started (by Fire,
// or ahead of its due time) is dropped; a run on another node loses its
// lease (its outcome is refused). Canceling a canceled trigger does
// nothing; a completed or failed one gets ErrInvalidState.
func (s *Scheduler) Cancel(ctx context.Context, id string) error {
	if id == "" {
		return invalidf("Cancel: empty id")
	}
	if s.isStopped() {
		return ErrStopped
	}
	if err := s.store.Cancel(ctx, id, time.Now()); err != nil {
		return fmt.Errorf("cancel %q: %w", id, err)
	}
	// A timer still armed for it stays in the wheel until its time: its
	// claim then fails and it is dropped.
	s.cancelRuns(id, 0, errCanceled)
	return nil
}

// Retry sends a failed (or canceled) trigger back to run now, with its
// attempts starting over. Other states get ErrInvalidState.
func (s *Scheduler) Retry(ctx context.Context, id string) error {
	if id == "" {
		return invalidf("Retry: empty id")
	}
	if s.isStopped() {
		return ErrStopped
	}
	now := time.Now()
	if err := s.store.Requeue(ctx, id, now, now); err != nil {
		return fmt.Errorf("retry %q: %w", id, err)
	}
	t, err := s.store.Get(ctx, id)
	if err == nil {
		yieldIf(s.armTrigger(&t, t.DueAt, true, time.Now()))
	}
	return nil
}

func (s *Scheduler) claim(now time.Time, force bool) Claim {
	return Claim{Owner: s.cfg.NodeID, Now: now, Until: now.Add(s.cfg.LeaseDuration), Force: force}
}

// armNew arms a trigger this scheduler just stored, if it is due before the
// end of the window the scanner has covered; later ones are the scanner's.
// Reading armedUntil after the store write is what makes this safe: a scan
// that moved the window before the write sees it in the store, and one
// that moves it after the write is seen here. now is the caller's recent
// reading of the clock. The trigger's claim timer is set ClaimAhead before
// its due time (claimTimerLocked). One whose timer would have fired by now
// is queued at once, to be claimed ahead of its due time if that has not
// come and claimsAhead says so; otherwise its timer is set for its due
// time. One due a moment later goes into the wheel, which fires it at its
// next advance.
//
// It reports whether it woke a worker or the wheel driver: see yieldIf.
func (s *Scheduler) armNew(e entry, due, now time.Time) (woke bool) {
	if due.IsZero() {
		return false // waits to be fired
	}
	s.wmu.Lock()
	if s.wheel == nil || due.After(s.armedUntil) {
		s.wmu.Unlock()
		return false
	}
	if at := s.claimTimerLocked(&e, due); at.After(now) {
		woke = s.addTimerLocked(e, at)
		s.wmu.Unlock()
		return woke
	}
	if s.claimAtDue(&e, due.UnixNano(), now.UnixNano()) {
		woke = s.addTimerLocked(e, due)
		s.wmu.Unlock()
		return woke
	}
	s.wmu.Unlock()
	s.mu.Lock()
	if s.phase == phaseStarted {
		woke = s.enqueueLocked(job{entry: e, due: due.UnixNano()}) // due already: straight to the ready queue
	}
	s.mu.Unlock()
	return woke
}

// addTimerLocked arms a timer at when for entry e: its claim, or the run
// of a claimed entry at its due time. It wakes the wheel driver if when is
// before the driver's next wake-up. s.wmu must be held. It reports whether
// it poked the driver.
func (s *Scheduler) addTimerLocked(e entry, when time.Time) bool {
	s.wheel.Add(e, when) // never removed: a stale timer's claim fails
	if at := when.UnixNano(); at < s.wakeAt.Load() {
		s.wakeAt.Store(at)
		return s.pokeDriver()
	}
	return false
}

// pokeDriver wakes the wheel driver to look at the wheel again, and
// reports whether it did (it was not poked already). A caller that armed
// a timer holds s.wmu meanwhile: the driver's next advance then sees the
// timer, even if the driver cleared poked before it.
func (s *Scheduler) pokeDriver() bool {
	if !s.poked.CompareAndSwap(false, true) {
		return false
	}
	s.alarm.Wake()
	return true
}

// signalLocked wakes a worker waiting for work, and reports whether one
// was waiting. s.mu must be held.
func (s *Scheduler) signalLocked() bool {
	s.work.Signal()
	return s.waiting > 0
}

// yieldIf yields the processor if woke: a call from the host's goroutine
// just woke a worker or the wheel driver. Go puts a goroutine woken by
// another to run next on the waker's processor, behind the waker, where
// the other processors take it only once they run out of work. A host
// scheduling triggers in a tight loop, some already due, would hold the
// woken worker there for up to the runtime's 10ms time slice, and
// with it every run it was to start. Measured with go run ./bench -n
// 1000000 (a million triggers due over 10 s, scheduled while they fire):
// lateness p99 3.9-5.9 ms without the yield, 0.35-4.9 ms (median 2.1 ms)
// with it.
func yieldIf(woke bool) {
	if woke {
		runtime.Gosched()
	}
}

// enqueueLocked puts the job of a due trigger in the ready queue, unless
// the trigger is queued or running here already, and reports whether it
// woke a worker for it. s.mu must be held.
func (s *Scheduler) enqueueLocked(j job) bool {
	if _, ok := s.queued[j.id]; ok {
		return false
	}
	s.seq++
	j.seq = s.seq
	s.queued[j.id] = j.seq
	s.ready.push(j)
	return s.signalLocked()
}

// dequeueLocked forgets job j unless its trigger is queued by a later job.
func (s *Scheduler) dequeueLocked(j *job) {
	if s.queued[j.id] == j.seq {
		delete(s.queued, j.id)
	}
}

// enqueueShare is how many fired jobs the wheel driver queues per hold of
// the scheduler's lock.
const enqueueShare = 256

// grainsPerTick sets the shortest sleep of the wheel driver, its grain:
// a tenth of Config.Tick, 100µs by default. Its alarm is precise to
// microseconds (see internal/alarm): when a hundred thousand triggers fall
// due a second, each at its own instant, waking for every one of them would
// cost more than their runs, so the driver sleeps at least the grain and
// fires what fell due meanwhile together. When triggers are sparse, each
// wake-up costs more processor time than the run it starts, so a longer
// tick costs less for later starts: go run ./bench -n 100000 -tick 10ms
// (10,000 runs a second) took 16µs of processor time a trigger against
// 43-45µs at the default, and started them 523-525µs late at the median
// against 84-87µs (session 13; the README has the table).
const grainsPerTick = 10

// wheelLoop sleeps until the wheel's next expiry, then moves every expired
// timer to the ready queue. A poke (pokeDriver, or Stop) that comes after
// the advance may be undone by setting the alarm for the next expiry: the
// driver looks at poked after setting it, and does not sleep then.
func (s *Scheduler) wheelLoop() {
	defer s.alarm.Stop()
	grain := s.cfg.Tick / grainsPerTick
	var f firing
	for {
		s.poked.Store(false)
		select {
		case <-s.stopping:
			return
		default:
		}
		s.wmu.Lock()
		next := s.advanceLocked(&f, time.Now())
		s.wmu.Unlock()
		s.queueFired(&f)

		s.alarm.Set(max(time.Until(next), grain))
		if !s.poked.Load() {
			s.alarm.Wait()
		}
	}
}

// firing collects what an Advance fired.
type firing struct {
	jobs []job
	now  int64                  // the Advance's time, Unix nanoseconds
	fire func(entry, time.Time) // appends to jobs
}

// advanceLocked advances the wheel to now, collecting what fired in f, and
// returns when it wants to advance next. A claim timer that fired ahead of
// its trigger's due time is armed again for that time unless its trigger
// is to be claimed now (claimsAhead). s.wmu must be held.
func (s *Scheduler) advanceLocked(f *firing, now time.Time) time.Time {
	if f.fire == nil {
		ahead := s.cfg.ClaimAhead.Nanoseconds()
		f.fire = func(e entry, at time.Time) {
			due := at.UnixNano()
			if e.ahead {
				due += ahead // armed ClaimAhead before its due time
			}
			if s.claimAtDue(&e, due, f.now) {
				s.wheel.Add(e, time.Unix(0, due)) // Next, after Advance, sees it
				return
			}
			f.jobs = append(f.jobs, job{entry: e, due: due})
		}
	}
	f.now = now.UnixNano()
	s.wheel.Advance(now, f.fire)
	next, ok := s.wheel.Next()
	if !ok {
		next = now.Add(time.Hour)
	}
	s.wakeAt.Store(next.UnixNano())
	return next
}

// queueFired queues what an Advance fired a share at a time, so that the
// workers start on the first ones while the rest of a large batch is
// queued.
func (s *Scheduler) queueFired(f *firing) {
	for batch := f.jobs; len(batch) > 0; {
		n := min(len(batch), enqueueShare)
		s.mu.Lock()
		for i := range batch[:n] {
			if batch[i].claimed {
				s.startGroupLocked(batch[i].due) // the runs claimed ahead due then
			} else {
				s.enqueueLocked(batch[i])
			}
		}
		s.mu.Unlock()
		batch = batch[n:]
	}
	clear(f.jobs)
	f.jobs = f.jobs[:0]
}

// helpAdvance advances the wheel from a worker when it is due, unless the
// driver is at it. A busy process runs its workers back to back: the
// driver, woken by its alarm, then waits for a processor behind them,
// milliseconds at times, while a worker between two runs is already on
// one. The driver is not poked: its alarm, set for an instant that has now
// come or for its shortest sleep after its last advance, is never later
// than the one it would set again, so waking it would only cost a
// wake-up (at 100,000 runs a second, workers advance tens of thousands
// of times a second). It returns the time it read, which the worker's
// next claim uses.
func (s *Scheduler) helpAdvance(f *firing) time.Time {
	now := time.Now()
	if now.UnixNano() < s.wakeAt.Load() || !s.wmu.TryLock() {
		return now
	}
	s.advanceLocked(f, now)
	s.wmu.Unlock()
	s.queueFired(f)
	return now
}

// worker runs triggers from the fired list and the ready queue until Stop.
// It takes the scheduler's lock once per run: to forget the run that ended
// and take the next job together, registering the job's run (with a
// context made beforehand) in the same breath. What the ended run's outcome
// left due soon is armed after that, outside the lock.
func (s *Scheduler) worker(sl *slot) {
	var (
		t     Trigger // the trigger claimed, then run
		j     job     // its job
		o     Outcome // the outcome of t's run, if ended
		ended bool    // t's run ended here: forget it, then arm what o left due
		// t was claimed ahead: its entry in the running map stays until
		// its run ends, or until its deferred outcome is recorded.
		heldAhead bool
		// deferring is the run of t claimed ahead, whose outcome (v) is
		// to be deferred if claimed runs still wait to start (see
		// deferLocked).
		deferring *aheadRun
		v         verdict
		ctx       context.Context // for the next run, unless claimed ahead
		cancel    context.CancelCauseFunc
	)
	var fired firing        // what this worker's helpAdvance fires
	var batch []deferredRun // a share of the deferred outcomes, to record
	// owed: this worker took a due job ahead of the deferred outcomes,
	// and records a share of them next.
	owed := false
	for {
		if ctx == nil || ctx.Err() != nil {
			ctx, cancel = context.WithCancelCause(s.io)
		}
		now := s.helpAdvance(&fired) // the claim's time, unless the worker waits
		s.mu.Lock()
		if ended {
			if heldAhead {
				delete(s.running, j.id)
			}
			s.forgetLocked(&j)
		}
		if deferring != nil {
			a := deferring
			deferring = nil
			if !s.deferLocked(a, &t, &v) {
				// Record it now, then forget it as a run ended here.
				s.mu.Unlock()
				o, ended, heldAhead = s.finish(&t, s.decide(&t, &v), &v), true, true
				continue
			}
		}
		waited := false
		for len(s.fired) == 0 && s.ready.len() == 0 && !s.claimedWaiting() && len(s.deferred) == 0 && s.phase == phaseStarted && !ended {
			waited = true
			if s.moreDue {
				s.moreDue = false
				select {
				case s.scanNow <- struct{}{}:
				default:
				}
			}
			s.waiting++
			s.work.Wait()
			s.waiting--
		}
		if s.phase != phaseStarted {
			fired := append(s.fired, s.takeAllAheadLocked()...)
			s.fired = nil
			deferred := s.deferred
			s.deferred = nil
			s.mu.Unlock()
			if ended {
				s.armOutcome(&t, &o)
			}
			for _, f := range fired {
				s.release(f.t, f.j.due)
			}
			s.recordDeferred(deferred)
			cancel(nil)
			return
		}
		if len(s.deferred) > 0 && !s.claimedWaiting() && len(s.fired) == 0 && (owed || !s.readyDueLocked(now)) {
			// No claimed run waits to start: record the outcomes
			// deferred meanwhile, a share at a time. A due job in the
			// ready queue (the first trigger of a burst's instant, which
			// was claimed at it) goes first, each worker taking such
			// jobs and shares by turns, so neither waits for the other.
			owed = false
			n := max(len(s.deferred)-recordShare, 0)
			batch = append(batch[:0], s.deferred[n:]...)
			clear(s.deferred[n:])
			s.deferred = s.deferred[:n]
			s.mu.Unlock()
			if ended {
				s.armOutcome(&t, &o)
				ended = false
			}
			s.recordDeferred(batch)
			clear(batch) // holds no aheadRun until the next share
			continue
		}
		var f firedJob
		var a *aheadRun // the job's run, claimed ahead
		var next job
		took := true
		runCancel := cancel // the context's of the run taken
		switch {
		case len(s.fired) > 0:
			f = s.fired[0]
			s.fired[0] = firedJob{}
			s.fired = s.fired[1:]
			delete(s.running, f.t.ID) // in this worker's slot from now on
			sl.set(f.t.ID, f.t.Token, cancel)
		default:
			var claimed bool
			if a, claimed = s.takeClaimedLocked(); claimed {
				runCancel = a.cancel
				sl.set(a.rc.id, a.rc.token, runCancel)
			} else if next, took = s.popReadyLocked(); took {
				owed = len(s.deferred) > 0
				sl.set(next.id, 0, cancel)
			}
		}
		if took && s.shutdown.Load() {
			runCancel(errShutdown)
		}
		s.mu.Unlock()
		if ended {
			s.armOutcome(&t, &o)
			ended = false
		}
		if !took {
			continue // nothing to run, or every ready trigger's queue is full
		}
		if waited {
			now = time.Now()
		}

		switch {
		case a != nil:
			t, j = a.rc.t, a.j // the scheduler's copy, before the consumer runs
			if now.UnixNano() < j.due {
				// Fired, since this worker read the clock, by a clock
				// read later: the present is at least its due time.
				now = time.Unix(0, j.due)
			}
		case f.t.ID != "":
			t, j = f.t, f.j
		default:
			j = next
			if now.UnixNano() < j.due {
				// Fired by a clock read later than this worker's, or
				// to be claimed ahead of its due time.
				now = time.Now()
			}
			ahead := now.UnixNano() < j.due
			c := s.claim(now, false)
			if ahead {
				// The claim is as of the due time: a trigger moved
				// later meanwhile is refused as not due.
				c = s.claim(time.Unix(0, j.due), false)
			}
			var err error
			start := time.Now()
			t, err = s.store.Claim(s.io, j.id, c)
			s.timeClaim(time.Since(start))
			if err != nil {
				sl.set("", 0, nil)
				s.claimFailed(&j, err)
				continue
			}
			sl.set(j.id, t.Token, cancel)
			if !s.queueSlot(&t, &j) {
				sl.set("", 0, nil)
				continue
			}
			if ahead {
				s.claimedAhead(&t, &j)
				sl.set("", 0, nil)
				continue
			}
		}
		e := s.execute(&t, &j, a, now, ctx, cancel, &o, &v)
		if a == nil {
			ctx = nil // used: the next run gets a new one
		}
		sl.set("", 0, nil)
		ended, heldAhead = e == endRecorded, a != nil
		if e == endDeferrable {
			deferring = a
		}
	}
}

// forgetLocked forgets job j once its run ended (or never started): its
// trigger is no longer queued here, and its queue slot is free.
func (s *Scheduler) forgetLocked(j *job) {
	s.dequeueLocked(j)
	s.freeSlotLocked(j.queue)
}

// claimFailed handles a claim that lost: somebody else runs the trigger,
// it was canceled or moved, or the store failed. In every case the store
// still has it, so the scan finds it again if it needs running.
func (s *Scheduler) claimFailed(j *job, err error) {
	s.mu.Lock()
	s.forgetLocked(j)
	s.mu.Unlock()
	switch {
	case errors.Is(err, ErrClaimed), errors.Is(err, ErrNotDue), errors.Is(err, ErrInvalidState), errors.Is(err, ErrNotFound):
		s.log.Debug("trigger not claimed", slog.String("trigger_id", j.id), slog.Any("reason", err))
	default:
		s.log.Error("claim failed; the scan will retry", slog.String("trigger_id", j.id), slog.Any("error", err))
	}
}

// ending is how a run left its outcome; see execute.
type ending uint8

const (
	endRecorded   ending = iota // recorded: the worker forgets the run
	endHandedOver               // to the finisher, which ends the run
	endDeferrable               // not yet recorded: the worker may defer it
)

// execute runs the trigger t of job j, claimed at about start, whose run is
// registered with ctx's cancel func, or, claimed ahead of its due time as
// a, with the context made with that claim.
// It records the outcome in *o and returns endRecorded, or hands it over to
// the finisher, or, for a run claimed ahead, leaves what the run came to in
// *v for the worker to defer (deferLocked) or record.
func (s *Scheduler) execute(t *Trigger, j *job, a *aheadRun, start time.Time, ctx context.Context, cancel context.CancelCauseFunc, o *Outcome, v *verdict) ending {
	if a != nil {
		ctx, cancel = a.rc.Context, a.cancel
	}
	defer cancel(nil)
	if s.cfg.RunTimeout > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeout(ctx, s.cfg.RunTimeout)
		defer stop()
	}
	// One allocation holds the run's context and the consumer's copy of the
	// trigger, which it may change; the scheduler's own copy is *t.
	var rc *runContext
	if a != nil {
		rc = &a.rc // made with the claim, of the trigger as claimed
		rc.Context = ctx
	} else {
		rc = &runContext{Context: ctx, t: *t, id: t.ID, token: t.Token}
	}

	var oc *occurrence
	var skip *Outcome
	switch {
	case a != nil && a.oc != nil && start.Sub(t.DueAt) <= s.cfg.MisfireGrace:
		oc = a.oc // decided with the claim, as of the due time
	case t.Type == TypeCron:
		oc, skip = s.claimed(t, start)
	}
	if skip != nil {
		// The misfire policy skips the run.
		*o = s.finish(t, *skip, &verdict{skip: skip})
		return endRecorded
	}
	if oc != nil && !oc.early {
		rc.occ = &oc.Occurrence
	}
	err := s.prepareRun(rc)
	if err == nil {
		err = s.call(rc, &rc.t)
	}
	cause := context.Cause(ctx)
	var dealt bool // the run's end is dealt with: no outcome to record
	if err != nil && (cause == errLeaseLost || cause == errCanceled) {
		// The store would refuse the outcome: the trigger is no longer ours.
		s.logRun(t, slog.LevelInfo, "run stopped", slog.Any("reason", cause))
		dealt = true
	} else {
		// A wait ends the run by parking the trigger; a wait refused
		// comes back as the run's failure, which a CRON trigger moves
		// past like any other failure.
		dealt, err = s.parkRun(t, err)
	}
	if dealt {
		*o = Outcome{}
		return endRecorded
	}
	*v = verdict{err: err, cause: cause, oc: oc}
	switch {
	case s.batches != nil:
		// The finisher records the outcome and ends the run there: the
		// worker goes on to the next trigger meanwhile.
		s.handOver(done{t: *t, o: s.decide(t, v), v: *v, j: *j})
		return endHandedOver
	case a != nil && s.claimedReady.Load() > 0:
		return endDeferrable
	}
	*o = s.finish(t, s.decide(t, v), v)
	return endRecorded
}

// verdict is what a run came to: its outcome is computed from it, and
// computed again by redo when the store refuses it with ErrConflict.
type verdict struct {
	err, cause error       // what the consumer returned; why its context ended
	oc         *occurrence // the occurrence a CRON run stands for, or nil
	skip       *Outcome    // the misfire policy skipped the run: no err or cause
}

// decide returns the outcome of a run of t.
func (s *Scheduler) decide(t *Trigger, v *verdict) Outcome {
	o := s.outcome(t, v.err, v.cause)
	s.recur(t, &o, v.err, v.oc)
	return o
}

// redo returns the outcome of a CRON run again, for t whose schedule was
// read anew. It reports false for a run whose outcome does not depend on
// the schedule.
func (s *Scheduler) redo(t *Trigger, v *verdict) (Outcome, bool) {
	switch {
	case v.skip != nil:
		if _, again := s.claimed(t, v.skip.Now); again != nil {
			return *again, true
		}
		return Outcome{Kind: OutcomeSnooze, Now: v.skip.Now, At: v.skip.Now, IfCron: &CronSpec{Cron: t.Cron, TimeZone: t.TimeZone}}, true
	case v.oc != nil:
		sched, err := s.schedule(t)
		if err != nil {
			now := time.Now()
			return Outcome{Kind: OutcomeSnooze, Now: now, At: now.Add(time.Minute), IfCron: &CronSpec{Cron: t.Cron, TimeZone: t.TimeZone}}, true
		}
		v.oc.sched = sched
		return s.decide(t, v), true
	}
	return Outcome{}, false
}

// endRun forgets a run whose outcome is recorded (or that has none) and
// arms what the outcome left due soon.
func (s *Scheduler) endRun(t *Trigger, j *job, o *Outcome) {
	s.mu.Lock()
	delete(s.running, t.ID)
	s.forgetLocked(j)
	s.mu.Unlock()
	s.armOutcome(t, o)
}

// call runs the consumer, turning a panic into a *PanicError.
func (s *Scheduler) call(ctx context.Context, t *Trigger) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return s.consumer.Consume(ctx, t)
}

// outcome turns what the consumer returned into what the store records.
// cause is why the run's context ended, if it did.
func (s *Scheduler) outcome(t *Trigger, err error, cause error) Outcome {
	now := time.Now()
	o := Outcome{Now: now}
	if err != nil && cause == errShutdown {
		// Cut off by Stop: give the trigger back without using an attempt.
		o.Kind, o.At = OutcomeSnooze, now
		return o
	}
	if err == nil {
		o.Kind = OutcomeComplete
		return o
	}
	var d *Directive // escapes through errors.As: declared past the success path
	switch {
	case errors.As(err, &d):
		switch d.kind {
		case OutcomeComplete:
			o.Kind = OutcomeComplete
			o.FollowUps = make([]Trigger, len(d.next))
			for i, n := range d.next {
				if n.InstanceID == "" {
					n.InstanceID = t.InstanceID
				}
				prepare(&n, now)
				if err := s.prepareRecurring(&n, now); err != nil {
					return Outcome{Kind: OutcomeFail, Now: now, Error: "outcome refused: follow-up: " + err.Error()}
				}
				o.FollowUps[i] = n
			}
		case OutcomeRetry:
			s.retryOrFail(&o, t, d.err, min(max(d.delay, 0), s.cfg.RetryMax))
		case OutcomeFail:
			o.Kind, o.Error = OutcomeFail, d.err.Error()
		case OutcomeSnooze:
			o.Kind, o.At = OutcomeSnooze, now.Add(min(max(d.delay, 0), s.cfg.RetryMax))
		case OutcomeReschedule:
			o.Kind, o.At, o.Payload = OutcomeReschedule, d.at, d.payload
			if o.At.Before(now) {
				o.At = now
			}
		}
	default:
		if cause != nil && cause != context.Canceled {
			err = fmt.Errorf("%w (%v)", err, cause)
		}
		s.retryOrFail(&o, t, err, s.backoff.Delay(t.Attempt, nil))
	}
	return o
}

func (s *Scheduler) retryOrFail(o *Outcome, t *Trigger, err error, delay time.Duration) {
	o.Error = err.Error()
	maxAttempts := t.MaxAttempts
	if maxAttempts == 0 {
		maxAttempts = s.cfg.MaxAttempts
	}
	if t.Attempt >= maxAttempts {
		o.Kind = OutcomeFail
		return
	}
	o.Kind, o.At = OutcomeRetry, o.Now.Add(delay)
}

// finish records o, the outcome of verdict v, and returns what it
// recorded. An outcome the store refuses as bad input (a follow-up that is
// invalid or whose ID exists, a Reschedule time out of range) fails the
// trigger for good: running it again would return the same. An outcome
// refused with ErrConflict (the CRON trigger's spec was registered anew
// during the run) is computed again by redo from the stored spec.
func (s *Scheduler) finish(t *Trigger, o Outcome, v *verdict) Outcome {
	err := s.store.Finish(s.io, t.ID, t.Token, o)
	for i := 0; errors.Is(err, ErrConflict) && i < 5; i++ {
		fresh, gerr := s.store.Get(s.io, t.ID)
		if gerr != nil {
			err = gerr
			break
		}
		t.Cron, t.TimeZone, t.Misfire = fresh.Cron, fresh.TimeZone, fresh.Misfire
		again, ok := s.redo(t, v)
		if !ok {
			break
		}
		o = again
		err = s.store.Finish(s.io, t.ID, t.Token, o)
	}
	if errors.Is(err, ErrInvalid) || (errors.Is(err, ErrDuplicate) && len(o.FollowUps) > 0) {
		o = Outcome{Kind: OutcomeFail, Now: o.Now, Error: "outcome refused: " + err.Error()}
		err = s.store.Finish(s.io, t.ID, t.Token, o)
	}
	s.logOutcome(t, o, err)
	return o
}

// logOutcome logs how recording the outcome o of a run of t went.
func (s *Scheduler) logOutcome(t *Trigger, o Outcome, err error) {
	outcome := slog.String("outcome", o.Kind.String())
	switch {
	case errors.Is(err, ErrLeaseLost), errors.Is(err, ErrNotFound):
		s.logRun(t, slog.LevelWarn, "outcome not recorded: the trigger was claimed again, canceled or deleted", outcome, slog.Any("error", err))
	case err != nil:
		s.logRun(t, slog.LevelError, "outcome not recorded; the trigger runs again when its lease expires", outcome, slog.Any("error", err))
	case o.Kind == OutcomeFail:
		s.logRun(t, slog.LevelError, "trigger failed", slog.String("error", o.Error))
	case o.Kind == OutcomeRetry:
		s.logRun(t, slog.LevelWarn, "trigger run failed; retrying", slog.Time("retry_at", o.At), slog.String("error", o.Error))
	default:
		s.logRun(t, slog.LevelDebug, "trigger run finished", outcome)
	}
}

// logRun logs about a run with the trigger's attributes, building them only
// when the level is enabled: this is on the path of every run.
func (s *Scheduler) logRun(t *Trigger, level slog.Level, msg string, attrs ...slog.Attr) {
	if !s.log.Enabled(s.io, level) {
		return
	}
	s.log.LogAttrs(s.io, level, msg, append(t.LogAttrs(), attrs...)...)
}

// armOutcome arms what a finished run left due soon: the trigger itself
// (retry, snooze, reschedule) and its follow-ups. Arming something the
// store did not take is harmless: its claim fails.
func (s *Scheduler) armOutcome(t *Trigger, o *Outcome) {
	switch o.Kind {
	case OutcomeRetry:
		s.armTrigger(t, o.At, true, o.Now) // retries go ahead of new work
	case OutcomeSnooze, OutcomeReschedule:
		s.armTrigger(t, o.At, false, o.Now)
	case OutcomeComplete, OutcomeFail:
		if t.ParentID != "" {
			s.armParent(t.ParentID) // this may have been its last child
		}
	}
	for i := range o.FollowUps {
		f := &o.FollowUps[i]
		s.armTrigger(f, f.DueAt, false, o.Now)
	}
}

// release gives back a trigger claimed but not run, due again at due (Unix
// nanoseconds) or now, whichever comes later.
func (s *Scheduler) release(t Trigger, due int64) {
	now := time.Now()
	err := s.store.Finish(s.io, t.ID, t.Token, Outcome{Kind: OutcomeSnooze, Now: now, At: notBefore(now, due)})
	if err != nil {
		s.log.Warn("could not give back a claimed trigger; it runs when its lease expires", slog.String("trigger_id", t.ID), slog.Any("error", err))
	}
	s.mu.Lock()
	delete(s.running, t.ID)
	delete(s.queued, t.ID)
	s.mu.Unlock()
}

// notBefore returns the later of now and due (Unix nanoseconds): when a
// trigger given back is due again.
func notBefore(now time.Time, due int64) time.Time {
	if now.UnixNano() < due {
		return time.Unix(0, due)
	}
	return now
}

// heartbeatLoop extends the lease of every run in progress here. A lease
// found lost (claimed again elsewhere, canceled, deleted) cancels its run.
func (s *Scheduler) heartbeatLoop() {
	tick := time.NewTicker(s.cfg.HeartbeatInterval)
	defer tick.Stop()
	type held struct {
		id    string
		token uint64
	}
	var batch []held
	for {
		select {
		case <-tick.C:
		case <-s.idle:
			return
		}
		batch = batch[:0]
		s.mu.Lock()
		for id, r := range s.running {
			batch = append(batch, held{id, r.token})
		}
		for _, sl := range s.slots {
			sl.mu.Lock()
			// Zero: being claimed. A run claimed ahead keeps its entry
			// in the running map while a worker runs it: extend it once.
			if r, ok := s.running[sl.id]; sl.id != "" && sl.token != 0 && !(ok && r.token == sl.token) {
				batch = append(batch, held{sl.id, sl.token})
			}
			sl.mu.Unlock()
		}
		s.mu.Unlock()
		for _, h := range batch {
			now := time.Now()
			err := s.store.Extend(s.io, h.id, h.token, now, now.Add(s.cfg.LeaseDuration))
			switch {
			case err == nil:
			case !s.holds(h.id, h.token):
				// The run ended since the batch was read: its outcome,
				// recorded meanwhile, is why the store refused.
			case errors.Is(err, ErrLeaseLost), errors.Is(err, ErrNotFound):
				s.log.Warn("lease lost; stopping the run", slog.String("trigger_id", h.id), slog.Any("error", err))
				s.cancelRuns(h.id, h.token, errLeaseLost)
			default:
				s.log.Warn("lease not extended", slog.String("trigger_id", h.id), slog.Any("error", err))
			}
		}
	}
}

// scanLoop recovers at start, then scans every ScanInterval (or sooner when
// workers run dry while the last scan left overdue triggers behind).
func (s *Scheduler) scanLoop() {
	tick := time.NewTicker(s.cfg.ScanInterval)
	defer tick.Stop()
	var lastPurge time.Time
	for {
		s.scan()
		if now := time.Now(); now.Sub(lastPurge) >= time.Minute {
			s.purge(now)
			lastPurge = now
		}
		select {
		case <-tick.C:
		case <-s.scanNow:
		case <-s.stopping:
			return
		}
	}
}

// scan reads the store in two passes. The first takes overdue triggers
// (due by now, or whose lease expired) that are not queued here, up to
// ScanLimit new ones. The second arms what came within the horizon since
// the last scan: the window (armedUntil, now+Horizon].
func (s *Scheduler) scan() {
	now := time.Now()
	s.wmu.Lock()
	from := s.armedUntil
	until := now.Add(s.cfg.Horizon)
	s.armedUntil = until
	s.wmu.Unlock()

	taken := 0
	more, _ := s.scanRange(DueQuery{Now: now, Until: now}, func(refs []Ref) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, r := range refs {
			if _, ok := s.queued[r.ID]; !ok {
				// Due by now (or its lease expired by now): ready.
				s.enqueueLocked(job{entry: s.refEntry(r), due: r.DueAt.UnixNano()})
				taken++
			}
		}
		return taken < s.cfg.ScanLimit
	})
	s.mu.Lock()
	s.moreDue = more
	s.mu.Unlock()

	after := from
	if after.Before(now) {
		after = now
	}
	// Everything in the window is due after now.
	_, err := s.scanRange(DueQuery{Now: now, Until: until, After: Ref{DueAt: after}}, func(refs []Ref) bool {
		s.wmu.Lock()
		defer s.wmu.Unlock()
		for _, r := range refs {
			e := s.refEntry(r)
			at := s.claimTimerLocked(&e, r.DueAt) // sets e up: pass it after
			s.addTimerLocked(e, at)
		}
		return true
	})
	if err != nil {
		// Part of the window may be unarmed: cover it again next time.
		// Triggers armed twice meanwhile are harmless.
		s.wmu.Lock()
		if s.armedUntil.Equal(until) {
			s.armedUntil = from
		}
		s.wmu.Unlock()
	}
}

// scanRange pages through q, handing each page to take until take returns
// false or the store has no more. It reports whether it stopped early.
func (s *Scheduler) scanRange(q DueQuery, take func([]Ref) bool) (stoppedEarly bool, err error) {
	q.Limit = s.cfg.ScanLimit
	for !s.isStopped() {
		refs, err := s.store.Due(s.io, q)
		if err != nil {
			s.log.Error("due scan failed; the next scan retries", slog.Any("error", err))
			return false, err
		}
		if len(refs) == 0 {
			return false, nil
		}
		if !take(refs) {
			return true, nil
		}
		if len(refs) < q.Limit {
			return false, nil
		}
		q.After = refs[len(refs)-1]
	}
	return false, nil
}

// purge deletes final triggers older than their retention, and the wait
// tokens no trigger waits for that last changed more than Retention ago.
func (s *Scheduler) purge(now time.Time) {
	for _, p := range []struct {
		state State
		keep  time.Duration
	}{{StateCompleted, s.cfg.Retention}, {StateCanceled, s.cfg.Retention}, {StateFailed, s.cfg.FailedRetention}} {
		if p.keep < 0 {
			continue
		}
		q := PurgeQuery{State: p.state, Before: now.Add(-p.keep), Limit: s.cfg.ScanLimit}
		for !s.isStopped() {
			n, err := s.store.Purge(s.io, q)
			if err != nil {
				s.log.Error("purge failed", slog.String("state", p.state.String()), slog.Any("error", err))
				break
			}
			if n < q.Limit {
				break
			}
		}
	}
	ws, ok := s.store.(WaitStore)
	if !ok || s.cfg.Retention < 0 {
		return
	}
	before := now.Add(-s.cfg.Retention)
	for !s.isStopped() {
		n, err := ws.PurgeTokens(s.io, before, s.cfg.ScanLimit)
		if err != nil {
			s.log.Error("purge of wait tokens failed", slog.Any("error", err))
			break
		}
		if n < s.cfg.ScanLimit {
			break
		}
	}
}
