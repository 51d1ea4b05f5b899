// Package memstore is a [trigger.Store] that keeps triggers in memory.
//
// It is meant for tests, examples and ephemeral work in a single process:
// nothing survives a restart, and only schedulers in the same process can
// share a store. Everything else behaves as in the durable stores, claims,
// leases and fencing tokens included, and it passes the same conformance
// suite (store/storetest).
//
// # Concurrency
//
// A [Store] is safe for concurrent use. One lock guards it: writes (Save,
// Claim, Finish, ...) hold it exclusively, which is what makes a claim and an
// outcome atomic; Get, Due and List share it. No call blocks on anything but
// the lock, so the contexts are not consulted. Payloads are kept as JSON and
// decoded after the lock is released, so a trigger read from the store never
// shares memory with it.
//
// # Cost
//
// A pending trigger with a 16-byte ID and nothing but a due time takes about
// 160 bytes of heap: an 88-byte record, the ID (the caller's string, not a
// copy), and its entries in the ID map and the due index. A payload takes 16
// bytes more besides its JSON, and the fields most triggers leave empty
// (InstanceID, NodeID, Cron, LastError, TraceContext, ...) about 180 bytes
// more, only in the triggers that use them. Records live in chunks of a
// slab, and the ID map and the due index name them by a 32-bit index rather
// than point to them, so that the garbage collector has few pointers to
// follow: with a million plain triggers stored, a full collection takes
// less than twice as long as for their million IDs alone (BenchmarkGC),
// where it took sixteen times as long with a record per allocation. The
// slab keeps its peak size, as a Go map does: the slots of deleted
// triggers are reused, not returned to the heap.
//
// Save, Claim and Finish take O(log n) time: a claim takes the trigger out
// of the due index and an outcome that makes it due again puts it back, but
// a running trigger is kept out of the index, in a list that Due scans for
// expired leases. That list is short, as a store runs at most as many
// triggers at once as its schedulers have workers. List of scheduled
// triggers scans the whole store; List of another state, and Purge, scan the
// triggers in that state. A wait token (see trigger.WaitStore) takes about
// 100 bytes and its key from its first resume or wait until PurgeTokens
// deletes it, which walks every token (see Store.PurgeTokens). Times are
// kept as Unix nanoseconds: the times a store keeps (due times, lease
// deadlines, now) must lie in the years 1678 to 2262.
package memstore

import (
	"container/heap"
	"context"
	"fmt"
	"iter"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/triggerkit/trigger"
)

// Store is an in-memory trigger store. Make one with New.
type Store struct {
	mu sync.RWMutex
	// recs holds the records; everything else names them by ref.
	recs slab
	ids  idMap
	// due orders the scheduled and retrying triggers as Due returns them.
	due index
	// running holds the claims of the running triggers, in no order. Due
	// scans it for expired leases, which come due at their deadlines.
	running []lease
	// inState lists the triggers of each state but scheduled and running,
	// in no order, so List and Purge need not scan the store for them.
	// Scheduled triggers are the bulk of a large store: a list of them
	// would cost more than it saves.
	inState [trigger.StateCanceled + 1][]uint32
	// purged is where the last Purge of each state stopped in its list: the
	// next one starts there rather than look again at the triggers it kept.
	purged [trigger.StateCanceled + 1]int
	// w holds the wait tokens and the children of each parent; see wait.go.
	w waits
}

// lease is the claim on a running trigger.
type lease struct {
	until     int64 // the lease deadline
	owner     string
	ref       uint32
	recovered bool // the claim took over an expired lease
}

var _ trigger.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	s := &Store{}
	s.ids = newIDMap(&s.recs)
	s.due.recs = &s.recs
	return s
}

// attach adds record i to the index and list of its state; detach removes
// it. Every change of state, due time, priority or pause goes detach,
// change, attach, but for a claim, which Claim attaches with its lease. A
// paused trigger is kept out of the due index. s.mu must be held.
func (s *Store) attach(i uint32) {
	r := s.recs.at(i)
	if r.indexed() {
		k := r.key(i)
		s.due.insert(&k)
	}
	if r.state == trigger.StateScheduled {
		return
	}
	list := &s.inState[r.state]
	r.slot = uint32(len(*list))
	*list = append(*list, i)
}

