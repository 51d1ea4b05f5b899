package memstore

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"time"

	"github.com/triggerkit/trigger"
)

// record is the stored form of a trigger, kept small because a store may hold
// millions: times are Unix nanoseconds, counters are narrowed, the payload is
// kept as its JSON encoding, and the fields a plain trigger leaves empty live
// in extra (176 bytes when a trigger uses any of them). The claim of a
// running trigger lives in its shard's list of leases. A record is 88
// bytes on 64-bit platforms, in its shard's slab; the ID is the caller's
// string, not a copy.
//
// A record is a view of its two parts, which a chunk of the slab keeps in
// separate arrays: the fields that hold pointers (24 bytes) and the others
// (64 bytes). The garbage collector scans a chunk's pointer fields packed
// together, and never its other fields, rather than step through every
// record; through the embedded pointers, code reads and writes r.id and
// r.due alike. A view is passed by value; the zero view is no record. The
// payload is not in the record but in the slab's list of payloads, which
// holds only those that are not empty (see slab.payload).
//
// A payload string is never changed in place, so a reader decodes its own
// copy of it after releasing the locks.
type record struct {
	*recPtrs
	*recVals
}

// recPtrs is the part of a record that holds pointers.
type recPtrs struct {
	id string
	x  *extra // nil when a trigger uses none of its fields
}

// recVals is the part of a record that holds no pointers: 64 bytes, one
// cache line in the chunk's array.
type recVals struct {
	due     int64 // noTime for a trigger without a due time
	created int64
	updated int64
	token   uint64

	attempt, maxAttempts, iteration int32

	// slot is the record's place in the list of its state (shard.running
	// or shard.inState); unused while scheduled. In a free record, it links
	// the slab's free list.
	slot uint32
	// payload is 1 + the place of the payload in the slab's list of
	// payloads, or 0 for an empty payload.
	payload uint32

	priority int16
	typ      trigger.Type
	state    trigger.State
	misfire  trigger.MisfirePolicy
	paused   bool
}

// recordBuf holds a record outside the slab: one being made, before it is
// stored.
type recordBuf struct {
	recPtrs
	recVals
	payloadJSON string // JSON object; "" for an empty payload
	hash        uint64 // of the ID: the store's, which picks the shard
}

// record returns the view of b.
func (b *recordBuf) record() record { return record{&b.recPtrs, &b.recVals} }

// set copies the record of b, but for its payload, into r.
func (r record) set(b *recordBuf) { *r.recPtrs, *r.recVals = b.recPtrs, b.recVals }

// extra holds the fields most triggers leave empty (176 bytes).
type extra struct {
	instanceID, parentInstanceID, nodeID, edgeID, queue string
	cron, timeZone, waitKey, machine, lastError         string
	traceContext                                        map[string]string
	// more holds what even fewer triggers use: nil for a CRON trigger
	// between retries, so that recurring triggers cost no more than
	// others.
	more *rare
}

// rare holds PlannedAt while it differs from the due time (during the
// retries and snoozes of a run, and its waits), the fields of LOOP
// triggers, and the wait fields, which the store owns (see wait.go).
type rare struct {
	planned       int64
	hasPlanned    bool
	counted       bool // this child's end was counted in its parent's wait
	maxIterations int32
	interval      time.Duration
	parentID      string // the parent waiting for this child
	// batch is, on a child, the number of the children wait of its parent
	// that created it; waitBatch is, on a parent, the number of its last
	// children wait. A child's end counts only in the wait of its batch
	// (see childFinal).
	batch, waitBatch uint64
	wait             trigger.Wait // the wait it is parked in, or came out of
}

func (x *extra) empty() bool {
	return x.instanceID == "" && x.parentInstanceID == "" && x.nodeID == "" && x.edgeID == "" &&
		x.queue == "" && x.cron == "" && x.timeZone == "" && x.waitKey == "" && x.machine == "" &&
		x.lastError == "" && len(x.traceContext) == 0 && x.more == nil
}

