package storetest

import (
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/triggerkit/trigger"
)

// full returns a trigger with every field a caller may set.
func full(id string) trigger.Trigger {
	return trigger.Trigger{
		ID:               id,
		Type:             trigger.TypeCron,
		InstanceID:       "instance-1",
		ParentInstanceID: "parent-1",
		NodeID:           "node-1",
		EdgeID:           "edge-1",
		DueAt:            at(time.Hour),
		Payload:          trigger.Payload{"n": 1.5, "s": "x"},
		Priority:         -7,
		Queue:            "queue-1",
		Attempt:          2,
		MaxAttempts:      5,
		Iteration:        9,
		Cron:             "*/5 * * * *",
		TimeZone:         "Europe/Berlin",
		Misfire:          trigger.MisfireSkip,
		Interval:         90 * time.Second,
		MaxIterations:    12,
		WaitKey:          "key-1",
		Machine:          "small-1x",
		CreatedAt:        at(-time.Hour),
		LastError:        "earlier failure",
		TraceContext:     map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
	}
}

func (s suite) save(t *testing.T) {
	s.test(t, "RoundTripsEveryField", func(h *harness) {
		in := full("a")
		// The store owns these: Save ignores them.
		in.State = trigger.StateCompleted
		in.UpdatedAt = at(-time.Minute)
		in.Owner, in.LeaseUntil, in.Token, in.Recovered = "someone", at(time.Minute), 42, true
		in.PlannedAt, in.Paused, in.Delay = at(-time.Hour), true, time.Hour
		h.save(in)
		h.expect(stored(full("a"), t0))
	})
	s.test(t, "RoundTripsEachFieldAlone", func(h *harness) {
		// A store may keep apart the fields most triggers leave empty,
		// and skip them when all are: each must survive on its own.
		f := reflect.ValueOf(full("x"))
		for i := range f.NumField() {
			name := f.Type().Field(i).Name
			if f.Field(i).IsZero() || name == "ID" || name == "Type" || name == "DueAt" {
				continue
			}
			in := plain("alone-"+name, at(time.Hour))
			reflect.ValueOf(&in).Elem().Field(i).Set(f.Field(i))
			h.save(in)
			h.expect(stored(in, t0))
		}
	})
	s.test(t, "SetsCreatedAtAndUpdatedAtFromNow", func(h *harness) {
		h.save(plain("a", at(time.Hour)))
		got := h.get("a")
		if !got.CreatedAt.Equal(t0) || !got.UpdatedAt.Equal(t0) {
			h.Errorf("CreatedAt, UpdatedAt = %v, %v; want both %v (Save's now)", got.CreatedAt, got.UpdatedAt, t0)
		}
	})
	s.test(t, "InitialState", func(h *harness) {
		for _, c := range []struct {
			tr   trigger.Trigger
			want trigger.State
		}{
			{trigger.Trigger{ID: "next", Type: trigger.TypeNext, DueAt: t0}, trigger.StateScheduled},
			{trigger.Trigger{ID: "retry", Type: trigger.TypeRetry, DueAt: t0}, trigger.StateScheduled},
			{trigger.Trigger{ID: "loop", Type: trigger.TypeLoop, DueAt: t0}, trigger.StateScheduled},
			{trigger.Trigger{ID: "timer", Type: trigger.TypeTimer, DueAt: t0}, trigger.StateScheduled},
			{trigger.Trigger{ID: "cron", Type: trigger.TypeCron, DueAt: t0}, trigger.StateScheduled},
			{trigger.Trigger{ID: "manual-due", Type: trigger.TypeManual, DueAt: t0}, trigger.StateScheduled},
			{trigger.Trigger{ID: "event-due", Type: trigger.TypeEvent, DueAt: t0}, trigger.StateScheduled},
			{trigger.Trigger{ID: "manual", Type: trigger.TypeManual}, trigger.StateWaiting},
			{trigger.Trigger{ID: "event", Type: trigger.TypeEvent}, trigger.StateWaiting},
			{trigger.Trigger{ID: "state-ignored", Type: trigger.TypeEvent, State: trigger.StateRunning}, trigger.StateWaiting},
		} {
			h.save(c.tr)
			if got := h.get(c.tr.ID).State; got != c.want {
				h.Errorf("%s trigger %q with DueAt %v saved as %s, want %s", c.tr.Type, c.tr.ID, c.tr.DueAt, got, c.want)
			}
		}
	})
	s.test(t, "Duplicate", func(h *harness) {
		h.save(full("a"))
		h.changesNothing(trigger.ErrDuplicate, "Save of an existing ID", func() error {
			return h.s.Save(h.ctx, at(time.Second), plain("a", t0))
		})
	})
	s.test(t, "KeepsNoReferenceToTheArgument", func(h *harness) {
		in := full("a")
		h.save(in)
		in.Payload["n"] = 2.5
		in.TraceContext["traceparent"] = "changed"
		h.expect(stored(full("a"), t0))
	})
	s.test(t, "ConcurrentSameID", func(h *harness) {
		errs := together(32, func(i int) error {
			return h.s.Save(h.ctx, t0, trigger.Trigger{ID: "a", Type: trigger.TypeNext, DueAt: t0, Priority: i})
		})
		w := h.oneWins(errs, trigger.ErrDuplicate, "32 concurrent Saves of one ID")
		if got := h.get("a").Priority; got != w {
			h.Errorf("stored trigger has priority %d; the winning Save had %d", got, w)
		}
	})
}