func (s *Store) detach(i uint32) {
	r := s.recs.at(i)
	if r.indexed() {
		k := r.key(i)
		s.due.delete(&k)
	}
	switch r.state {
	case trigger.StateScheduled:
		return
	case trigger.StateRunning:
		// Move the last lease into r's place.
		last := len(s.running) - 1
		s.running[r.slot] = s.running[last]
		s.recs.at(s.running[r.slot].ref).slot = r.slot
		s.running[last] = lease{}
		s.running = s.running[:last]
		return
	}
	// Move the last ref into r's place.
	list := s.inState[r.state]
	last := len(list) - 1
	list[r.slot] = list[last]
	s.recs.at(list[r.slot]).slot = r.slot
	s.inState[r.state] = list[:last]
}

// indexed reports whether r belongs in the due index: scheduled or
// retrying, or waiting with a timeout, and not paused.
func (r record) indexed() bool {
	switch r.state {
	case trigger.StateScheduled, trigger.StateRetrying:
		return !r.paused
	case trigger.StateWaiting:
		return r.due != noTime && !r.paused
	}
	return false
}

// insert stores rs, or nothing if one of their IDs is taken. s.mu must be
// held.
func (s *Store) insert(rs []recordBuf) error {
	if err := s.checkKeys(rs); err != nil {
		return err
	}
	var buf [8]uint32
	refs := buf[:0]
	for j := range rs {
		r := &rs[j]
		i := s.recs.alloc()
		if !s.ids.add(r.id, i) {
			s.recs.release(i)
			for k, added := range refs {
				s.ids.remove(rs[k].id, added)
				s.recs.release(added)
			}
			if slices.ContainsFunc(rs[:j], func(a recordBuf) bool { return a.id == r.id }) {
				return fmt.Errorf("memstore: trigger %q appears twice in one batch: %w", r.id, trigger.ErrDuplicate)
			}
			return fmt.Errorf("memstore: trigger %q: %w", r.id, trigger.ErrDuplicate)
		}
		rec := s.recs.at(i)
		rec.set(r)
		s.recs.setPayload(rec, r.payloadJSON)
		refs = append(refs, i)
	}
	for _, i := range refs {
		s.bindKey(i)
		s.attach(i)
	}
	return nil
}

// trigger sets *t to r as record.trigger does, with its claim. s.mu must be
// held.
func (s *Store) trigger(r record, t *trigger.Trigger) (payload string) {
	r.trigger(t)
	if r.state == trigger.StateRunning {
		l := &s.running[r.slot]
		t.Owner, t.LeaseUntil, t.Recovered = l.owner, toTime(l.until), l.recovered
	}
	return s.recs.payload(r)
}

// Save stores t; see trigger.Store.
func (s *Store) Save(ctx context.Context, now time.Time, t trigger.Trigger) error {
	var r [1]recordBuf
	if err := newRecord(&r[0], &t, now); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.insert(r[:])
}

// SaveBatch stores every trigger of ts, or none; see trigger.Store.
func (s *Store) SaveBatch(ctx context.Context, now time.Time, ts []trigger.Trigger) error {
	rs, err := newRecords(ts, now)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.insert(rs)
}

// newRecords checks ts and returns their records. Whether their IDs are
// free, of each other too, is for insert to check.
func newRecords(ts []trigger.Trigger, now time.Time) ([]recordBuf, error) {
	rs := make([]recordBuf, len(ts))
	for i := range ts {
		if err := newRecord(&rs[i], &ts[i], now); err != nil {
			return nil, err
		}
	}
	return rs, nil
}

