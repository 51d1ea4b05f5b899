package boltstore

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"reflect"
	"testing"
	"time"

	"github.com/triggerkit/trigger"
)

// fullRecord returns a record with every field set.
func fullRecord() record {
	return record{
		t: trigger.Trigger{
			ID:               "id",
			Type:             trigger.TypeCron,
			State:            trigger.StateRunning,
			InstanceID:       "instance",
			ParentInstanceID: "parent",
			NodeID:           "node",
			EdgeID:           "edge",
			DueAt:            time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
			Priority:         trigger.MinPriority,
			Queue:            "queue",
			Attempt:          3,
			MaxAttempts:      5,
			Iteration:        1 << 40,
			Cron:             "*/5 * * * *",
			TimeZone:         "Europe/Berlin",
			Misfire:          trigger.MisfireFireAll,
			PlannedAt:        time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC),
			Interval:         1500 * time.Millisecond,
			MaxIterations:    7,
			Paused:           true,
			WaitKey:          "wait",
			Machine:          "small-1x",
			CreatedAt:        time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC),
			UpdatedAt:        time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC),
			LastError:        "boom",
			TraceContext:     map[string]string{"traceparent": "00-abc-def-01", "": ""},
			Owner:            "owner",
			LeaseUntil:       time.Date(2026, 1, 2, 3, 5, 5, 0, time.UTC),
			Token:            1<<64 - 1,
			ParentID:         "parent-trigger",
			Wait:             trigger.Wait{Kind: trigger.WaitKindToken, Until: time.Date(2026, 1, 2, 3, 6, 0, 0, time.UTC), Resumed: true, Pending: 7},
		},
		payload: []byte(`{"n":1.5,"s":"x","l":[1,{"k":null}]}`),
		counted: true,
		batch:   1<<64 - 1,
	}
}

func TestCodecRoundTrip(t *testing.T) {
	t.Parallel()
	minimal := record{t: trigger.Trigger{ID: "m", Type: trigger.TypeManual, State: trigger.StateWaiting}}
	for name, r := range map[string]record{"full": fullRecord(), "minimal": minimal} {
		got, err := decodeRecord(r.t.ID, r.encode())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("%s: round trip\n got %+v\nwant %+v", name, got, r)
		}
	}
	// The encoding is compact: the minimal record is its four header bytes
	// and an empty field set.
	if n := len((&minimal).encode()); n != 5 {
		t.Errorf("minimal record is %d bytes, want 5", n)
	}
}

// PlannedAt costs nothing while it is the due time, and records written
// before it existed read back with PlannedAt = DueAt.
func TestCodecPlannedAt(t *testing.T) {
	t.Parallel()
	due := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	same := record{t: trigger.Trigger{ID: "s", Type: trigger.TypeCron, State: trigger.StateScheduled, DueAt: due, PlannedAt: due}}
	b := same.encode()
	if mask, _ := binary.Uvarint(b[4:]); mask != fDue {
		t.Errorf("a record planned at its due time has fields %#x, want only fDue", mask)
	}
	// The same bytes as version 1 wrote them before fPlanned.
	old := append([]byte{recordVersion, byte(trigger.TypeCron), byte(trigger.StateScheduled), 0, fDue}, b[5:]...)
	got, err := decodeRecord("s", old)
	if err != nil || !got.t.PlannedAt.Equal(due) {
		t.Errorf("an old record decodes with PlannedAt %v (%v), want %v", got.t.PlannedAt, err, due)
	}
}

// A child's batch (format version 7) costs nothing on other records, and a
// child written before it decodes with none: the bytes below are a
// scheduled child of "p" as version 6 wrote it.
func TestCodecBatch(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 1, 0, 0, 1, 0, time.UTC)
	child := record{t: trigger.Trigger{ID: "k1", Type: trigger.TypeNext, State: trigger.StateScheduled, DueAt: at, PlannedAt: at,
		CreatedAt: at, UpdatedAt: at, Token: 5, ParentID: "p"}}
	v6, err := hex.DecodeString("010101009080862182e4ad950d0082e4ad950d0082e4ad950d00050170")
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeRecord("k1", v6)
	if err != nil || !reflect.DeepEqual(got, child) {
		t.Fatalf("a version 6 child decodes as %+v (%v), want %+v", got, err, child)
	}
	if b := child.encode(); !bytes.Equal(b, v6) {
		t.Errorf("a record without a batch encodes as %x, not as version 6 did", b)
	}
	child.batch = 5
	b := child.encode()
	if mask, _ := binary.Uvarint(b[4:]); mask&fBatch == 0 {
		t.Errorf("a child's batch is not written: fields %#x", mask)
	}
	if got, err := decodeRecord("k1", b); err != nil || got.batch != 5 {
		t.Errorf("a child's batch reads back as %d (%v), want 5", got.batch, err)
	}
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	full := fullRecord()
	good := full.encode()
	for name, b := range map[string][]byte{
		"empty":          nil,
		"short":          good[:3],
		"version":        append([]byte{9}, good[1:]...),
		"type":           append([]byte{recordVersion, 0}, good[2:]...),
		"state":          append([]byte{recordVersion, 1, 99}, good[3:]...),
		"misfire":        append([]byte{recordVersion, 1, 1, 9}, good[4:]...),
		"unknown field":  {recordVersion, 1, 4, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},
		"truncated":      good[:len(good)-1],
		"trailing":       append(bytes.Clone(good), 0),
		"long string":    {recordVersion, 1, 4, 0, fInstance, 0x7f, 'a'},
		"bad payload":    {recordVersion, 1, 4, 0, fPayload, 1, '['},
		"no due time":    {recordVersion, 1, 1, 0, 0},
		"nanos":          {recordVersion, 1, 4, 0, fDue, 0, 0x80, 0x94, 0xeb, 0xdc, 0x03},
		"huge trace map": {recordVersion, 1, 4, 0, 0x80, 0x80, 0x10, 0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		_, err := decodeRecord("x", b)
		if err == nil {
			t.Errorf("%s: decoded %x without error", name, b)
		}
	}
}

