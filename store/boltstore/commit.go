package boltstore

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"

	"github.com/triggerkit/trigger"
)

// Group commit.
//
// Every write goes through one committer goroutine. A writer queues an op
// and waits; the committer takes everything queued, applies it in one bbolt
// transaction and commits it (bbolt syncs twice per commit: pages, then
// meta), then wakes the writers. There is no fixed batching delay: a lone
// writer pays one commit, and under load the next group is what queued
// during the last commit plus the writers it released, if they come back
// within a fraction of a commit; the committer applies the ops already
// there while it waits for them (see gather).
//
// Each op validates before it writes (check first, then write), so an op
// that fails (a duplicate ID, a stale token) leaves nothing behind and the
// other ops of its group commit as usual. Only a failure of bbolt itself (a
// write or the commit) fails the whole group. Because the committer runs
// each op exactly once, ops need not be idempotent, unlike bbolt's Batch.
//
// Lazy ops (nobody waits for them) carry writes that need not be durable when
// the call returns, such as the record of a claim. They do not wake the
// committer: they ride in the next group of durable writes (the ones queued
// when the group starts; they are applied after its durable ops), or, if
// none comes within lazyDelay, in a commit of their own. So claims cost no
// commit of their own under load, and at most one per lazyDelay when idle.

// lazyDelay is how long a lazy op may wait for a durable write to ride with.
// It bounds how long a claim's record stays unwritten (see lease.go).
const lazyDelay = 20 * time.Millisecond

// maxGather bounds how long a group waits for more writes (see gather).
const maxGather = 1500 * time.Microsecond

// maxGroup bounds the ops of one transaction, so one commit stays short even
// when very many writers queue at once.
const maxGroup = 1024

type op struct {
	apply func(w *writeTx) error
	done  chan struct{} // closed once err is set; nil for a lazy op
	err   error
	state atomic.Int32
}

const (
	opQueued int32 = iota
	opTaken
	opWithdrawn
)

// write queues apply and waits until its transaction is committed. If ctx
// ends while the op is still queued, the op is withdrawn (it will never be
// applied) and write returns ctx.Err(). If the committer already took it,
// write waits for that commit (one fsync) and returns its outcome: a nil
// error always means the write is on disk, ctx.Err() always means nothing
// was written.
func (s *Store) write(ctx context.Context, apply func(w *writeTx) error) error {
	o, err := s.queueWrite(ctx, apply)
	if err != nil {
		return err
	}
	return o.wait(ctx)
}

// queueWrite queues apply for the committer without waiting: write is
// queueWrite, then wait.
func (s *Store) queueWrite(ctx context.Context, apply func(w *writeTx) error) (*op, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o := &op{apply: apply, done: make(chan struct{})}
	if err := s.enqueue(o); err != nil {
		return nil, err
	}
	return o, nil
}

// wait waits for a queued op as write describes.
func (o *op) wait(ctx context.Context) error {
	cancel := ctx.Done()
	if cancel == nil { // a context that never ends: a plain receive
		<-o.done
		return o.err
	}
	select {
	case <-o.done:
		return o.err
	case <-cancel:
		if o.state.CompareAndSwap(opQueued, opWithdrawn) {
			return ctx.Err()
		}
		<-o.done
		return o.err
	}
}

// writeLazy queues apply for the next transaction without waiting. Errors
// are logged. After Close it does nothing.
func (s *Store) writeLazy(apply func(w *writeTx) error) {
	_ = s.enqueue(&op{apply: apply})
}

func (s *Store) enqueue(o *op) error {
	s.qmu.Lock()
	if s.closing {
		s.qmu.Unlock()
		return ErrClosed
	}
	s.queue = append(s.queue, o)
	if o.done == nil {
		if !s.lazyArmed {
			s.lazyArmed = true
			if s.lazyTimer == nil {
				s.lazyTimer = time.AfterFunc(lazyDelay, s.lazyFire)
			} else {
				s.lazyTimer.Reset(lazyDelay)
			}
		}
		s.qmu.Unlock()
		return nil
	}
	s.waiting++
	wake := s.waiting >= s.wakeAt
	s.qmu.Unlock()
	if wake {
		s.signal()
	}
	return nil
}

// lazyFire is the lazy timer: lazy ops waited long enough.
func (s *Store) lazyFire() {
	s.qmu.Lock()
	s.lazyDue = true
	s.qmu.Unlock()
	s.signal()
}