// Get returns the trigger with the given id; see trigger.Store.
func (s *Store) Get(ctx context.Context, id string) (trigger.Trigger, error) {
	if id == "" {
		return trigger.Trigger{}, errEmptyID
	}
	s.mu.RLock()
	_, r, ok := s.ids.get(id)
	if !ok {
		s.mu.RUnlock()
		return trigger.Trigger{}, notFound(id)
	}
	var t trigger.Trigger
	payload := s.trigger(r, &t)
	s.mu.RUnlock()
	return withPayload(&t, payload)
}

// withPayload returns t, read under the lock, with its payload decoded from
// JSON.
func withPayload(t *trigger.Trigger, payload string) (trigger.Trigger, error) {
	p, err := decode(t.ID, payload)
	if err != nil {
		return trigger.Trigger{}, err
	}
	t.Payload = p
	return *t, nil
}

// Due returns claimable triggers in due order; see trigger.Store.
func (s *Store) Due(ctx context.Context, q trigger.DueQuery) ([]trigger.Ref, error) {
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("memstore: %w", err)
	}
	now, until := clamp(q.Now), clamp(q.Until)
	from, ok := cursor(q.After)
	if !ok {
		return nil, nil
	}
	refs := make([]trigger.Ref, 0, min(q.Limit, 256))
	add := func(k *key) bool {
		refs = append(refs, trigger.Ref{ID: k.id, DueAt: toTime(k.at), Priority: int(k.priority)})
		return len(refs) < q.Limit
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	// Merge the expired leases into the index's order.
	expired := s.expired(now, &from)
	s.due.ascend(&from, func(at int64, i uint32) bool {
		if at > until {
			return false
		}
		k := s.recs.at(i).key(i)
		for ; len(expired) > 0 && expired[0].compare(&k) < 0; expired = expired[1:] {
			if !add(&expired[0]) {
				return false
			}
		}
		if from.compare(&k) == 0 {
			return true // the cursor itself
		}
		return add(&k)
	})
	for ; len(expired) > 0 && len(refs) < q.Limit; expired = expired[1:] {
		add(&expired[0])
	}
	return refs, nil
}

// expired returns the running triggers whose lease ended at or before now
// and that come after from, as keys at their lease deadlines, in order.
// s.mu must be held.
func (s *Store) expired(now int64, from *key) []key {
	var ks []key
	for _, l := range s.running {
		if l.until > now {
			continue
		}
		k := s.recs.at(l.ref).key(l.ref)
		if k.at = l.until; from.compare(&k) < 0 {
			ks = append(ks, k)
		}
	}
	slices.SortFunc(ks, func(a, b key) int { return a.compare(&b) })
	return ks
}

// cursor returns the key Due starts from: an entry equal to it is skipped.
// It reports false when nothing can come after.
func cursor(after trigger.Ref) (key, bool) {
	switch at := clamp(after.DueAt); {
	case after.DueAt.IsZero():
		return key{at: math.MinInt64, ref: noRef, priority: math.MaxInt16}, true
	case after.ID == "":
		// After everything due at or before at: the first place at at+1,
		// which the highest priority and an empty ID (no trigger has one)
		// put before every trigger due then.
		return key{at: at + 1, ref: noRef, priority: math.MaxInt16}, at < math.MaxInt64
	default:
		return key{at: at, id: after.ID, ref: noRef, priority: int16(min(max(after.Priority, math.MinInt16), math.MaxInt16))}, true
	}
}

// Claim takes a lease on a trigger; see trigger.Store.
func (s *Store) Claim(ctx context.Context, id string, c trigger.Claim) (trigger.Trigger, error) {
	if id == "" {
		return trigger.Trigger{}, errEmptyID
	}
	if err := c.Validate(); err != nil {
		return trigger.Trigger{}, fmt.Errorf("memstore: %w", err)
	}
	now, err := stamp(c.Now, "claim time")
	if err != nil {
		return trigger.Trigger{}, err
	}
	until, err := stamp(c.Until, "lease deadline")
	if err != nil {
		return trigger.Trigger{}, err
	}

	s.mu.Lock()
	i, r, ok := s.ids.get(id)
	if !ok {
		s.mu.Unlock()
		return trigger.Trigger{}, notFound(id)
	}
	if err := s.claimable(r, now, c.Force); err != nil {
		s.mu.Unlock()
		return trigger.Trigger{}, err
	}
	l := lease{until: until, owner: c.Owner, ref: i}
	if r.state == trigger.StateRunning {
		l.recovered = true
		s.running[r.slot] = l
	} else {
		s.detach(i)
		r.state, r.slot = trigger.StateRunning, uint32(len(s.running))
		s.running = append(s.running, l)
	}
	r.token++
	if r.attempt < math.MaxInt32 {
		r.attempt++
	}
	r.updated = now
	var t trigger.Trigger
	payload := s.trigger(r, &t)
	s.mu.Unlock()
	return withPayload(&t, payload)
}

