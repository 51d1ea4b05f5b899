package boltstore

import (
	"time"

	"github.com/triggerkit/trigger"
)

// Fresh records.
//
// Most claims are of triggers saved a moment before: a trigger due now is
// saved, armed and claimed within milliseconds. Reading its record back
// would cost the claim a read transaction and a decode; instead, the
// committer keeps the records of triggers it has just inserted (saved, or
// follow-ups) that are due within freshWindow of their save, and Claim
// takes a trigger's record from there when it is present.
//
// The table holds exactly what the file holds. An entry is added when the
// commit that inserted the record has succeeded, and only for a trigger
// without a lease; every other write of a record (finish, cancel, delete,
// a claim's record) drops it, in commit order, and so does every claim. The
// records are stored as decoded from the file would read (times in UTC,
// without monotonic clock readings; see normalise), and are never modified:
// a claim hands a copy to its caller. The table is bounded: past
// freshCap entries, the oldest is dropped, which costs its claim a read.
// Everything here is under s.mu.

const (
	freshCap    = 1024
	freshWindow = time.Second
)

type freshTable struct {
	m    map[string]freshEntry
	ring []string // IDs in insertion order, to evict the oldest
	seq  uint64   // insertions so far
}

type freshEntry struct {
	rec *record
	seq uint64 // which insertion, so that eviction spares a newer entry
}

// freshNote is a write of id in a group: rec is the record it inserted
// (nil for any other write).
type freshNote struct {
	id  string
	rec *record
}

func (f *freshTable) add(id string, r *record) {
	if f.m == nil {
		f.m = make(map[string]freshEntry)
		f.ring = make([]string, freshCap)
	}
	slot := f.seq % freshCap
	if f.seq >= freshCap {
		old := f.ring[slot]
		if e, ok := f.m[old]; ok && e.seq == f.seq-freshCap {
			delete(f.m, old)
		}
	}
	f.ring[slot] = id
	f.m[id] = freshEntry{rec: r, seq: f.seq}
	f.seq++
}

// get returns the record of id, or nil.
func (f *freshTable) get(id string) *record {
	return f.m[id].rec
}

func (f *freshTable) drop(id string) {
	delete(f.m, id)
}

// apply brings the table up to date with a committed group's writes, in
// their order. Callers hold s.mu.
func (s *Store) applyFresh(notes []freshNote) {
	for _, n := range notes {
		if n.rec != nil && s.leases[n.id] == nil && freshRecord(&n.rec.t) {
			s.fresh.add(n.id, n.rec)
		} else {
			s.fresh.drop(n.id)
		}
	}
}

// freshRecord reports whether a record just inserted is worth keeping: a
// scheduled trigger due within freshWindow of its save, whose times read
// back as they are (see normalise).
func freshRecord(t *trigger.Trigger) bool {
	return t.State == trigger.StateScheduled &&
		!t.DueAt.After(t.UpdatedAt.Add(freshWindow)) &&
		decodable(t.DueAt) && decodable(t.CreatedAt) && decodable(t.UpdatedAt)
}

// decodable reports whether decode accepts t.
func decodable(t time.Time) bool {
	sec := t.Unix()
	return sec <= maxUnixSeconds && sec >= -maxUnixSeconds
}

// normalise gives t's times the form decode gives them: UTC, without a
// monotonic clock reading. (decode reads a zero time as the zero Time,
// which UTC keeps.)
func normalise(t *trigger.Trigger) {
	for _, p := range []*time.Time{&t.DueAt, &t.PlannedAt, &t.CreatedAt, &t.UpdatedAt, &t.LeaseUntil} {
		*p = p.Round(0).UTC()
	}
	if len(t.TraceContext) == 0 {
		t.TraceContext = nil
	}
}