func (s *Store) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// take removes up to maxGroup ops from the queue, leaving out withdrawn ones.
// It takes nothing while only lazy ops wait, until their timer fires.
func (s *Store) take() (ops []*op, closing bool) {
	s.qmu.Lock()
	if s.waiting == 0 && !s.lazyDue && !s.closing {
		s.qmu.Unlock()
		return nil, false
	}
	n := min(len(s.queue), maxGroup)
	batch := s.queue[:n]
	if n == len(s.queue) {
		s.queue, s.spare = s.spare, nil
	} else {
		// The batch's array becomes the committer's: the rest moves.
		s.queue = append([]*op(nil), s.queue[n:]...)
	}
	closing = s.closing
	if len(s.queue) == 0 {
		// Every lazy op rides in this group. (Ops left for the next group
		// keep the timer, or its firing, for themselves.)
		s.lazyDue = false
		if s.lazyArmed {
			s.lazyArmed = false
			s.lazyTimer.Stop()
		}
	}
	for _, o := range batch {
		if o.done != nil {
			s.waiting--
		}
	}
	s.qmu.Unlock()
	ops = batch[:0]
	for _, o := range batch {
		if o.state.CompareAndSwap(opQueued, opTaken) {
			ops = append(ops, o)
		}
	}
	return ops, closing
}

// takeWriters removes up to max ops that a writer waits for from the queue
// and appends them to dst, leaving out withdrawn ones; lazy ops stay
// queued.
func (s *Store) takeWriters(dst []*op, max int) []*op {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if s.waiting == 0 {
		return dst
	}
	kept := s.queue[:0]
	for _, o := range s.queue {
		switch {
		case o.done == nil || max == 0:
			kept = append(kept, o)
		case o.state.CompareAndSwap(opQueued, opTaken):
			dst = append(dst, o)
			max--
			s.waiting--
		default: // withdrawn
			s.waiting--
		}
	}
	clear(s.queue[len(kept):])
	s.queue = kept
	return dst
}

// run is the committer. It returns when Close has been called and the queue
// is empty.
func (s *Store) run() {
	defer close(s.loopDone)
	var released int
	var took time.Duration
	for range s.wake {
		for {
			ops, closing := s.take()
			if len(ops) > 0 {
				released, took = s.commit(ops, released, took*3/2)
				continue
			}
			if closing {
				return
			}
			break
		}
	}
}

// commit applies ops in one transaction, gathering more (see gather), and
// commits it. It reports to the writers and returns how many it released
// and how long the transaction took, not counting the wait for more ops.
func (s *Store) commit(ops []*op, want int, limit time.Duration) (released int, took time.Duration) {
	start := time.Now()
	var waited time.Duration
	w := s.newGroup()
	err := s.db.Update(func(tx *bbolt.Tx) error {
		w.tx, w.b = tx, bucketsOf(tx)
		w.c = cursors{w.b.triggers.Cursor(), w.b.due.Cursor(), w.b.state.Cursor(), w.b.final.Cursor()}
		var err error
		if ops, waited, err = s.gather(w, ops, want, limit); err != nil {
			return err
		}
		return nil
	})
	took = time.Since(start) - waited
	s.mu.Lock()
	hooks := w.onCommit
	if err != nil {
		hooks = w.onAbort
		for _, l := range w.ended {
			l.endedTx = 0
		}
	} else {
		s.commits.Add(1)
		s.applyFresh(w.fresh)
		for _, l := range w.ended {
			if s.leases[l.id] == l {
				delete(s.leases, l.id)
			}
		}
	}
	for _, f := range hooks {
		f()
	}
	for _, id := range w.marked {
		delete(s.pending, id)
	}
	s.mu.Unlock()
	close(w.done)
	if err != nil {
		err = s.dbErr(err)
		s.log.Error("boltstore: commit failed", slog.Int("ops", len(ops)), slog.Any("error", err))
	}
	for _, o := range ops {
		if err != nil {
			o.err = err
		}
		if o.done != nil {
			close(o.done)
			released++
		} else if o.err != nil && err == nil {
			s.log.Error("boltstore: background write failed", slog.Any("error", o.err))
		}
	}
	s.recycle(ops)
	return released, took
}

// recycle keeps the array of a group's ops for the queue to reuse.
func (s *Store) recycle(ops []*op) {
	ops = ops[:cap(ops)]
	clear(ops)
	s.qmu.Lock()
	if cap(ops) > cap(s.spare) {
		s.spare = ops[:0]
	}
	s.qmu.Unlock()
}