// claimable returns why r cannot be claimed at now, or nil. s.mu must be
// held.
func (s *Store) claimable(r record, now int64, force bool) error {
	switch {
	case r.state.Final():
		return fmt.Errorf("memstore: trigger %q is %s: %w", r.id, r.state, trigger.ErrInvalidState)
	case r.state == trigger.StateRunning:
		if l := &s.running[r.slot]; l.until > now {
			return fmt.Errorf("memstore: trigger %q is held by %q until %v: %w", r.id, l.owner, toTime(l.until), trigger.ErrClaimed)
		}
		return nil
	case force:
		return nil
	case r.paused:
		return fmt.Errorf("memstore: trigger %q is paused: %w", r.id, trigger.ErrNotDue)
	case r.state == trigger.StateWaiting && (r.due == noTime || r.due > now):
		return fmt.Errorf("memstore: trigger %q waits to be fired: %w", r.id, trigger.ErrNotDue)
	case r.due > now:
		return fmt.Errorf("memstore: trigger %q is due at %v: %w", r.id, toTime(r.due), trigger.ErrNotDue)
	}
	return nil
}

// held returns the running trigger id, and its ref, if token is its
// current one. s.mu must be held.
func (s *Store) held(id string, token uint64) (uint32, record, error) {
	i, r, ok := s.ids.get(id)
	switch {
	case !ok:
		return 0, record{}, fmt.Errorf("memstore: trigger %q no longer exists: %w", id, trigger.ErrLeaseLost)
	case r.state != trigger.StateRunning:
		return 0, record{}, fmt.Errorf("memstore: trigger %q is %s: %w", id, r.state, trigger.ErrLeaseLost)
	case r.token != token:
		return 0, record{}, fmt.Errorf("memstore: trigger %q: token %d is not the current one: %w", id, token, trigger.ErrLeaseLost)
	}
	return i, r, nil
}

