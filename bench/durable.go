package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"

	"github.com/triggerkit/trigger"
	"github.com/triggerkit/trigger/store/boltstore"
)

const durableN = 50000

// durableTable: 50,000 triggers due now on a bbolt file on this machine's
// disk: the schedule rate with 1, 16 and 64 producers (scheduler not
// started: Schedule alone), then end to end with 64 producers.
func durableTable(dir string) {
	t := newTable(fmt.Sprintf("Durable: %d triggers due now, bbolt on disk, GOMAXPROCS=%d", durableN, runtime.GOMAXPROCS(0)),
		"run", "producers", "workers", "triggers/s", "due→start p50", "p99", "max")
	// The disk's speed varies from run to run on a shared VM: raw bbolt,
	// measured in the same run, says what this disk could do at that moment.
	t.row("raw bbolt, 1 put per txn", "1", "-", rate(rawBoltN, rawBolt(filepath.Join(dir, "raw-1.db"), 1)), "-", "-", "-")
	t.row("raw bbolt Batch, 1 put", "64", "-", rate(durableN, rawBolt(filepath.Join(dir, "raw-64.db"), 64)), "-", "-", "-")
	for _, p := range []int{1, 16, 64} {
		path := filepath.Join(dir, fmt.Sprintf("schedule-%d.db", p))
		store := openBolt(path)
		s, err := trigger.New(store, trigger.ConsumerFunc(func(context.Context, *trigger.Trigger) error { return nil }), trigger.Config{Logger: quiet})
		if err != nil {
			log.Fatal(err)
		}
		elapsed := produce(s, p, durableN, time.Now)
		t.row("schedule", strconv.Itoa(p), "-", rate(durableN, elapsed), "-", "-", "-")
		s.Stop(context.Background())
		closeBolt(store, path)
	}
	for _, workers := range []int{16, 64, 256} {
		r := endToEnd(filepath.Join(dir, fmt.Sprintf("e2e-%d.db", workers)), 64, workers)
		t.row("end to end", "64", strconv.Itoa(workers), rate(durableN, r.elapsed), dur(r.lat.p(0.5)), dur(r.lat.p(0.99)), dur(r.lat.max()))
	}
}

const rawBoltN = 3000

// rawBolt puts 60-byte values into one bucket: one transaction per put with
// one goroutine, or db.Batch (MaxBatchSize 64) with more. It returns how
// long rawBoltN (one goroutine) or durableN puts took.
func rawBolt(path string, goroutines int) time.Duration {
	os.Remove(path)
	defer os.Remove(path)
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	bucket := []byte("b")
	if err := db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket(bucket); return err }); err != nil {
		log.Fatal(err)
	}
	put := func(i int64) func(tx *bbolt.Tx) error {
		return func(tx *bbolt.Tx) error {
			return tx.Bucket(bucket).Put([]byte("k"+strconv.FormatInt(i, 10)), make([]byte, 60))
		}
	}
	begin := time.Now()
	if goroutines == 1 {
		for i := range int64(rawBoltN) {
			if err := db.Update(put(i)); err != nil {
				log.Fatal(err)
			}
		}
		return time.Since(begin)
	}
	db.MaxBatchSize = goroutines
	var next atomic.Int64
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for i := next.Add(1); i <= durableN; i = next.Add(1) {
				if err := db.Batch(put(i)); err != nil {
					log.Fatal(err)
				}
			}
		})
	}
	wg.Wait()
	return time.Since(begin)
}

type e2eResult struct {
	elapsed time.Duration
	lat     samples
}

// endToEnd schedules durableN triggers due now from producers goroutines on
// a started scheduler and waits until every one is completed on disk.
func endToEnd(path string, producers, workers int) e2eResult {
	store := openBolt(path)
	defer closeBolt(store, path)
	lat := make([]time.Duration, durableN)
	var started atomic.Int64
	consumer := trigger.ConsumerFunc(func(ctx context.Context, t *trigger.Trigger) error {
		lat[started.Add(1)-1] = time.Since(t.DueAt)
		return nil
	})
	counted := &finishCounter{Store: store, want: durableN, done: make(chan struct{})}
	s, err := trigger.New(counted, consumer, trigger.Config{Workers: workers, Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	defer s.Stop(context.Background())
	begin := time.Now()
	produce(s, producers, durableN, time.Now)
	select {
	case <-counted.done:
	case <-time.After(5 * time.Minute):
		log.Fatalf("end to end: %d of %d completed after 5 minutes", counted.n.Load(), durableN)
	}
	return e2eResult{elapsed: time.Since(begin), lat: samples(lat[:started.Load()])}
}

// finishCounter closes done when want runs have been completed durably.
type finishCounter struct {
	trigger.Store
	n    atomic.Int64
	want int64
	done chan struct{}
}

func (c *finishCounter) Finish(ctx context.Context, id string, token uint64, o trigger.Outcome) error {
	err := c.Store.Finish(ctx, id, token, o)
	if err == nil && o.Kind == trigger.OutcomeComplete && c.n.Add(1) == c.want {
		close(c.done)
	}
	return err
}

// FinishBatch counts like Finish, so that the scheduler records outcomes in
// groups through it as it does through the store it wraps.
func (c *finishCounter) FinishBatch(ctx context.Context, fs []trigger.Finishing) []error {
	errs := c.Store.(trigger.BatchFinisher).FinishBatch(ctx, fs)
	for i, f := range fs {
		if errs[i] == nil && f.Outcome.Kind == trigger.OutcomeComplete && c.n.Add(1) == c.want {
			close(c.done)
		}
	}
	return errs
}

// produce schedules n triggers due at due() from p goroutines and returns
// how long it took.
func produce(s *trigger.Scheduler, p, n int, due func() time.Time) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	begin := time.Now()
	for range p {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				if _, err := s.Schedule(context.Background(), trigger.Trigger{ID: "d" + strconv.FormatInt(i, 10), DueAt: due()}); err != nil {
					log.Fatal(err)
				}
			}
		})
	}
	wg.Wait()
	return time.Since(begin)
}

