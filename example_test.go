package trigger_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/triggerkit/trigger"
	"github.com/triggerkit/trigger/store/memstore"
)

// A scheduler on the in-memory store runs a trigger when it is due.
func Example() {
	ctx := context.Background()
	done := make(chan struct{})
	consumer := trigger.ConsumerFunc(func(ctx context.Context, t *trigger.Trigger) error {
		fmt.Printf("run %s of %s: %v (attempt %d)\n", t.NodeID, t.InstanceID, t.Payload["greeting"], t.Attempt)
		close(done)
		return nil
	})
	s, err := trigger.New(memstore.New(), consumer, trigger.Config{Logger: quiet})
	if err != nil {
		panic(err)
	}
	if err := s.Start(ctx); err != nil {
		panic(err)
	}
	defer s.Stop(ctx)

	id, err := s.Schedule(ctx, trigger.Trigger{
		InstanceID: "order-42",
		NodeID:     "send-mail",
		DueAt:      time.Now().Add(10 * time.Millisecond),
		Payload:    trigger.Payload{"greeting": "hello"},
	})
	if err != nil {
		panic(err)
	}
	<-done
	s.Stop(ctx) // waits for the outcome to be recorded
	t, _ := s.Get(ctx, id)
	fmt.Println("state:", t.State)
	// Output:
	// run send-mail of order-42: hello (attempt 1)
	// state: completed
}

// A consumer hands the next node back with its completion: both are stored
// in one atomic write.
func ExampleComplete() {
	ctx := context.Background()
	done := make(chan struct{})
	consumer := trigger.ConsumerFunc(func(ctx context.Context, t *trigger.Trigger) error {
		fmt.Println("run", t.NodeID)
		if t.NodeID == "validate" {
			return trigger.Complete(trigger.Trigger{NodeID: "ship", DueAt: time.Now()})
		}
		close(done)
		return nil
	})
	s, _ := trigger.New(memstore.New(), consumer, trigger.Config{Logger: quiet})
	s.Start(ctx)
	defer s.Stop(ctx)
	s.Schedule(ctx, trigger.Trigger{InstanceID: "order-7", NodeID: "validate", DueAt: time.Now()})
	<-done
	// Output:
	// run validate
	// run ship
}

// An error is retried with backoff; when the attempts run out the trigger
// is failed and kept with its last error.
func ExampleRetryAfter() {
	ctx := context.Background()
	done := make(chan struct{})
	consumer := trigger.ConsumerFunc(func(ctx context.Context, t *trigger.Trigger) error {
		fmt.Println("attempt", t.Attempt)
		if t.Attempt == t.MaxAttempts {
			defer close(done)
		}
		return trigger.RetryAfter(time.Millisecond, errors.New("upstream down"))
	})
	s, _ := trigger.New(memstore.New(), consumer, trigger.Config{Logger: quiet})
	s.Start(ctx)
	id, _ := s.Schedule(ctx, trigger.Trigger{NodeID: "call-api", DueAt: time.Now(), MaxAttempts: 3})
	<-done
	s.Stop(ctx)
	t, _ := s.Get(ctx, id)
	fmt.Println(t.State, "with", t.LastError)
	// Output:
	// attempt 1
	// attempt 2
	// attempt 3
	// failed with upstream down
}

// A MANUAL trigger waits until somebody fires it.
func ExampleScheduler_Fire() {
	ctx := context.Background()
	done := make(chan struct{})
	consumer := trigger.ConsumerFunc(func(ctx context.Context, t *trigger.Trigger) error {
		fmt.Println("approved:", t.ID)
		close(done)
		return nil
	})
	s, _ := trigger.New(memstore.New(), consumer, trigger.Config{Logger: quiet})
	s.Start(ctx)
	defer s.Stop(ctx)
	s.Schedule(ctx, trigger.Trigger{ID: "approve-order-9", Type: trigger.TypeManual})
	t, _ := s.Get(ctx, "approve-order-9")
	fmt.Println("before:", t.State)
	if err := s.Fire(ctx, "approve-order-9"); err != nil {
		panic(err)
	}
	<-done
	// Output:
	// before: waiting
	// approved: approve-order-9
}

// Every replica registers its recurring jobs at start: the store keeps one
// trigger per ID, and registering the same definition again changes
// nothing.
func ExampleScheduler_Register() {
	ctx := context.Background()
	runs := make(chan trigger.Occurrence, 16)
	consumer := trigger.ConsumerFunc(func(ctx context.Context, t *trigger.Trigger) error {
		occ, _ := trigger.OccurrenceFromContext(ctx) // the scheduled time this run stands for
		runs <- occ
		return nil
	})
	s, err := trigger.New(memstore.New(), consumer, trigger.Config{Logger: quiet})
	if err != nil {
		panic(err)
	}
	if err := s.Start(ctx); err != nil {
		panic(err)
	}
	defer s.Stop(ctx)

	for range 2 {
		res, err := s.Register(ctx, trigger.Trigger{ID: "report", Cron: "@every 20ms", NodeID: "report"})
		if err != nil {
			panic(err)
		}
		fmt.Println("register:", res)
	}
	var last time.Time
	for range 3 {
		occ := <-runs
		fmt.Println("ran, after the previous occurrence:", occ.Scheduled.After(last))
		last = occ.Scheduled
	}
	// Output:
	// register: created
	// register: unchanged
	// ran, after the previous occurrence: true
	// ran, after the previous occurrence: true
	// ran, after the previous occurrence: true
}

// A cron spec is read in its time zone, and a wall-clock time that the
// spring change skips runs when the clocks jump.
func ExampleParseCron() {
	sched, err := trigger.ParseCron("30 2 * * *", "America/New_York")
	if err != nil {
		panic(err)
	}
	ny, _ := time.LoadLocation("America/New_York")
	t := time.Date(2026, 3, 7, 12, 0, 0, 0, ny)
	for range 3 {
		t = sched.Next(t)
		fmt.Println(t.In(ny).Format("Mon Jan 2 15:04 MST"))
	}
	// Output:
	// Sun Mar 8 03:00 EDT
	// Mon Mar 9 02:30 EDT
	// Tue Mar 10 02:30 EDT
}
