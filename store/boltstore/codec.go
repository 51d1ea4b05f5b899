package boltstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"time"

	"github.com/triggerkit/trigger"
)

// Record encoding, version 1. A trigger is stored under its ID (the ID is the
// key, so it is not repeated in the value) as:
//
//	version  byte     recordVersion
//	type     byte     trigger.Type
//	state    byte     trigger.State
//	misfire  byte     trigger.MisfirePolicy
//	fields   uvarint  bit set of the fields that follow (see the f* constants)
//	...               the fields whose bit is set, in bit order
//
// A field whose value is the zero value is left out and its bit is clear, so
// a typical trigger costs only the fields it uses. Strings and the payload are
// a uvarint length then the bytes; counters are uvarints; the priority is a
// zig-zag varint; a time is a zig-zag varint of Unix seconds then a uvarint of
// nanoseconds (read back in UTC: the location is not kept); the trace context
// is a uvarint count then key and value strings; the payload is the JSON
// object the caller's map marshals to.
//
// Why this and not JSON or gob for the whole record: a trigger is written
// two or three times in its life and read by every Get, List and due scan, so
// its size is write bandwidth (bbolt copies whole pages on every commit) and
// its decoding is CPU on the hot path. This layout is a third of the size of
// the JSON form (no field names, no quoted times), decodes without
// reflection, and is simple enough to check by hand and by fuzzing: the
// decoder rejects every input that is not a valid record instead of
// panicking or guessing. gob is worse on every count here: it writes type
// descriptors into every independently encoded value, and its decoder is
// neither small nor meant for untrusted bytes. The payload alone stays JSON
// because the contract (trigger.Payload) says a payload is JSON and reads
// back with JSON's types; keeping its bytes as they are also lets the store
// rewrite a record (claim, finish) without unmarshalling the payload.
//
// Evolving: a new field takes the next bit, so records written before it
// decode unchanged. A reader refuses bits it does not know (a record written
// by a newer version), and a change that old readers must not misread bumps
// recordVersion; the file-wide formatVersion in the meta bucket guards whole
// layout changes.
const recordVersion = 1

// maxRecordSize bounds an encoded trigger, far below bbolt's own limit; a
// bigger one is refused with ErrInvalid before it reaches a transaction.
const maxRecordSize = 64 << 20

// The optional fields of a record, in the order they are written.
const (
	fInstance = 1 << iota
	fParent
	fNode
	fEdge
	fDue
	fPayload
	fPriority
	fQueue
	fAttempt
	fMaxAttempts
	fIteration
	fCron
	fTimeZone
	fWaitKey
	fMachine
	fCreated
	fUpdated
	fLastError
	fTrace
	fOwner
	fLease
	fToken
	// Added for recurring triggers (format version 4); a record without
	// them decodes as before (PlannedAt is then DueAt).
	fPlanned // PlannedAt, written only when it differs from DueAt
	fInterval
	fMaxIterations
	fPaused // a flag: no value follows
	// Added for waits (format version 5); a record without them has never
	// waited.
	fParentID
	fWaitKind
	fWaitUntil
	fWaitPending
	fWaitFlags // see waitResumed, waitCounted
	// Added with format version 7: a child's batch (record.batch). A child
	// written before has none.
	fBatch

	fAll = fBatch<<1 - 1
)

// record is a decoded trigger record: the trigger (ID set from the key,
// Payload nil) and its payload still as JSON, so the store can check and
// rewrite records without unmarshalling payloads.
type record struct {
	t       trigger.Trigger
	payload []byte // a JSON object, or nil for a nil payload
	counted bool   // a child whose end was counted in its parent's wait
	// batch is, on a child, the fencing token of the claim of its parent
	// that parked it in the wait that created the child: that wait's
	// identity (see countChild). Zero for a child written before format
	// version 7.
	batch uint64
}

// The bits of the fWaitFlags field.
const (
	waitResumed = 1 << iota // Wait.Resumed
	waitCounted             // record.counted
)

// marshalPayload returns p as the JSON the record stores, or an error
// wrapping trigger.ErrInvalid.
func marshalPayload(id string, p trigger.Payload) ([]byte, error) {
	if p == nil {
		return nil, nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("%w: trigger %q: payload cannot be serialised: %v", trigger.ErrInvalid, id, err)
	}
	return b, nil
}

