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
// A [Store] is safe for concurrent use. It is split into 16 shards by a hash
// of the trigger ID, each with its own lock, records, ID map, due index and
// lists of states, so that calls on different triggers seldom wait for each
// other: a call on one trigger (Get, Claim, Extend, Checkpoint, Save,
// Register, Requeue, Pause, Unpause, Delete, and Finish and Cancel when they
// save no follow-ups and end no child) locks its trigger's shard only, and
// the shard's lock is what makes a claim and an outcome atomic. A call on
// several triggers (SaveBatch, Finish with follow-ups, the end of a child,
// which counts in its parent's wait) locks their shards together, so that a
// batch, and an outcome with its follow-ups, stay atomic. A call that reads
// the whole store (Due, List) or uses the wait tokens or the lists of
// children (Park, Resume, PurgeTokens, Children, Purge, a Save or Register
// of a trigger with a wait key, a Delete of a child or of a trigger with a
// wait key) locks every shard, which excludes every other call: Due and List
// see the store as it is at one moment. No call blocks on anything but these
// locks, so the contexts are not consulted. Payloads are kept as JSON and
// decoded after the locks are released, so a trigger read from the store
// never shares memory with it.
//
// # Cost
//
// A pending trigger with a 16-byte ID and nothing but a due time takes about
// 150 bytes of heap: an 88-byte record, the ID (the caller's string, not a
// copy), and its entries in the ID map (a hash table of its own, see idMap)
// and the due index (with the spare array the index keeps for its merges). A
// payload takes 16 bytes more besides its JSON, and the fields most triggers
// leave empty (InstanceID, NodeID, Cron, LastError, TraceContext, ...) about
// 180 bytes more, only in the triggers that use them. Records live in chunks
// of a slab, and the ID map and the due index name them by a 32-bit index
// rather than point to them, so that the garbage collector has few pointers
// to follow: with a million plain triggers stored, a full collection takes
// less than twice as long as for their million IDs alone (BenchmarkGC),
// where it took sixteen times as long with a record per allocation. The slab
// keeps its peak size, as a Go map does: the slots of deleted triggers are
// reused, not returned to the heap. Each shard has a slab of its own, which
// holds its first 1024 records in chunks of 64 (5.5 KiB) and the others in
// chunks of 1024 (88 KiB), so that the last chunks of the 16 slabs, partly
// filled, take little more than one slab's would: a store of a hundred
// triggers takes about 90 KiB, one of a thousand about 190 KiB, and one of
// ten thousand about 140 bytes a trigger besides the IDs.
//
// A Save appends the trigger's entry to its shard's due index, in amortized
// O(log n) time and sequential memory accesses only: the index is
// log-structured, a few sorted runs that are merged as they grow (see
// index). A claim takes the trigger out of the index in O(1) time, by
// marking its entry stale, and an outcome that makes it due again appends a
// new one; a running trigger is kept out of the index, in a list that Due
// scans for expired leases. That list is short, as a store runs at most as
// many triggers at once as its schedulers have workers. Due merges the runs
// of the 16 shards, about 10 a shard at a million triggers: it pays for a
// binary search of each run, and for a step of a heap of their cursors for
// each trigger it returns, so that a page of 100 from a million triggers
// takes 15 to 18 µs (where the B+tree this index replaced took 8.5 to 10 on
// the same VM: saves of random due times then cost half as much again, and
// claims a quarter), every shard locked meanwhile. A merge copies at most
// 16,384 entries under its shard's lock, about a millisecond. List of
// scheduled triggers scans the whole store; List of another state, and
// Purge, scan the triggers in that state. A wait token (see
// trigger.WaitStore) takes about 100 bytes and its key from its first resume
// or wait until PurgeTokens deletes it, which walks every token (see
// Store.PurgeTokens). Times are kept as Unix nanoseconds: the times a store
// keeps (due times, lease deadlines, now) must lie in the years 1678 to
// 2262.
package memstore