// FuzzDecode checks that the decoder never panics and that whatever it
// accepts encodes back to a record that decodes to the same trigger.
func FuzzDecode(f *testing.F) {
	full := fullRecord()
	f.Add(full.encode())
	f.Add((&record{t: trigger.Trigger{Type: trigger.TypeNext, State: trigger.StateScheduled, DueAt: time.Unix(1, 2)}}).encode())
	f.Add((&record{t: trigger.Trigger{Type: trigger.TypeEvent, State: trigger.StateWaiting}, payload: []byte(`{}`)}).encode())
	f.Add([]byte{recordVersion, 1, 1, 0, fDue, 2, 4})
	f.Add([]byte("\x01garbage"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord("id", b)
		if _, cerr := checkRecord("id", b); (cerr == nil) != (err == nil) {
			t.Fatalf("decodeRecord and checkRecord disagree on %x: %v, %v", b, err, cerr)
		}
		if err != nil {
			return
		}
		tr, err := r.trigger()
		if err != nil {
			t.Fatalf("decoded record %x has a payload that does not unmarshal: %v", b, err)
		}
		again, err := decodeRecord("id", r.encode())
		if err != nil {
			t.Fatalf("re-encoding of %x does not decode: %v", b, err)
		}
		tr2, err := again.trigger()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(tr, tr2) {
			t.Fatalf("round trip of %x changed the trigger:\n%+v\n%+v", b, tr, tr2)
		}
	})
}

func TestKeysSortLikeTheOrder(t *testing.T) {
	t.Parallel()
	times := []time.Time{time.Unix(-1, 999999999), time.Unix(0, 0), time.Unix(0, 1), time.Unix(1, 0), time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)}
	var keys [][]byte
	for _, tm := range times {
		for _, p := range []int{trigger.MaxPriority, 1, 0, -1, trigger.MinPriority} {
			for _, id := range []string{"a", "a\x00", "b"} {
				keys = append(keys, dueKey(tm, p, id))
			}
		}
	}
	for i := 1; i < len(keys); i++ {
		if bytes.Compare(keys[i-1], keys[i]) >= 0 {
			t.Fatalf("key %d %x does not sort before key %d %x", i-1, keys[i-1], i, keys[i])
		}
	}
	ref, ok := parseDueKey(dueKey(times[0], -7, "id"))
	if !ok || ref.ID != "id" || ref.Priority != -7 || !ref.DueAt.Equal(times[0]) {
		t.Fatalf("parseDueKey = %+v, %v", ref, ok)
	}
}

// The field bits are the file format: a field keeps its bit for good, and
// a new one takes the next (version 4's recurring fields, version 5's wait
// fields, then version 7's batch). Records written by an older version decode unchanged only
// while these hold.
func TestFieldBits(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct{ got, want uint64 }{
		"fToken":       {fToken, 1 << 21},
		"fPlanned":     {fPlanned, 1 << 22},  // version 4
		"fPaused":      {fPaused, 1 << 25},   // version 4
		"fParentID":    {fParentID, 1 << 26}, // version 5
		"fWaitKind":    {fWaitKind, 1 << 27},
		"fWaitUntil":   {fWaitUntil, 1 << 28},
		"fWaitPending": {fWaitPending, 1 << 29},
		"fWaitFlags":   {fWaitFlags, 1 << 30},
		"fBatch":       {fBatch, 1 << 31}, // version 7
		"fAll":         {fAll, 1<<32 - 1},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", name, c.got, c.want)
		}
	}
}