// encode returns the record's value bytes.
func (r *record) encode() []byte {
	return r.appendTo(make([]byte, 0, r.sizeHint()))
}

// sizeHint is about the size of the encoding, a little more for the usual
// triggers.
func (r *record) sizeHint() int {
	t := &r.t
	n := 64 + len(r.payload) + len(t.InstanceID) + len(t.ParentInstanceID) + len(t.NodeID) + len(t.EdgeID) +
		len(t.Queue) + len(t.Cron) + len(t.TimeZone) + len(t.WaitKey) + len(t.Machine) + len(t.LastError) + len(t.Owner) +
		len(t.ParentID)
	for k, v := range t.TraceContext {
		n += 4 + len(k) + len(v)
	}
	return n
}

// headerMax is the most bytes the header (the four bytes and the field
// mask) takes.
const headerMax = 4 + binary.MaxVarintLen64

// appendTo appends the record's value bytes to dst. The fields go first, at
// headerMax bytes into the new space, and the header is written in front of
// them once the field mask is known: one buffer, one move of the fields.
func (r *record) appendTo(dst []byte) []byte {
	t := &r.t
	start := len(dst)
	e := encoder{body: append(dst, make([]byte, headerMax)...)}
	e.str(fInstance, t.InstanceID)
	e.str(fParent, t.ParentInstanceID)
	e.str(fNode, t.NodeID)
	e.str(fEdge, t.EdgeID)
	e.time(fDue, t.DueAt)
	if r.payload != nil {
		e.bytes(fPayload, r.payload)
	}
	if t.Priority != 0 {
		e.mask |= fPriority
		e.body = binary.AppendVarint(e.body, int64(t.Priority))
	}
	e.str(fQueue, t.Queue)
	e.uint(fAttempt, uint64(t.Attempt))
	e.uint(fMaxAttempts, uint64(t.MaxAttempts))
	e.uint(fIteration, uint64(t.Iteration))
	e.str(fCron, t.Cron)
	e.str(fTimeZone, t.TimeZone)
	e.str(fWaitKey, t.WaitKey)
	e.str(fMachine, t.Machine)
	e.time(fCreated, t.CreatedAt)
	e.time(fUpdated, t.UpdatedAt)
	e.str(fLastError, t.LastError)
	if len(t.TraceContext) > 0 {
		e.mask |= fTrace
		e.body = binary.AppendUvarint(e.body, uint64(len(t.TraceContext)))
		for k, v := range t.TraceContext {
			e.body = appendString(e.body, k)
			e.body = appendString(e.body, v)
		}
	}
	e.str(fOwner, t.Owner)
	e.time(fLease, t.LeaseUntil)
	e.uint(fToken, t.Token)
	if !t.PlannedAt.Equal(t.DueAt) {
		e.time(fPlanned, t.PlannedAt)
	}
	e.uint(fInterval, uint64(t.Interval))
	e.uint(fMaxIterations, uint64(t.MaxIterations))
	if t.Paused {
		e.mask |= fPaused
	}
	e.str(fParentID, t.ParentID)
	e.uint(fWaitKind, uint64(t.Wait.Kind))
	e.time(fWaitUntil, t.Wait.Until)
	e.uint(fWaitPending, uint64(t.Wait.Pending))
	var flags uint64
	if t.Wait.Resumed {
		flags |= waitResumed
	}
	if r.counted {
		flags |= waitCounted
	}
	e.uint(fWaitFlags, flags)
	e.uint(fBatch, r.batch)

	var h [headerMax]byte
	header := append(h[:0], recordVersion, byte(t.Type), byte(t.State), byte(t.Misfire))
	header = binary.AppendUvarint(header, e.mask)
	b := e.body
	n := copy(b[start:], header)
	n += copy(b[start+n:], b[start+headerMax:])
	return b[:start+n]
}

type encoder struct {
	mask uint64
	body []byte
}

func (e *encoder) str(bit uint64, s string) {
	if s != "" {
		e.mask |= bit
		e.body = appendString(e.body, s)
	}
}

