package main

import (
	"context"
	"fmt"
	"log"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/triggerkit/trigger"
	"github.com/triggerkit/trigger/store/memstore"
)

// cronTable: n CRON triggers with one spec, every 10 seconds, so that all of
// them fire in the same second. For each of triggerkit (Register on
// memstore, 16 workers) and robfig/cron (AddFunc, a goroutine per job), it
// measures adding them before and after Start (time per add, retained heap
// per entry: for triggerkit the memstore record, its indexes and, once
// started, its timer) and how late the jobs start after the boundary they
// are due at: the first one after adding, and the next.
func cronTable(n int) {
	t := newTable(fmt.Sprintf("Cron: %d triggers \"*/10 * * * * *\" firing in the same second, GOMAXPROCS=%d", n, runtime.GOMAXPROCS(0)),
		"run", "added", "ns/add", "allocs/add", "heap B/entry", "boundary", "late p50", "p99", "max", "runs")
	for _, run := range []struct {
		name string
		add  func(n int, started bool) cronRun
	}{
		{"triggerkit", cronTriggerkit},
		{"robfig/cron", cronRobfig},
	} {
		for _, started := range []bool{false, true} {
			r := run.add(n, started)
			when := "before Start"
			if started {
				when = "after Start"
			}
			for i, b := range r.boundaries {
				cells := []string{"", "", "", ""}
				if i == 0 {
					cells = []string{fmt.Sprintf("%.0f", r.nsPerAdd), fmt.Sprintf("%.2f", r.allocsPerAdd), fmt.Sprintf("%.0f", r.bytesPerEntry), ""}
				}
				t.row(run.name, when, cells[0], cells[1], cells[2], []string{"first", "second"}[i],
					dur(b.late.p(0.50)), dur(b.late.p(0.99)), dur(b.late.max()), strconv.Itoa(len(b.late)))
			}
		}
	}
}

type cronRun struct {
	nsPerAdd, allocsPerAdd, bytesPerEntry float64
	boundaries                            []boundary
}

// boundary is what was measured of the jobs due at one instant: how late
// each started after it.
type boundary struct {
	late samples
}

// lateness collects the starts of the jobs due at the next two boundaries.
// A start takes a slot with an atomic counter rather than a lock, so that
// measuring adds no lock for the 16 workers (or robfig/cron's goroutines)
// to queue on.
type lateness struct {
	n     int
	at    [2]time.Time
	late  [2][]time.Duration
	next  [2]atomic.Int64 // how many slots of late are taken
	count atomic.Int64
	done  chan struct{}
}

func newLateness(n int, first time.Time) *lateness {
	l := &lateness{n: n, at: [2]time.Time{first, first.Add(10 * time.Second)}, done: make(chan struct{})}
	for i := range l.late {
		l.late[i] = make([]time.Duration, n)
	}
	return l
}

// started records a job start for the boundary it stands for.
func (l *lateness) started(scheduled, now time.Time) {
	for i, at := range l.at {
		if !scheduled.Equal(at) {
			continue
		}
		if k := l.next[i].Add(1) - 1; k < int64(l.n) {
			l.late[i][k] = now.Sub(at)
		}
		if l.count.Add(1) == int64(2*l.n) {
			close(l.done)
		}
	}
}

func (l *lateness) result() []boundary {
	select {
	case <-l.done:
	case <-time.After(time.Until(l.at[1]) + 30*time.Second):
		log.Printf("cron: only %d of %d runs after 30s", l.count.Load(), 2*l.n)
	}
	out := make([]boundary, 2)
	for i := range out {
		k := min(int(l.next[i].Load()), l.n)
		out[i].late = append(samples(nil), l.late[i][:k]...)
	}
	return out
}

// justAfterBoundary waits until 200ms past a 10-second boundary, so that the
// adds finish well before the next one, and returns that next boundary.
func justAfterBoundary() time.Time {
	now := time.Now()
	b := now.Truncate(10 * time.Second)
	if now.Sub(b) > 200*time.Millisecond {
		b = b.Add(10 * time.Second)
	}
	time.Sleep(time.Until(b.Add(200 * time.Millisecond)))
	return b.Add(10 * time.Second)
}

const cronSpec = "*/10 * * * * *"

func cronTriggerkit(n int, started bool) cronRun {
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("cron-%05d", i)
	}
	var lat *lateness
	store := memstore.New()
	s, err := trigger.New(store, trigger.ConsumerFunc(func(ctx context.Context, t *trigger.Trigger) error {
		occ, _ := trigger.OccurrenceFromContext(ctx)
		lat.started(occ.Scheduled, time.Now())
		return nil
	}), measuredConfig())
	if err != nil {
		log.Fatal(err)
	}
	defer s.Stop(context.Background())
	ctx := context.Background()
	if started {
		must(s.Start(ctx))
	}
	first := justAfterBoundary()
	lat = newLateness(n, first)
	var m0, m1 runtime.MemStats
	before := heap()
	runtime.ReadMemStats(&m0)
	begin := time.Now()
	for _, id := range ids {
		if _, err := s.Register(ctx, trigger.Trigger{ID: id, Cron: cronSpec}); err != nil {
			log.Fatal(err)
		}
	}
	elapsed := time.Since(begin)
	runtime.ReadMemStats(&m1)
	after := heap()
	if !started {
		must(s.Start(ctx))
	}
	r := cronRun{
		nsPerAdd:      float64(elapsed.Nanoseconds()) / float64(n),
		allocsPerAdd:  float64(m1.Mallocs-m0.Mallocs) / float64(n),
		bytesPerEntry: float64(after-before) / float64(n),
	}
	r.boundaries = lat.result()
	runtime.KeepAlive(ids)
	return r
}

func cronRobfig(n int, started bool) cronRun {
	c := cron.New(cron.WithSeconds())
	if started {
		c.Start()
	}
	defer func() { <-c.Stop().Done() }()
	first := justAfterBoundary()
	lat := newLateness(n, first)
	var m0, m1 runtime.MemStats
	before := heap()
	runtime.ReadMemStats(&m0)
	begin := time.Now()
	for range n {
		if _, err := c.AddFunc(cronSpec, func() {
			now := time.Now()
			lat.started(now.Truncate(10*time.Second), now)
		}); err != nil {
			log.Fatal(err)
		}
	}
	elapsed := time.Since(begin)
	runtime.ReadMemStats(&m1)
	after := heap()
	if !started {
		c.Start()
	}
	return cronRun{
		nsPerAdd:      float64(elapsed.Nanoseconds()) / float64(n),
		allocsPerAdd:  float64(m1.Mallocs-m0.Mallocs) / float64(n),
		bytesPerEntry: float64(after-before) / float64(n),
		boundaries:    lat.result(),
	}
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