// setRare sets extra's rare fields, dropping what holds none.
func (r record) setRare(m rare) {
	switch {
	case m != rare{}:
		if r.x == nil {
			r.x = new(extra)
		}
		if r.x.more == nil {
			r.x.more = new(rare)
		}
		*r.x.more = m
	case r.x != nil:
		r.x.more = nil
		if r.x.empty() {
			r.x = nil
		}
	}
}

func (r record) rare() rare {
	if r.x == nil || r.x.more == nil {
		return rare{}
	}
	return *r.x.more
}

// plannedAt returns PlannedAt in Unix nanoseconds.
func (r record) plannedAt() int64 {
	if m := r.rare(); m.hasPlanned {
		return m.planned
	}
	return r.due
}

// setPlanned sets PlannedAt, which costs no memory while it is the due
// time: set the due time first.
func (r record) setPlanned(p int64) {
	m := r.rare()
	m.planned, m.hasPlanned = 0, false
	if p != r.due {
		m.planned, m.hasPlanned = p, true
	}
	r.setRare(m)
}

// checkSpec is c.Check for r, for conditional writes: nil when c is nil or
// names r's schedule.
func (r record) checkSpec(c *trigger.CronSpec) error {
	if c == nil {
		return nil
	}
	var cron, zone string
	if r.x != nil {
		cron, zone = r.x.cron, r.x.timeZone
	}
	if c.Cron == cron && c.TimeZone == zone {
		return nil
	}
	return fmt.Errorf("memstore: %w", c.Check(&trigger.Trigger{ID: r.id, Cron: cron, TimeZone: zone}))
}

// setLastError records a run's error; an empty one costs no extra.
func (r record) setLastError(msg string) {
	switch {
	case r.x != nil:
		r.x.lastError = msg
		if r.x.empty() {
			r.x = nil
		}
	case msg != "":
		r.x = &extra{lastError: msg}
	}
}

// newRecord checks t and sets b to its record as saved at now.
func newRecord(b *recordBuf, t *trigger.Trigger, now time.Time) error {
	if err := t.Validate(); err != nil {
		return fmt.Errorf("memstore: %w", err)
	}
	if t.Attempt > math.MaxInt32 || t.MaxAttempts > math.MaxInt32 || t.Iteration > math.MaxInt32 || t.MaxIterations > math.MaxInt32 {
		return invalidf("trigger %q: Attempt, MaxAttempts, Iteration and MaxIterations must be at most %d", t.ID, math.MaxInt32)
	}
	updated, err := stamp(now, "now")
	if err != nil {
		return err
	}
	created := updated
	if !t.CreatedAt.IsZero() {
		if created, err = stamp(t.CreatedAt, "CreatedAt"); err != nil {
			return err
		}
	}
	payload, err := encode(t.Payload)
	if err != nil {
		return fmt.Errorf("trigger %q: %w", t.ID, err)
	}
	b.recPtrs, b.payloadJSON = recPtrs{id: t.ID}, payload
	b.recVals = recVals{
		due:         nanos(t.DueAt), // in range: checked by Validate
		created:     created,
		updated:     updated,
		attempt:     int32(t.Attempt),
		maxAttempts: int32(t.MaxAttempts),
		iteration:   int32(t.Iteration),
		priority:    int16(t.Priority),
		typ:         t.Type,
		state:       t.InitialState(),
		misfire:     t.Misfire,
	}
	b.record().setExtra(t)
	return nil
}

// setExtra sets the fields of extra from t (PlannedAt is the due time).
func (r record) setExtra(t *trigger.Trigger) {
	r.x = nil
	// Most triggers have none of these fields: one test of their
	// lengths, where building extra to compare it with zero cost 127
	// instructions, a twentieth of a Schedule (callgrind). The
	// conformance test RoundTripsEachFieldAlone fails for a field left
	// out here.
	if len(t.InstanceID)|len(t.ParentInstanceID)|len(t.NodeID)|len(t.EdgeID)|len(t.Queue)|
		len(t.Cron)|len(t.TimeZone)|len(t.WaitKey)|len(t.Machine)|len(t.LastError)|len(t.TraceContext) == 0 &&
		t.MaxIterations == 0 && t.Interval == 0 {
		return
	}
	x := extra{
		instanceID: t.InstanceID, parentInstanceID: t.ParentInstanceID, nodeID: t.NodeID, edgeID: t.EdgeID,
		queue: t.Queue, cron: t.Cron, timeZone: t.TimeZone, waitKey: t.WaitKey, machine: t.Machine,
		lastError: t.LastError, traceContext: t.TraceContext,
	}
	if !x.empty() {
		x.traceContext = maps.Clone(x.traceContext)
		r.x = new(extra)
		*r.x = x
	}
	r.setRare(rare{maxIterations: int32(t.MaxIterations), interval: t.Interval})
}