func (e *encoder) bytes(bit uint64, b []byte) {
	e.mask |= bit
	e.body = binary.AppendUvarint(e.body, uint64(len(b)))
	e.body = append(e.body, b...)
}

func (e *encoder) uint(bit, v uint64) {
	if v != 0 {
		e.mask |= bit
		e.body = binary.AppendUvarint(e.body, v)
	}
}

func (e *encoder) time(bit uint64, t time.Time) {
	if !t.IsZero() {
		e.mask |= bit
		e.body = binary.AppendVarint(e.body, t.Unix())
		e.body = binary.AppendUvarint(e.body, uint64(t.Nanosecond()))
	}
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// errTruncated and friends say why a record does not decode; callers wrap
// them in ErrCorrupt with the trigger's ID.
var (
	errTruncated = errors.New("truncated record")
	errRange     = errors.New("value out of range")
)

// maxUnixSeconds bounds decoded times so that time.Unix cannot overflow
// (about ±146 billion years: no real trigger is near it).
const maxUnixSeconds = 1 << 62

// decodeRecord decodes the value stored under id. It never panics: anything
// that is not a well-formed version-1 record is an error. The record owns its
// memory (nothing aliases data, which may be bbolt's mmap).
func decodeRecord(id string, data []byte) (record, error) {
	return decode(id, data, false)
}

// checkRecord checks data as decodeRecord does but returns only the fields
// a due scan needs (type, state, times, priority, counters): it allocates
// no strings, payload or trace context.
func checkRecord(id string, data []byte) (record, error) {
	return decode(id, data, true)
}

func decode(id string, data []byte, lite bool) (record, error) {
	var r record
	t := &r.t
	t.ID = id
	if len(data) < 4 {
		return r, errTruncated
	}
	if data[0] != recordVersion {
		return r, fmt.Errorf("unknown record version %d", data[0])
	}
	t.Type, t.State, t.Misfire = trigger.Type(data[1]), trigger.State(data[2]), trigger.MisfirePolicy(data[3])
	switch {
	case !t.Type.Valid():
		return r, fmt.Errorf("unknown trigger type %d", data[1])
	case !t.State.Valid():
		return r, fmt.Errorf("unknown state %d", data[2])
	case !t.Misfire.Valid():
		return r, fmt.Errorf("unknown misfire policy %d", data[3])
	}
	d := decoder{b: data[4:], lite: lite}
	mask := d.uvarint()
	if d.err == nil && mask&^fAll != 0 {
		return r, fmt.Errorf("unknown fields %#x (written by a newer version?)", mask&^fAll)
	}
	d.str(mask, fInstance, &t.InstanceID)
	d.str(mask, fParent, &t.ParentInstanceID)
	d.str(mask, fNode, &t.NodeID)
	d.str(mask, fEdge, &t.EdgeID)
	d.time(mask, fDue, &t.DueAt)
	if mask&fPayload != 0 {
		p := d.bytes()
		if d.err == nil && !validPayload(p) {
			d.fail(errors.New("payload is not a JSON object"))
		}
		if !lite {
			r.payload = bytes.Clone(p)
		}
	}
	if mask&fPriority != 0 {
		p := d.varint()
		if p < trigger.MinPriority || p > trigger.MaxPriority {
			d.fail(errRange)
		}
		t.Priority = int(p)
	}
	d.str(mask, fQueue, &t.Queue)
	d.int(mask, fAttempt, &t.Attempt)
	d.int(mask, fMaxAttempts, &t.MaxAttempts)
	d.int(mask, fIteration, &t.Iteration)
	d.str(mask, fCron, &t.Cron)
	d.str(mask, fTimeZone, &t.TimeZone)
	d.str(mask, fWaitKey, &t.WaitKey)
	d.str(mask, fMachine, &t.Machine)
	d.time(mask, fCreated, &t.CreatedAt)
	d.time(mask, fUpdated, &t.UpdatedAt)
	d.str(mask, fLastError, &t.LastError)
	if mask&fTrace != 0 {
		n := d.uvarint()
		// Each entry takes at least two bytes: bound n before allocating.
		if n > uint64(len(d.b))/2 {
			d.fail(errTruncated)
			n = 0
		}
		if n > 0 && !lite {
			t.TraceContext = make(map[string]string, n)
		}
		for range n {
			var k, v string
			d.str(fTrace, fTrace, &k)
			d.str(fTrace, fTrace, &v)
			if !lite {
				t.TraceContext[k] = v
			}
		}
	}
	d.str(mask, fOwner, &t.Owner)
	d.time(mask, fLease, &t.LeaseUntil)
	if mask&fToken != 0 {
		t.Token = d.uvarint()
	}
	t.PlannedAt = t.DueAt
	d.time(mask, fPlanned, &t.PlannedAt)
	var interval int
	d.int(mask, fInterval, &interval)
	t.Interval = time.Duration(interval)
	d.int(mask, fMaxIterations, &t.MaxIterations)
	t.Paused = mask&fPaused != 0
	d.str(mask, fParentID, &t.ParentID)
	if mask&fWaitKind != 0 {
		k := d.uvarint()
		if !trigger.WaitKind(min(k, 255)).Valid() {
			d.fail(errRange)
		}
		t.Wait.Kind = trigger.WaitKind(k)
	}
	d.time(mask, fWaitUntil, &t.Wait.Until)
	d.int(mask, fWaitPending, &t.Wait.Pending)
	if mask&fWaitFlags != 0 {
		f := d.uvarint()
		if f&^(waitResumed|waitCounted) != 0 {
			d.fail(errRange)
		}
		t.Wait.Resumed, r.counted = f&waitResumed != 0, f&waitCounted != 0
	}
	if mask&fBatch != 0 {
		r.batch = d.uvarint()
	}
	if d.err != nil {
		return r, d.err
	}
	if len(d.b) != 0 {
		return r, fmt.Errorf("%d trailing bytes", len(d.b))
	}
	// The indexes are computed from these fields: a record without them
	// could not be indexed or unindexed consistently.
	switch {
	case (t.State == trigger.StateScheduled || t.State == trigger.StateRetrying) && t.DueAt.IsZero():
		return r, fmt.Errorf("%s record without a due time", t.State)
	case t.State == trigger.StateRunning && t.LeaseUntil.IsZero():
		return r, errors.New("running record without a lease time")
	case t.State.Final() && t.UpdatedAt.IsZero():
		return r, fmt.Errorf("%s record without an update time", t.State)
	}
	return r, nil
}

// validPayload reports whether p is what encode writes: a JSON object.
func validPayload(p []byte) bool {
	p = bytes.TrimLeft(p, " \t\r\n")
	return len(p) > 0 && p[0] == '{' && json.Valid(p)
}

// trigger returns the record as a Trigger with its payload unmarshalled.
// The trigger shares nothing the caller may change with r: the store may
// keep r (see fresh.go and lease.rec).
func (r *record) trigger() (trigger.Trigger, error) {
	t := r.t
	if r.payload != nil {
		var p trigger.Payload
		if err := json.Unmarshal(r.payload, &p); err != nil {
			return t, fmt.Errorf("payload: %w", err)
		}
		t.Payload = p
	}
	if t.TraceContext != nil {
		t.TraceContext = maps.Clone(t.TraceContext)
	}
	return t, nil
}

// decoder reads a record body; the first error sticks and later reads
// return zero values.
type decoder struct {
	b    []byte
	err  error
	lite bool // check strings but do not copy them out
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errTruncated)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errTruncated)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(errTruncated)
		return nil
	}
	b := d.b[:n:n]
	d.b = d.b[n:]
	return b
}

func (d *decoder) str(mask, bit uint64, s *string) {
	if mask&bit != 0 {
		if b := d.bytes(); !d.lite {
			*s = string(b)
		}
	}
}

func (d *decoder) int(mask, bit uint64, v *int) {
	if mask&bit != 0 {
		u := d.uvarint()
		if u > math.MaxInt {
			d.fail(errRange)
		}
		*v = int(u)
	}
}

func (d *decoder) time(mask, bit uint64, t *time.Time) {
	if mask&bit == 0 {
		return
	}
	sec, nsec := d.varint(), d.uvarint()
	if d.err != nil {
		return
	}
	if sec > maxUnixSeconds || sec < -maxUnixSeconds || nsec >= 1e9 {
		d.fail(errRange)
		return
	}
	*t = time.Unix(sec, int64(nsec)).UTC()
}