func (s suite) saveBatch(t *testing.T) {
	s.test(t, "StoresEveryTrigger", func(h *harness) {
		in := []trigger.Trigger{full("a"), plain("b", t0), waiting("c")}
		h.is(h.s.SaveBatch(h.ctx, t0, in), nil, "SaveBatch")
		for _, tr := range in {
			h.expect(stored(tr, t0))
		}
	})
	s.test(t, "Empty", func(h *harness) {
		h.is(h.s.SaveBatch(h.ctx, t0, nil), nil, "SaveBatch(nil)")
		h.is(h.s.SaveBatch(h.ctx, t0, []trigger.Trigger{}), nil, "SaveBatch(empty)")
	})
	for _, c := range []struct {
		name  string
		batch []trigger.Trigger
		want  error
	}{
		{"AtomicOnStoredID", []trigger.Trigger{plain("new-1", t0), plain("old", t0), plain("new-2", t0)}, trigger.ErrDuplicate},
		{"AtomicOnIDTwiceInBatch", []trigger.Trigger{plain("new-1", t0), plain("new-2", t0), plain("new-1", at(time.Second))}, trigger.ErrDuplicate},
		{"AtomicOnInvalidTrigger", []trigger.Trigger{plain("new-1", t0), {ID: "new-2", Type: trigger.TypeNext}}, trigger.ErrInvalid},
		{"AtomicOnUnserialisablePayload", []trigger.Trigger{plain("new-1", t0), {ID: "new-2", Type: trigger.TypeNext, DueAt: t0, Payload: trigger.Payload{"c": make(chan int)}}}, trigger.ErrInvalid},
	} {
		s.test(t, c.name, func(h *harness) {
			h.save(plain("old", t0))
			h.changesNothing(c.want, "SaveBatch", func() error { return h.s.SaveBatch(h.ctx, t0, c.batch) })
		})
	}
}

func (s suite) get(t *testing.T) {
	s.test(t, "NotFound", func(h *harness) {
		h.save(plain("a", t0))
		h.absent("b")
	})
	s.test(t, "ReturnsCopies", func(h *harness) {
		in := full("a")
		in.Payload = trigger.Payload{"nested": map[string]any{"k": "v"}, "list": []any{"x"}}
		h.save(in)
		got := h.get("a")
		got.Payload["nested"].(map[string]any)["k"] = "changed"
		got.Payload["list"].([]any)[0] = "changed"
		got.Payload["new"] = true
		got.TraceContext["traceparent"] = "changed"
		h.expect(stored(in, t0))
	})
}

func (s suite) payload(t *testing.T) {
	s.test(t, "RoundTripsAsJSON", func(h *harness) {
		type point struct {
			X int `json:"x"`
		}
		in := plain("a", t0)
		in.Payload = trigger.Payload{
			"int":    7,
			"float":  2.5,
			"string": "s",
			"bool":   true,
			"null":   nil,
			"list":   []int{1, 2},
			"map":    map[string]int{"k": 3},
			"struct": point{X: 4},
		}
		h.save(in)
		want := trigger.Payload{
			"int":    float64(7),
			"float":  2.5,
			"string": "s",
			"bool":   true,
			"null":   nil,
			"list":   []any{float64(1), float64(2)},
			"map":    map[string]any{"k": float64(3)},
			"struct": map[string]any{"x": float64(4)},
		}
		if got := h.get("a").Payload; !reflect.DeepEqual(got, want) {
			h.Errorf("payload read back as %#v, want %#v", got, want)
		}
	})
	s.test(t, "Empty", func(h *harness) {
		h.save(plain("nil", t0))
		in := plain("empty", t0)
		in.Payload = trigger.Payload{}
		h.save(in)
		for _, id := range []string{"nil", "empty"} {
			if got := h.get(id).Payload; len(got) != 0 {
				h.Errorf("trigger %q saved with an empty payload read back with %v", id, got)
			}
		}
	})
	for name, v := range map[string]any{
		"Chan": make(chan int),
		"Func": func() {},
		"NaN":  math.NaN(),
	} {
		s.test(t, "Unserialisable"+name, func(h *harness) {
			in := plain("a", t0)
			in.Payload = trigger.Payload{"ok": 1, "bad": v}
			h.changesNothing(trigger.ErrInvalid, "Save with a "+name+" in the payload", func() error { return h.s.Save(h.ctx, t0, in) })
		})
	}
}