// trigger sets *t to r, but for its claim and payload.
func (r record) trigger(t *trigger.Trigger) {
	*t = trigger.Trigger{
		ID:          r.id,
		Type:        r.typ,
		State:       r.state,
		DueAt:       toTime(r.due),
		Priority:    int(r.priority),
		Attempt:     int(r.attempt),
		MaxAttempts: int(r.maxAttempts),
		Iteration:   int(r.iteration),
		Misfire:     r.misfire,
		CreatedAt:   toTime(r.created),
		UpdatedAt:   toTime(r.updated),
		Token:       r.token,
		PlannedAt:   toTime(r.plannedAt()),
		Paused:      r.paused,
	}
	if x := r.x; x != nil {
		t.InstanceID, t.ParentInstanceID, t.NodeID, t.EdgeID = x.instanceID, x.parentInstanceID, x.nodeID, x.edgeID
		t.Queue, t.Cron, t.TimeZone, t.WaitKey, t.Machine = x.queue, x.cron, x.timeZone, x.waitKey, x.machine
		t.LastError, t.TraceContext = x.lastError, maps.Clone(x.traceContext)
		if m := x.more; m != nil {
			t.Interval, t.MaxIterations = m.interval, int(m.maxIterations)
			t.ParentID, t.Wait = m.parentID, m.wait
		}
	}
}

// encode returns p as JSON, or "" for an empty payload.
func encode(p trigger.Payload) (string, error) {
	if len(p) == 0 {
		return "", nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("memstore: %w: the payload cannot be serialised: %w", trigger.ErrInvalid, err)
	}
	return string(b), nil
}

// decode returns the payload of trigger id from its JSON.
func decode(id, payload string) (trigger.Payload, error) {
	if payload == "" {
		return nil, nil
	}
	var p trigger.Payload
	if err := json.Unmarshal([]byte(payload), &p); err != nil {
		return nil, fmt.Errorf("memstore: trigger %q: decoding the payload: %w", id, err)
	}
	return p, nil
}

// Times are kept as Unix nanoseconds; noTime stands for the zero time.
const noTime = math.MinInt64

var (
	minTime = time.Unix(0, math.MinInt64+1)
	maxTime = time.Unix(0, math.MaxInt64)
	// The seconds of minTime and maxTime: a time of a second strictly
	// between them is in range, whatever its nanoseconds.
	minUnix, maxUnix = minTime.Unix(), maxTime.Unix()
)

// inRange reports whether t lies in [minTime, maxTime]. It reads t once
// for the common case, where Before and After take it apart for each bound.
func inRange(t time.Time) bool {
	if s := t.Unix(); s > minUnix && s < maxUnix {
		return true
	}
	return !t.Before(minTime) && !t.After(maxTime)
}

// nanos returns t, which must be zero or within [minTime, maxTime], in
// Unix nanoseconds.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return noTime
	}
	return t.UnixNano()
}

// stamp returns t, a time the store keeps, in Unix nanoseconds: an error
// wrapping ErrInvalid if it is zero or outside the years 1678 to 2262.
func stamp(t time.Time, name string) (int64, error) {
	if t.IsZero() || !inRange(t) {
		return 0, invalidf("%s %v is zero or outside [%v, %v]", name, t, minTime, maxTime)
	}
	return t.UnixNano(), nil
}

// clamp returns t, a bound of a query, in Unix nanoseconds, clamped to the
// range the store holds.
func clamp(t time.Time) int64 {
	switch {
	case inRange(t):
		return t.UnixNano()
	case t.Before(minTime):
		return math.MinInt64 + 1
	}
	return math.MaxInt64
}

func toTime(n int64) time.Time {
	if n == noTime {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