import (
	"container/heap"
	"context"
	"fmt"
	"iter"
	"math"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/triggerkit/trigger"
	"github.com/triggerkit/trigger/internal/slicepool"
)

// Store is an in-memory trigger store. Make one with New.
type Store struct {
	// hash hashes trigger IDs: its top bits pick a trigger's shard, and
	// the shard's ID map keys the trigger by it.
	hash   func(string) uint64
	shards [nShards]shard
	// w holds the wait tokens and the children of each parent; see
	// wait.go. It is guarded by every shard's lock at once.
	w waits
	// purgeFrom is the shard where the last Purge of each state stopped:
	// the next one starts there. Guarded by every shard's lock.
	purgeFrom [trigger.StateCanceled + 1]int
}

// How shards are locked (the package doc says why there are shards): a shard
// is picked by the top bits of the hash of the trigger ID, the hash the ID
// maps key records by. A call locks the shards it touches, always in
// ascending order, so that two calls never wait for each other's shards in a
// cycle: one shard for a call on one trigger, the shards of a batch and of
// an outcome's follow-ups, the shard of a parent whose wait a child's end
// counts in, and every shard for what reads the whole store (Due, List) or
// reads or writes the wait state (the wait tokens and the lists of children:
// see waits). A call that finds, once it holds its shards, that it needs
// more (a Finish whose trigger turns out to be a child) changes nothing,
// lets them go and starts again with all it needs (see Store.locked): what
// it read under the first locks is not trusted under the second. Holding
// every shard excludes every other call, which keeps the calls that need it
// simple and obviously atomic; they are rare but for Due, and the scheduler
// calls Due once per scan, not once per run.
//
// There is no global read-write lock that calls on one shard would take for
// reading and calls on all for writing: its reader count would be a cache
// line that every call writes, moving between cores on every claim, which is
// the cost the shards are there to remove. Locking every shard instead costs
// a call that needs it nShards uncontended locks, about 15 ns each.
//
// Two calls running at once meet on a shard 1 time in 16; more shards would
// make that rarer, and make Due and List, which lock every shard and merge
// the due indexes of all, costlier, and a small store larger (a slab, an ID
// map and an index in each shard).
const (
	shardBits = 4
	nShards   = 1 << shardBits
	allShards = 1<<nShards - 1
)

// shard is a part of the store: the triggers whose IDs hash to it. Its
// lock guards everything in it.
type shard struct {
	mu  sync.Mutex
	num uint32 // its place in Store.shards
	// recs holds the records; everything else names them by ref, an index
	// in recs: a ref means nothing in another shard.
	recs slab
	ids  idMap
	// due orders the scheduled and retrying triggers, and the waiting ones
	// with a timeout, unless paused (see record.indexed), as Due returns
	// them.
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
	// Keep the next shard's lock off the cache lines of this one's fields.
	_ [64]byte
}

// loc names a record in any shard: a shard and a ref in it.
type loc struct {
	shard uint32
	ref   uint32
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
	s := &Store{hash: newHash()}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.num = uint32(i)
		sh.ids = newIDMap(&sh.recs)
		sh.due.recs = &sh.recs
	}
	return s
}

// shardOf returns the number of the shard of a trigger whose ID hashes to
// h.
func shardOf(h uint64) uint32 { return uint32(h >> (64 - shardBits)) }

// bit returns the lock mask of the shard of a trigger whose ID hashes to h.
func bit(h uint64) uint32 { return 1 << shardOf(h) }

// shard returns the shard of a trigger whose ID hashes to h.
func (s *Store) shard(h uint64) *shard { return &s.shards[shardOf(h)] }

// lock locks the shards of mask m, in ascending order; unlock unlocks them.
func (s *Store) lock(m uint32) {
	for ; m != 0; m &= m - 1 {
		s.shards[bits.TrailingZeros32(m)].mu.Lock()
	}
}

func (s *Store) unlock(m uint32) {
	for ; m != 0; m &= m - 1 {
		s.shards[bits.TrailingZeros32(m)].mu.Unlock()
	}
}