// gather applies ops in w, then keeps applying the ops that arrive until
// the group has as many writers as the last commit released, or until limit
// (at most maxGather) has passed. It returns every op applied and how long
// it waited for more.
//
// Without it, a busy store settles into groups of half its writers: while
// one group commits, the other half queues, and the next commit takes just
// them. Writers released by a commit usually come straight back with their
// next write, and a commit costs about the same for 30 ops as for 60 (the
// syncs and the pages written dominate), so waiting a fraction of a commit
// for them doubles the ops per commit. The ops that have arrived are
// applied while the others are awaited, so the wait overlaps with the
// group's own work. A lone writer never waits: it is the one released, and
// its write meets the quota. When the released writers do not come back,
// the commit starts late by the limit: one and a half times the last
// commit's own duration (not counting its wait), at most maxGather.
// Measured with the durable bench's end-to-end workload on two cores, a
// limit of half a commit (at most 1 ms) made groups of 54 triggers, this
// one groups of 61, with the same latency.
func (s *Store) gather(w *writeTx, all []*op, want int, limit time.Duration) (_ []*op, waited time.Duration, err error) {
	writers, applied := 0, 0
	lazy := w.lazy
	var deadline time.Time
	for {
		for ; applied < len(all); applied++ {
			o := all[applied]
			if o.done == nil {
				lazy = append(lazy, o)
				continue
			}
			if o.err = o.apply(w); w.fatal != nil {
				return all, waited, w.fatal
			}
			writers++
		}
		if writers >= want || len(all) >= maxGroup || limit <= 0 {
			break
		}
		if deadline.IsZero() {
			limit = min(limit, maxGather)
			deadline = time.Now().Add(limit)
			if s.gatherTimer == nil {
				s.gatherTimer = time.NewTimer(limit)
			} else {
				s.gatherTimer.Reset(limit)
			}
			defer s.gatherTimer.Stop()
			defer s.wakeOn(0)
		} else if !time.Now().Before(deadline) {
			break
		}
		// Sleep until a few writers have queued (each wake costs a switch
		// of goroutines) or the deadline.
		if !s.wakeOn(min(want-writers, gatherStep)) {
			w0 := time.Now()
			select {
			case <-s.wake:
			case <-s.gatherTimer.C:
			}
			waited += time.Since(w0)
		}
		all = s.takeWriters(all, maxGroup-len(all))
	}
	// Lazy ops go last: a claim's record is then left out when the run's
	// Finish joined the group meanwhile (see persistClaim).
	w.lazy = lazy
	for _, o := range lazy {
		if o.err = o.apply(w); w.fatal != nil {
			return all, waited, w.fatal
		}
	}
	return all, waited, nil
}

// gatherStep is how many writers gather lets queue before it wakes to
// apply them.
const gatherStep = 8

// wakeOn makes writers wake the committer only once n of them are queued
// (0 or 1: on every write), and reports whether n are queued already.
func (s *Store) wakeOn(n int) bool {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	s.wakeAt = n
	return s.waiting >= n
}

// writeTx is the transaction of one commit group, as the ops see it.
type writeTx struct {
	s     *Store
	tx    *bbolt.Tx
	b     buckets
	c     cursors // see lookup
	fatal error   // a bbolt write failed: the group is rolled back

	done     chan struct{} // closed after the group commits or fails
	marked   []string      // IDs marked in s.pending by this group
	onCommit []func()      // run under s.mu after a successful commit
	onAbort  []func()      // run under s.mu after a failed one
	fresh    []freshNote   // the records written, for s.fresh
	ended    []*lease      // leases ended by this group (see endLease)
	lazy     []*op         // the lazy ops of the group (see gather)
	scratch  []byte        // see storedKeys
}

// newGroup returns the writeTx of the next group. The committer reuses one
// (and the memory of its slices); a group's done channel is its own.
func (s *Store) newGroup() *writeTx {
	w := &s.group
	clear(w.fresh)
	clear(w.ended)
	clear(w.lazy)
	*w = writeTx{
		s:       s,
		done:    make(chan struct{}),
		marked:  w.marked[:0],
		fresh:   w.fresh[:0],
		ended:   w.ended[:0],
		lazy:    w.lazy[:0],
		scratch: w.scratch[:0],
	}
	return w
}

// cursors are a group's cursors on the triggers and index buckets.
type cursors struct{ triggers, due, state, final *bbolt.Cursor }

// lookup returns the record stored under key in this transaction (which
// sees the writes of earlier ops of the group), or nil. It seeks with the
// group's cursor, whose memory serves every seek (bbolt's Get allocates a
// cursor and its path on every call).
func (w *writeTx) lookup(key []byte) []byte {
	k, v := w.c.triggers.Seek(key)
	if !bytes.Equal(k, key) {
		return nil
	}
	return v
}