// Extend moves the lease deadline of a running trigger; see trigger.Store.
func (s *Store) Extend(ctx context.Context, id string, token uint64, now, until time.Time) error {
	if id == "" {
		return errEmptyID
	}
	n, err := stamp(now, "now")
	if err != nil {
		return err
	}
	u, err := stamp(until, "lease deadline")
	if err != nil {
		return err
	}
	if u <= n {
		return invalidf("lease deadline %v is not after now %v", until, now)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, r, err := s.held(id, token)
	if err != nil {
		return err
	}
	s.running[r.slot].until, r.updated = u, n
	return nil
}

// Finish records the outcome of a run and saves its follow-ups; see
// trigger.Store.
func (s *Store) Finish(ctx context.Context, id string, token uint64, o trigger.Outcome) error {
	if id == "" {
		return errEmptyID
	}
	if err := o.Validate(); err != nil {
		return fmt.Errorf("memstore: %w", err)
	}
	now, err := stamp(o.Now, "outcome time")
	if err != nil {
		return err
	}
	var due int64
	if o.Kind != trigger.OutcomeComplete && o.Kind != trigger.OutcomeFail {
		if due, err = stamp(o.At, "outcome due time"); err != nil {
			return err
		}
	}
	replace := o.Kind == trigger.OutcomeReschedule && o.Payload != nil
	var payload string
	if replace {
		if payload, err = encode(o.Payload); err != nil {
			return err
		}
	}
	followUps, err := newRecords(o.FollowUps, o.Now)
	if err != nil {
		return err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	i, r, err := s.held(id, token)
	if err != nil {
		return err
	}
	if err := r.checkSpec(o.IfCron); err != nil {
		return err
	}
	if err := s.insert(followUps); err != nil {
		return err
	}
	s.detach(i)
	planned := r.plannedAt()
	switch o.Kind {
	case trigger.OutcomeComplete:
		r.state = trigger.StateCompleted
		s.childFinal(r, now)
	case trigger.OutcomeRetry:
		r.state, r.due = trigger.StateRetrying, due
		r.setPlanned(planned)
		r.setLastError(o.Error)
	case trigger.OutcomeFail:
		r.state = trigger.StateFailed
		r.setLastError(o.Error)
		s.childFinal(r, now)
	case trigger.OutcomeReschedule:
		r.state, r.due, r.attempt = trigger.StateScheduled, due, 0
		r.setPlanned(due)
		r.clearWait()
		if r.iteration < math.MaxInt32 {
			r.iteration++
		}
		if replace {
			s.recs.setPayload(r, payload)
		}
		if o.Error != "" {
			r.setLastError(o.Error)
		}
	case trigger.OutcomeSnooze:
		r.state, r.due = trigger.StateScheduled, due
		r.setPlanned(planned)
		if r.attempt > 0 {
			r.attempt--
		}
	}
	r.updated = now
	s.attach(i)
	return nil
}

// Cancel moves a trigger that is not final to canceled; see trigger.Store.
func (s *Store) Cancel(ctx context.Context, id string, now time.Time) error {
	if id == "" {
		return errEmptyID
	}
	n, err := stamp(now, "now")
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i, r, ok := s.ids.get(id)
	switch {
	case !ok:
		return notFound(id)
	case r.state == trigger.StateCanceled:
		return nil
	case r.state.Final():
		return fmt.Errorf("memstore: trigger %q is %s: %w", id, r.state, trigger.ErrInvalidState)
	}
	s.detach(i)
	r.state, r.updated = trigger.StateCanceled, n
	s.attach(i)
	s.childFinal(r, n)
	return nil
}

// Requeue sends a failed or canceled trigger back to scheduled; see
// trigger.Store.
func (s *Store) Requeue(ctx context.Context, id string, now, at time.Time) error {
	if id == "" {
		return errEmptyID
	}
	n, err := stamp(now, "now")
	if err != nil {
		return err
	}
	due, err := stamp(at, "due time")
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i, r, ok := s.ids.get(id)
	switch {
	case !ok:
		return notFound(id)
	case r.state != trigger.StateFailed && r.state != trigger.StateCanceled:
		return fmt.Errorf("memstore: trigger %q is %s, not failed or canceled: %w", id, r.state, trigger.ErrInvalidState)
	}
	s.detach(i)
	r.state, r.due, r.attempt, r.updated = trigger.StateScheduled, due, 0, n
	r.setPlanned(due)
	s.attach(i)
	return nil
}

// Delete removes a trigger; see trigger.Store.
func (s *Store) Delete(ctx context.Context, id string) error {
	if id == "" {
		return errEmptyID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i, r, ok := s.ids.get(id)
	if !ok {
		return notFound(id)
	}
	if !r.state.Final() {
		s.childFinal(r, r.updated) // a parent must not wait for it forever
	}
	s.remove(i)
	return nil
}

// remove deletes record i from the store and frees its slot. s.mu must be
// held.
func (s *Store) remove(i uint32) {
	r := s.recs.at(i)
	s.detach(i)
	s.ids.remove(r.id, i)
	s.forget(i, r)
	s.recs.release(i)
}

// List returns triggers in one state ordered by ID; see trigger.Store.
func (s *Store) List(ctx context.Context, q trigger.ListQuery) ([]trigger.Trigger, error) {
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("memstore: %w", err)
	}
	members := s.members(q.State)
	if q.Type != 0 {
		all := members
		members = func(yield func(record) bool) {
			for r := range all {
				if r.typ == q.Type && !yield(r) {
					return
				}
			}
		}
	}
	return s.read(func() []record { return firstByID(members, q.After, q.Limit) })
}

// read copies out the records pick returns, under the read lock, and
// decodes their payloads after releasing it. The records are the slab's:
// pick runs under the lock.
func (s *Store) read(pick func() []record) ([]trigger.Trigger, error) {
	s.mu.RLock()
	rs := pick()
	ts := make([]trigger.Trigger, len(rs))
	payloads := make([]string, len(rs))
	for i, r := range rs {
		payloads[i] = s.trigger(r, &ts[i])
	}
	s.mu.RUnlock()
	for i := range ts {
		var err error
		if ts[i].Payload, err = decode(ts[i].ID, payloads[i]); err != nil {
			return nil, err
		}
	}
	return ts, nil
}

// members returns the triggers in state st. s.mu must be held.
func (s *Store) members(st trigger.State) iter.Seq[record] {
	return func(yield func(record) bool) {
		switch st {
		case trigger.StateScheduled:
			for _, r := range s.recs.all() {
				if r.state == st && !yield(r) {
					return
				}
			}
		case trigger.StateRunning:
			for _, l := range s.running {
				if !yield(s.recs.at(l.ref)) {
					return
				}
			}
		default:
			for _, i := range s.inState[st] {
				if !yield(s.recs.at(i)) {
					return
				}
			}
		}
	}
}

// firstByID returns, in ID order, the first limit records of rs whose IDs
// come after after. It keeps the best ones in a heap, so it needs
// O(limit) memory however many records there are.
func firstByID(rs iter.Seq[record], after string, limit int) []record {
	var h idHeap
	for r := range rs {
		switch {
		case r.id <= after:
		case len(h) < limit:
			heap.Push(&h, r)
		case r.id < h[0].id:
			h[0] = r
			heap.Fix(&h, 0)
		}
	}
	slices.SortFunc(h, func(a, b record) int { return strings.Compare(a.id, b.id) })
	return h
}

// idHeap is a max-heap of records by ID.
type idHeap []record

func (h idHeap) Len() int           { return len(h) }
func (h idHeap) Less(i, j int) bool { return h[i].id > h[j].id }
func (h idHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *idHeap) Push(x any)        { *h = append(*h, x.(record)) }
func (h *idHeap) Pop() any {
	r := (*h)[len(*h)-1]
	*h = (*h)[:len(*h)-1]
	return r
}

// Purge deletes old final triggers; see trigger.Store.
func (s *Store) Purge(ctx context.Context, q trigger.PurgeQuery) (int, error) {
	if err := q.Validate(); err != nil {
		return 0, fmt.Errorf("memstore: %w", err)
	}
	before := clamp(q.Before)
	s.mu.Lock()
	defer s.mu.Unlock()
	// Look at each trigger of the list once, from where the last Purge
	// stopped to the end, then from the start: a Purge that stops at its
	// limit leaves behind it the triggers it kept, which the next one would
	// otherwise look at again. Deleting list[i] moves the last trigger
	// there: one not yet looked at, unless the scan has wrapped and it comes
	// from the part looked at first.
	list := &s.inState[q.State]
	start := min(s.purged[q.State], len(*list))
	n, i, end, wrapped := 0, start, len(*list), false
	for n < q.Limit {
		if i == end {
			if wrapped || start == 0 {
				break
			}
			i, end, wrapped = 0, start, true
			continue
		}
		if s.recs.at((*list)[i]).updated >= before {
			i++
			continue
		}
		s.remove((*list)[i])
		n++
		if len(*list) < end {
			end = len(*list) // the moved trigger, if any, was not looked at
		} else {
			i++ // the moved trigger was looked at before the wrap
		}
	}
	s.purged[q.State] = i
	return n, nil
}

var errEmptyID = invalidf("empty trigger ID")

func notFound(id string) error {
	return fmt.Errorf("memstore: trigger %q: %w", id, trigger.ErrNotFound)
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("memstore: %w: "+format, append([]any{trigger.ErrInvalid}, args...)...)
}