// locked runs f with the shards of m locked. f returns the shards it needs
// and its result: if it needs shards that m lacks, it must have changed
// nothing, and locked runs it again with those locked too.
func (s *Store) locked(m uint32, f func(held uint32) (need uint32, err error)) error {
	for {
		s.lock(m)
		need, err := f(m)
		s.unlock(m)
		if need&^m == 0 {
			return err
		}
		m |= need
	}
}

// find returns the shard, ref and record of id. The shard must be locked.
func (s *Store) find(id string) (*shard, uint32, record, bool) {
	h := s.hash(id)
	sh := s.shard(h)
	i, r, ok := sh.ids.find(id, h)
	return sh, i, r, ok
}

// attach adds record i to the index and list of its state; detach removes
// it. Every change of state, due time, priority or pause goes detach,
// change, attach, but for a claim, which Claim attaches with its lease. A
// paused trigger is kept out of the due index. sh.mu must be held.
func (sh *shard) attach(i uint32) {
	r := sh.recs.at(i)
	if r.indexed() {
		sh.due.insert(i, r.due)
	}
	if r.state == trigger.StateScheduled {
		return
	}
	list := &sh.inState[r.state]
	r.slot = uint32(len(*list))
	*list = append(*list, i)
}

func (sh *shard) detach(i uint32) {
	r := sh.recs.at(i)
	if r.indexed() {
		sh.due.delete(i)
	}
	switch r.state {
	case trigger.StateScheduled:
		return
	case trigger.StateRunning:
		// Move the last lease into r's place.
		last := len(sh.running) - 1
		sh.running[r.slot] = sh.running[last]
		sh.recs.at(sh.running[r.slot].ref).slot = r.slot
		sh.running[last] = lease{}
		sh.running = sh.running[:last]
		return
	}
	// Move the last ref into r's place.
	list := sh.inState[r.state]
	last := len(list) - 1
	list[r.slot] = list[last]
	sh.recs.at(list[r.slot]).slot = r.slot
	sh.inState[r.state] = list[:last]
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

// lockMask returns the shards an insert of rs locks: theirs, or every one if
// one of them binds a wait key or is a child (the wait state is guarded by
// every shard).
func lockMask(rs []recordBuf) uint32 {
	var m uint32
	for j := range rs {
		if rs[j].record().touchesWaits() {
			return allShards
		}
		m |= bit(rs[j].hash)
	}
	return m
}

// touchesWaits reports whether saving or removing r changes the wait state:
// it is a child, or has a wait key that is bound, or that a save binds.
func (r record) touchesWaits() bool {
	return r.x != nil && (r.x.waitKey != "" || r.x.more != nil && r.x.more.parentID != "")
}

// insert stores rs, or nothing if one of their IDs is taken. The shards of
// lockMask(rs) must be locked.
func (s *Store) insert(rs []recordBuf) error {
	if err := s.checkKeys(rs); err != nil {
		return err
	}
	var buf [8]loc
	locs := buf[:0]
	for j := range rs {
		r := &rs[j]
		n := shardOf(r.hash)
		sh := &s.shards[n]
		i := sh.recs.alloc()
		if !sh.ids.put(r.id, r.hash, i) {
			sh.recs.release(i)
			for k, added := range locs {
				ash := &s.shards[added.shard]
				ash.ids.drop(rs[k].id, rs[k].hash, added.ref)
				ash.recs.release(added.ref)
			}
			if slices.ContainsFunc(rs[:j], func(a recordBuf) bool { return a.id == r.id }) {
				return fmt.Errorf("memstore: trigger %q appears twice in one batch: %w", r.id, trigger.ErrDuplicate)
			}
			return fmt.Errorf("memstore: trigger %q: %w", r.id, trigger.ErrDuplicate)
		}
		rec := sh.recs.at(i)
		rec.set(r)
		sh.recs.setPayload(rec, r.payloadJSON)
		locs = append(locs, loc{n, i})
	}
	for _, l := range locs {
		s.bindKey(l)
		s.shards[l.shard].attach(l.ref)
	}
	return nil
}

// trigger sets *t to r as record.trigger does, with its claim. sh.mu must
// be held.
func (sh *shard) trigger(r record, t *trigger.Trigger) (payload string) {
	r.trigger(t)
	if r.state == trigger.StateRunning {
		l := &sh.running[r.slot]
		t.Owner, t.LeaseUntil, t.Recovered = l.owner, toTime(l.until), l.recovered
	}
	return sh.recs.payload(r)
}

// Save stores t; see trigger.Store.
func (s *Store) Save(ctx context.Context, now time.Time, t trigger.Trigger) error {
	var r [1]recordBuf
	if err := s.prepare(&r[0], &t, now); err != nil {
		return err
	}
	return s.insertLocked(r[:])
}

// SaveBatch stores every trigger of ts, or none; see trigger.Store.
func (s *Store) SaveBatch(ctx context.Context, now time.Time, ts []trigger.Trigger) error {
	buf := batches.Get(len(ts))
	defer batches.Put(buf)
	var err error
	if *buf, err = s.prepareAll(*buf, ts, now); err != nil {
		return err
	}
	return s.insertLocked(*buf)
}

// batches holds SaveBatch's records for reuse.
var batches = slicepool.New[recordBuf](1 << 15)

// insertLocked inserts rs with the shards of lockMask(rs) locked.
func (s *Store) insertLocked(rs []recordBuf) error {
	m := lockMask(rs)
	s.lock(m)
	err := s.insert(rs)
	s.unlock(m)
	return err
}

// prepare checks t and sets b to its record as saved at now, with the hash
// of its ID.
func (s *Store) prepare(b *recordBuf, t *trigger.Trigger, now time.Time) error {
	if err := newRecord(b, t, now); err != nil {
		return err
	}
	b.hash = s.hash(b.id)
	return nil
}

// prepareAll checks ts and returns their records, in buf (grown if need
// be), whose records must be zero; on error, partly set. Whether their IDs
// are free, of each other too, is for insert to check.
func (s *Store) prepareAll(buf []recordBuf, ts []trigger.Trigger, now time.Time) ([]recordBuf, error) {
	rs := slices.Grow(buf[:0], len(ts))[:len(ts)]
	for i := range ts {
		if err := s.prepare(&rs[i], &ts[i], now); err != nil {
			return rs, err
		}
	}
	return rs, nil
}

// Get returns the trigger with the given id; see trigger.Store.
func (s *Store) Get(ctx context.Context, id string) (trigger.Trigger, error) {
	if id == "" {
		return trigger.Trigger{}, errEmptyID
	}
	h := s.hash(id)
	sh := s.shard(h)
	sh.mu.Lock()
	_, r, ok := sh.ids.find(id, h)
	if !ok {
		sh.mu.Unlock()
		return trigger.Trigger{}, notFound(id)
	}
	var t trigger.Trigger
	payload := sh.trigger(r, &t)
	sh.mu.Unlock()
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
//
// It holds every shard, so that it reads the store as it is at one moment,
// and merges the shards' due indexes, which it ascends together, with the
// expired leases of all shards.
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
	// Sort the shards' tails one shard at a time first: a tail of a
	// thousand saves, and the merges of runs it sets off, can take a
	// millisecond a shard, which under every shard's lock would stop every
	// claim meanwhile. What is saved after is flushed again below.
	for n := range s.shards {
		sh := &s.shards[n]
		sh.mu.Lock()
		sh.due.flush()
		sh.mu.Unlock()
	}
	s.lock(allShards)
	defer s.unlock(allShards)
	// Merge the expired leases into the indexes' order.
	expired := s.expired(now, &from)
	runs := 0
	for n := range s.shards {
		s.shards[n].due.flush()
		runs += len(s.shards[n].due.runs)
	}
	m := merge{cs: make([]mcursor, 0, runs), h: make([]uint16, 0, runs)}
	for n := range s.shards {
		m.add(&s.shards[n].due, &from)
	}
	for k := m.first(); k != nil && k.at <= until; k = m.next() {
		for ; len(expired) > 0 && expired[0].compare(k) < 0; expired = expired[1:] {
			if !add(&expired[0]) {
				return refs, nil
			}
		}
		if from.compare(k) == 0 {
			continue // the cursor itself
		}
		if !add(k) {
			return refs, nil
		}
	}
	for ; len(expired) > 0 && len(refs) < q.Limit; expired = expired[1:] {
		add(&expired[0])
	}
	return refs, nil
}

// expired returns the running triggers whose lease ended at or before now
// and that come after from, as keys at their lease deadlines, in order.
// Every shard must be locked.
func (s *Store) expired(now int64, from *key) []key {
	var ks []key
	for n := range s.shards {
		sh := &s.shards[n]
		for _, l := range sh.running {
			if l.until > now {
				continue
			}
			k := sh.recs.at(l.ref).key(l.ref)
			if k.at = l.until; from.compare(&k) < 0 {
				ks = append(ks, k)
			}
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

	h := s.hash(id)
	sh := s.shard(h)
	sh.mu.Lock()
	i, r, ok := sh.ids.find(id, h)
	if !ok {
		sh.mu.Unlock()
		return trigger.Trigger{}, notFound(id)
	}
	if err := sh.claimable(r, now, c.Force); err != nil {
		sh.mu.Unlock()
		return trigger.Trigger{}, err
	}
	l := lease{until: until, owner: c.Owner, ref: i}
	if r.state == trigger.StateRunning {
		l.recovered = true
		sh.running[r.slot] = l
	} else {
		sh.detach(i)
		r.state, r.slot = trigger.StateRunning, uint32(len(sh.running))
		sh.running = append(sh.running, l)
	}
	r.token++
	if r.attempt < math.MaxInt32 {
		r.attempt++
	}
	r.updated = now
	var t trigger.Trigger
	payload := sh.trigger(r, &t)
	sh.mu.Unlock()
	return withPayload(&t, payload)
}

// claimable returns why r cannot be claimed at now, or nil. sh.mu must be
// held.
func (sh *shard) claimable(r record, now int64, force bool) error {
	switch {
	case r.state.Final():
		return fmt.Errorf("memstore: trigger %q is %s: %w", r.id, r.state, trigger.ErrInvalidState)
	case r.state == trigger.StateRunning:
		if l := &sh.running[r.slot]; l.until > now {
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

// held returns the running trigger id, whose ID hashes to h, and its ref,
// if token is its current one. sh.mu must be held.
func (sh *shard) held(id string, h, token uint64) (uint32, record, error) {
	i, r, ok := sh.ids.find(id, h)
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
	h := s.hash(id)
	sh := s.shard(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	_, r, err := sh.held(id, h, token)
	if err != nil {
		return err
	}
	sh.running[r.slot].until, r.updated = u, n
	return nil
}

// Finish records the outcome of a run and saves its follow-ups; see
// trigger.Store. It locks the trigger's shard and its follow-ups', and its
// parent's when the outcome ends a child.
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
	final := o.Kind == trigger.OutcomeComplete || o.Kind == trigger.OutcomeFail
	var due int64
	if !final {
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
	var followUps []recordBuf
	if len(o.FollowUps) > 0 {
		if followUps, err = s.prepareAll(nil, o.FollowUps, o.Now); err != nil {
			return err
		}
	}
	h := s.hash(id)
	sh := s.shard(h)
	return s.locked(bit(h)|lockMask(followUps), func(held uint32) (uint32, error) {
		i, r, err := sh.held(id, h, token)
		if err != nil {
			return 0, err
		}
		if err := r.checkSpec(o.IfCron); err != nil {
			return 0, err
		}
		if final {
			if need := s.parentShard(r); need&^held != 0 {
				return need, nil
			}
		}
		if err := s.insert(followUps); err != nil {
			return 0, err
		}
		sh.detach(i)
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
				sh.recs.setPayload(r, payload)
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
		sh.attach(i)
		return 0, nil
	})
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
	h := s.hash(id)
	sh := s.shard(h)
	return s.locked(bit(h), func(held uint32) (uint32, error) {
		i, r, ok := sh.ids.find(id, h)
		switch {
		case !ok:
			return 0, notFound(id)
		case r.state == trigger.StateCanceled:
			return 0, nil
		case r.state.Final():
			return 0, fmt.Errorf("memstore: trigger %q is %s: %w", id, r.state, trigger.ErrInvalidState)
		}
		if need := s.parentShard(r); need&^held != 0 {
			return need, nil
		}
		sh.detach(i)
		r.state, r.updated = trigger.StateCanceled, n
		sh.attach(i)
		s.childFinal(r, n)
		return 0, nil
	})
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
	h := s.hash(id)
	sh := s.shard(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, r, ok := sh.ids.find(id, h)
	switch {
	case !ok:
		return notFound(id)
	case r.state != trigger.StateFailed && r.state != trigger.StateCanceled:
		return fmt.Errorf("memstore: trigger %q is %s, not failed or canceled: %w", id, r.state, trigger.ErrInvalidState)
	}
	sh.detach(i)
	r.state, r.due, r.attempt, r.updated = trigger.StateScheduled, due, 0, n
	r.setPlanned(due)
	sh.attach(i)
	return nil
}

// Delete removes a trigger; see trigger.Store.
func (s *Store) Delete(ctx context.Context, id string) error {
	if id == "" {
		return errEmptyID
	}
	h := s.hash(id)
	sh := s.shard(h)
	return s.locked(bit(h), func(held uint32) (uint32, error) {
		i, r, ok := sh.ids.find(id, h)
		if !ok {
			return 0, notFound(id)
		}
		if r.touchesWaits() && held != allShards {
			return allShards, nil
		}
		if !r.state.Final() {
			s.childFinal(r, r.updated) // a parent must not wait for it forever
		}
		s.remove(sh, i, h)
		return 0, nil
	})
}

// remove deletes record i of shard sh from the store and frees its slot.
// sh.mu must be held, and every shard's if the record touches the wait
// state (see record.touchesWaits).
func (s *Store) remove(sh *shard, i uint32, h uint64) {
	r := sh.recs.at(i)
	sh.detach(i)
	sh.ids.drop(r.id, h, i)
	s.forget(sh, i, r)
	sh.recs.release(i)
}

// List returns triggers in one state ordered by ID; see trigger.Store.
func (s *Store) List(ctx context.Context, q trigger.ListQuery) ([]trigger.Trigger, error) {
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("memstore: %w", err)
	}
	members := s.members(q.State)
	if q.Type != 0 {
		all := members
		members = func(yield func(entry) bool) {
			for e := range all {
				if e.r.typ == q.Type && !yield(e) {
					return
				}
			}
		}
	}
	return s.read(func() []entry { return firstByID(members, q.After, q.Limit) })
}

// entry is a record and its shard.
type entry struct {
	sh *shard
	r  record
}

// read copies out the records pick returns, with every shard locked, and
// decodes their payloads after releasing the locks. The records are the
// slabs': pick runs under the locks.
func (s *Store) read(pick func() []entry) ([]trigger.Trigger, error) {
	s.lock(allShards)
	es := pick()
	ts := make([]trigger.Trigger, len(es))
	payloads := make([]string, len(es))
	for i, e := range es {
		payloads[i] = e.sh.trigger(e.r, &ts[i])
	}
	s.unlock(allShards)
	for i := range ts {
		var err error
		if ts[i].Payload, err = decode(ts[i].ID, payloads[i]); err != nil {
			return nil, err
		}
	}
	return ts, nil
}

// members returns the triggers in state st. Every shard must be locked.
func (s *Store) members(st trigger.State) iter.Seq[entry] {
	return func(yield func(entry) bool) {
		for n := range s.shards {
			sh := &s.shards[n]
			switch st {
			case trigger.StateScheduled:
				for _, r := range sh.recs.all() {
					if r.state == st && !yield(entry{sh, r}) {
						return
					}
				}
			case trigger.StateRunning:
				for _, l := range sh.running {
					if !yield(entry{sh, sh.recs.at(l.ref)}) {
						return
					}
				}
			default:
				for _, i := range sh.inState[st] {
					if !yield(entry{sh, sh.recs.at(i)}) {
						return
					}
				}
			}
		}
	}
}

// firstByID returns, in ID order, the first limit records of es whose IDs
// come after after. It keeps the best ones in a heap, so it needs
// O(limit) memory however many records there are.
func firstByID(es iter.Seq[entry], after string, limit int) []entry {
	var h idHeap
	for e := range es {
		switch {
		case e.r.id <= after:
		case len(h) < limit:
			heap.Push(&h, e)
		case e.r.id < h[0].r.id:
			h[0] = e
			heap.Fix(&h, 0)
		}
	}
	slices.SortFunc(h, func(a, b entry) int { return strings.Compare(a.r.id, b.r.id) })
	return h
}

// idHeap is a max-heap of records by ID.
type idHeap []entry

func (h idHeap) Len() int           { return len(h) }
func (h idHeap) Less(i, j int) bool { return h[i].r.id > h[j].r.id }
func (h idHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *idHeap) Push(x any)        { *h = append(*h, x.(entry)) }
func (h *idHeap) Pop() any {
	e := (*h)[len(*h)-1]
	*h = (*h)[:len(*h)-1]
	return e
}

// Purge deletes old final triggers; see trigger.Store.
//
// It holds every shard (a deleted trigger may hold a wait key or be a
// child), and goes through them from the one where the last Purge of the
// state stopped, so that it does not look first, call after call, at the
// triggers kept in the first shards.
func (s *Store) Purge(ctx context.Context, q trigger.PurgeQuery) (int, error) {
	if err := q.Validate(); err != nil {
		return 0, fmt.Errorf("memstore: %w", err)
	}
	before := clamp(q.Before)
	s.lock(allShards)
	defer s.unlock(allShards)
	n, first := 0, s.purgeFrom[q.State]
	for j := range nShards {
		at := (first + j) % nShards
		n += s.purge(&s.shards[at], q.State, before, q.Limit-n)
		if n == q.Limit {
			s.purgeFrom[q.State] = at
			return n, nil
		}
	}
	return n, nil
}

// purge deletes up to limit triggers of sh in final state st updated
// before before, and returns how many it deleted.
func (s *Store) purge(sh *shard, st trigger.State, before int64, limit int) int {
	// Look at each trigger of the list once, from where the last Purge
	// stopped to the end, then from the start: a Purge that stops at its
	// limit leaves behind it the triggers it kept, which the next one would
	// otherwise look at again. Deleting list[i] moves the last trigger
	// there: one not yet looked at, unless the scan has wrapped and it comes
	// from the part looked at first.
	list := &sh.inState[st]
	start := min(sh.purged[st], len(*list))
	n, i, end, wrapped := 0, start, len(*list), false
	for n < limit {
		if i == end {
			if wrapped || start == 0 {
				break
			}
			i, end, wrapped = 0, start, true
			continue
		}
		if sh.recs.at((*list)[i]).updated >= before {
			i++
			continue
		}
		ref := (*list)[i]
		s.remove(sh, ref, s.hash(sh.recs.at(ref).id))
		n++
		if len(*list) < end {
			end = len(*list) // the moved trigger, if any, was not looked at
		} else {
			i++ // the moved trigger was looked at before the wrap
		}
	}
	sh.purged[st] = i
	return n
}

var errEmptyID = invalidf("empty trigger ID")

func notFound(id string) error {
	return fmt.Errorf("memstore: trigger %q: %w", id, trigger.ErrNotFound)
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("memstore: %w: "+format, append([]any{trigger.ErrInvalid}, args...)...)
}