// get returns the record stored under id in this transaction, nil if there
// is none, or an error wrapping ErrCorrupt.
func (w *writeTx) get(id string) (*record, error) {
	v := w.lookup([]byte(id))
	if v == nil {
		return nil, nil
	}
	r, err := decodeRecord(id, v)
	if err != nil {
		return nil, corrupt(id, err)
	}
	return &r, nil
}

// change is the write of one record, ready for the committer: encoded,
// with its key and index keys, so that applying it only writes.
type change struct {
	rec        *record  // the record written, kept for an insert (see insert)
	id         string   // the trigger's ID
	key, value []byte   // the ID as a key and the encoded record
	from, to   indexSet // the index keys of the stored record (none for an insert) and of the new one
}

// indexSet is a trigger's keys in the due, state and final indexes (nil
// where it has none).
type indexSet struct{ due, state, final []byte }

// newChange encodes r, its ID and its index keys in one buffer. It returns
// an error wrapping ErrInvalid if the record is too big. It does not keep
// r: the caller sets rec for an insert.
func newChange(r *record) (change, error) {
	id := r.t.ID
	b := r.appendTo(make([]byte, 0, r.sizeHint()+len(id)+keysSize(id)))
	n := len(b)
	if n > maxRecordSize {
		return change{}, fmt.Errorf("%w: trigger %q is %d bytes encoded; at most %d are allowed", trigger.ErrInvalid, id, n, maxRecordSize)
	}
	b = append(b, id...)
	b, to := appendKeys(b, &r.t)
	return change{id: id, key: b[n : n+len(id) : n+len(id)], value: b[:n:n], to: to}, nil
}

// replace writes r over the stored record old, or returns an error
// wrapping ErrInvalid if r is too big.
func (w *writeTx) replace(old, r *record) error {
	c, err := newChange(r)
	if err != nil {
		return err
	}
	c.from = keysOf(&old.t)
	w.apply(c)
	return nil
}

// apply writes the records of cs and moves their index entries.
func (w *writeTx) apply(cs ...change) {
	for i := range cs {
		c := &cs[i]
		w.move(w.b.due, w.c.due, c.from.due, c.to.due)
		w.move(w.b.state, w.c.state, c.from.state, c.to.state)
		w.move(w.b.final, w.c.final, c.from.final, c.to.final)
		w.check(w.b.triggers.Put(c.key, c.value))
		w.fresh = append(w.fresh, freshNote{id: c.id})
	}
}

// remove deletes a record and its index entries.
func (w *writeTx) remove(r *record) {
	k := keysOf(&r.t)
	w.move(w.b.due, w.c.due, k.due, nil)
	w.move(w.b.state, w.c.state, k.state, nil)
	w.move(w.b.final, w.c.final, k.final, nil)
	w.check(w.b.triggers.Delete([]byte(r.t.ID)))
	w.fresh = append(w.fresh, freshNote{id: r.t.ID})
	w.forget(r)
}

// move replaces the index entry from (if not nil) with to (if not nil) in
// b, whose cursor in the group is c.
func (w *writeTx) move(b *bbolt.Bucket, c *bbolt.Cursor, from, to []byte) {
	if bytes.Equal(from, to) {
		return
	}
	if from != nil {
		if k, _ := c.Seek(from); bytes.Equal(k, from) {
			w.check(c.Delete())
		}
	}
	if to != nil {
		w.check(b.Put(to, noValue))
	}
}

// noValue is the value of every index entry.
var noValue = []byte{}

func (w *writeTx) check(err error) {
	if err != nil && w.fatal == nil {
		w.fatal = err
	}
}

// mark makes Claim wait for this group before it reads id: the group
// changes the trigger in a way a claim must see. Callers hold s.mu.
func (w *writeTx) mark(id string) {
	w.s.pending[id] = w.done
	w.marked = append(w.marked, id)
}

// endLease ends l in this group: from now on no Finish with its token
// succeeds, nor any Extend unless byFinish says the group holds the lease's
// own Finish, readers whose snapshot includes this commit stop seeing
// it, and it leaves the table once the group commits (or comes back if the
// commit fails). Callers hold s.mu.
func (w *writeTx) endLease(l *lease, byFinish bool) {
	l.endedTx, l.finished = w.tx.ID(), byFinish
	w.mark(l.id)
	w.ended = append(w.ended, l)
}