func openBolt(path string) *boltstore.Store {
	store, err := boltstore.Open(path, &boltstore.Options{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	return store
}

func closeBolt(store *boltstore.Store, path string) {
	if err := store.Close(); err != nil {
		log.Fatal(err)
	}
	os.Remove(path)
}

func rate(n int, d time.Duration) string {
	return fmt.Sprintf("%.0f", float64(n)/d.Seconds())
}

const (
	recoveryN   = 1000000
	recoveryDue = recoveryN / 100 // due now; the rest are due in the far future
)

// recoveryTable: start-up with 1,000,000 pending triggers on disk, 99% due
// in the far future. Each measurement runs in a fresh process so that its
// resident memory is its own.
func recoveryTable(dir string) {
	path := filepath.Join(dir, "recovery.db")
	empty := filepath.Join(dir, "empty.db")
	defer os.Remove(path)
	defer os.Remove(empty)
	fill(path, recoveryN)
	fill(empty, 0)
	base := measureRecovery(empty)
	full := measureRecovery(path)
	t := newTable(fmt.Sprintf("Recovery: %d pending triggers in bbolt (%d due now, the rest in the next 30 days)", recoveryN, recoveryDue),
		"store", "file MB", "open", "Start → first run", "RSS after start MB", "RSS over empty store MB")
	for _, r := range []struct {
		name string
		m    recoveryMeasure
	}{{"empty", base}, {"1,000,000 pending", full}} {
		first := "none due"
		if r.m.FirstRun > 0 {
			first = dur(r.m.FirstRun)
		}
		t.row(r.name, fmt.Sprintf("%.0f", r.m.FileMB), dur(r.m.Open), first, fmt.Sprintf("%.0f", r.m.RSSMB), fmt.Sprintf("%.0f", r.m.RSSMB-base.RSSMB))
	}
}

// fill writes n pending triggers into a new file at path.
func fill(path string, n int) {
	os.Remove(path)
	store := openBolt(path)
	now := time.Now()
	const batch = 10000
	ts := make([]trigger.Trigger, 0, batch)
	for i := 0; i < n; i += batch {
		ts = ts[:0]
		for j := i; j < min(n, i+batch); j++ {
			due := now.Add(time.Hour + time.Duration(j)*(30*24*time.Hour/recoveryN))
			if j%100 == 0 {
				due = now
			}
			ts = append(ts, trigger.Trigger{ID: fmt.Sprintf("r%07d", j), Type: trigger.TypeTimer, DueAt: due})
		}
		if err := store.SaveBatch(context.Background(), now, ts); err != nil {
			log.Fatal(err)
		}
	}
	if err := store.Close(); err != nil {
		log.Fatal(err)
	}
}

type recoveryMeasure struct {
	FileMB   float64
	Open     time.Duration
	FirstRun time.Duration
	RSSMB    float64
}

func measureRecovery(path string) recoveryMeasure {
	out, err := exec.Command(os.Args[0], "-recovery-child", path, "-procs", strconv.Itoa(runtime.GOMAXPROCS(0))).Output()
	if err != nil {
		log.Fatalf("recovery child: %v\n%s", err, out)
	}
	var m recoveryMeasure
	if err := json.Unmarshal(out, &m); err != nil {
		log.Fatalf("recovery child printed %q: %v", out, err)
	}
	return m
}

// recoveryChild opens the store at path, starts a scheduler, waits for the
// first run (or 2 s on an empty store) and a second for the scan to settle,
// and prints what it measured as JSON.
func recoveryChild(path string) {
	fi, err := os.Stat(path)
	if err != nil {
		log.Fatal(err)
	}
	begin := time.Now()
	store := openBolt(path)
	opened := time.Since(begin)
	first := make(chan time.Time, 1)
	consumer := trigger.ConsumerFunc(func(context.Context, *trigger.Trigger) error {
		select {
		case first <- time.Now():
		default:
		}
		return nil
	})
	s, err := trigger.New(store, consumer, trigger.Config{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	start := time.Now()
	if err := s.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	var firstRun time.Duration
	select {
	case at := <-first:
		firstRun = at.Sub(start)
	case <-time.After(2 * time.Second):
	}
	time.Sleep(time.Second)
	m := recoveryMeasure{FileMB: float64(fi.Size()) / 1e6, Open: opened, FirstRun: firstRun, RSSMB: rssMB()}
	s.Stop(context.Background())
	store.Close()
	json.NewEncoder(os.Stdout).Encode(m)
}

// rssMB reads this process's resident set size from /proc.
func rssMB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}
