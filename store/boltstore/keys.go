package boltstore

import (
	"encoding/binary"
	"time"

	"github.com/triggerkit/trigger"
)

// Index keys. Every index is a bucket of keys with empty values, so a query
// is a cursor range scan and never reads a record it does not return.
//
//	due    time | inverted priority | id   scheduled and retrying triggers at
//	                                        their due time, running ones at
//	                                        their lease deadline
//	state  state | id                      every trigger
//	final  state | time | id               final triggers at their UpdatedAt
//
// A time is 12 bytes that sort like the time: the Unix seconds as a
// big-endian uint64 with the sign bit flipped, then the nanoseconds as a
// big-endian uint32. The inverted priority is MaxPriority-priority as a
// big-endian uint16, so higher priorities sort first. IDs come last and sort
// bytewise, which is Go's string order.
const (
	timeKeyLen = 12
	dueIDAt    = timeKeyLen + 2
	finalIDAt  = 1 + timeKeyLen
)

func appendTimeKey(b []byte, t time.Time) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(t.Unix())^1<<63)
	return binary.BigEndian.AppendUint32(b, uint32(t.Nanosecond()))
}

func parseTimeKey(b []byte) time.Time {
	sec := int64(binary.BigEndian.Uint64(b) ^ 1<<63)
	return time.Unix(sec, int64(binary.BigEndian.Uint32(b[8:]))).UTC()
}

func dueKey(at time.Time, priority int, id string) []byte {
	return appendDueKey(make([]byte, 0, dueIDAt+len(id)), at, priority, id)
}

func appendDueKey(b []byte, at time.Time, priority int, id string) []byte {
	b = appendTimeKey(b, at)
	b = binary.BigEndian.AppendUint16(b, uint16(trigger.MaxPriority-priority))
	return append(b, id...)
}

// parseDueKey returns the ref a due key stands for; ok is false for a key
// too short to be one.
func parseDueKey(k []byte) (ref trigger.Ref, ok bool) {
	if len(k) <= dueIDAt {
		return ref, false
	}
	return trigger.Ref{
		ID:       string(k[dueIDAt:]),
		DueAt:    parseTimeKey(k),
		Priority: trigger.MaxPriority - int(binary.BigEndian.Uint16(k[timeKeyLen:])),
	}, true
}

func stateKey(s trigger.State, id string) []byte {
	return append([]byte{byte(s)}, id...)
}

func finalKey(s trigger.State, at time.Time, id string) []byte {
	return appendFinalKey(make([]byte, 0, finalIDAt+len(id)), s, at, id)
}

func appendFinalKey(b []byte, s trigger.State, at time.Time, id string) []byte {
	b = append(b, byte(s))
	b = appendTimeKey(b, at)
	return append(b, id...)
}

// dueTime returns where t sits in the due index, and whether it is there at
// all. Final, paused and waiting triggers are not, but for a waiting one
// with a timeout (at the timeout): no time makes them claimable, so the due
// scan never has to step over them. (A paused running trigger is: its lease
// may expire.)
func dueTime(t *trigger.Trigger) (time.Time, bool) {
	switch t.State {
	case trigger.StateScheduled, trigger.StateRetrying:
		return t.DueAt, !t.Paused
	case trigger.StateRunning:
		return t.LeaseUntil, true
	case trigger.StateWaiting:
		return t.DueAt, !t.DueAt.IsZero() && !t.Paused // a wait's timeout
	}
	return time.Time{}, false
}

// stateIndexed reports whether triggers in state s have a state index
// entry.
func stateIndexed(s trigger.State) bool {
	return s != trigger.StateScheduled && s != trigger.StateCompleted
}

// keysOf returns the keys of t in the due, state and final indexes (nil
// where t has none).
//
// Scheduled and completed triggers, the bulk of a store, have no state
// index entry: it would cost every Save and every completion a write to one
// more bucket (a page or more in each commit), and List of them scans the
// records instead (see stateIndexed). The state index serves the states
// worth listing fast: waiting, retrying, running, failed and canceled.
func keysOf(t *trigger.Trigger) indexSet {
	_, k := appendKeys(make([]byte, 0, keysSize(t.ID)), t)
	return k
}

// keysSize is the most bytes appendKeys appends for a trigger with this ID.
func keysSize(id string) int {
	return dueIDAt + 1 + finalIDAt + 3*len(id)
}

// appendKeys appends t's index keys to b and returns them as slices of the
// result (with room for keysSize(t.ID), b does not grow).
func appendKeys(b []byte, t *trigger.Trigger) ([]byte, indexSet) {
	var k indexSet
	if due, ok := dueTime(t); ok {
		start := len(b)
		b = appendDueKey(b, due, t.Priority, t.ID)
		k.due = b[start:len(b):len(b)]
	}
	if stateIndexed(t.State) {
		start := len(b)
		b = append(append(b, byte(t.State)), t.ID...)
		k.state = b[start:len(b):len(b)]
	}
	if t.State.Final() {
		start := len(b)
		b = appendFinalKey(b, t.State, t.UpdatedAt, t.ID)
		k.final = b[start:len(b):len(b)]
	}
	return b, k
}
