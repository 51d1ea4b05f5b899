//go:build unix

package boltstore_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/triggerkit/trigger"
	"github.com/triggerkit/trigger/store/boltstore"
)

// The crash test.
//
// TestCrashRecovery runs the test binary again as a child process
// (TestCrashChild, which does nothing unless crashEnvDir is set). Each child
// is one generation: it opens the bbolt file, starts a Scheduler and keeps
// scheduling triggers while its consumer runs them. The parent kills it with
// SIGKILL at a random moment (sometimes before it is even ready, so Open and
// recovery get killed too) and starts the next generation on the same file.
// A last generation schedules nothing: it runs until the store holds no
// trigger that is not final, then stops cleanly.
//
// Everything that happened is in one journal, appended and fsynced by the
// children, one line per event, so the order of the lines is the order of
// the events:
//
//	<gen> sched <id>              Schedule (or ScheduleBatch) returned: on disk
//	<gen> start <id> <attempt> <recovered>   the consumer began a run
//	<gen> done <id>               the consumer completed the run (returns nil
//	                              or Complete(follow-up) right after)
//	<gen> err <id>                the consumer failed the run on purpose
//	<gen> fin <id>                Store.Finish of the completion returned nil
//	<gen> log <level> <message>   the scheduler or store logged a warning or error
//
// The parent then checks bbolt's consistency check, that every trigger it
// knows of completed at least once and is completed in the store, and that
// a trigger ran more than once only when the kill of a generation cut off
// its run between the consumer's completion and the store's record of it.

const (
	crashEnvDir   = "TRIGGER_CRASH_CHILD" // the directory of the files; makes TestCrashChild act
	crashEnvGen   = "TRIGGER_CRASH_GEN"   // the generation number, from 1
	crashEnvFinal = "TRIGGER_CRASH_FINAL" // set for the last generation: no scheduling, run to the end
	crashEnvSeed  = "TRIGGER_CRASH_SEED"  // optional, for the parent: the seed of its random choices
	crashEnvKills = "TRIGGER_CRASH_KILLS" // optional, for the parent: how many generations to kill (for longer runs)

	crashKills      = 24               // killed generations by default (the issue asks for at least 20)
	crashSchedulers = 3                // goroutines scheduling triggers in a killed generation
	crashChildMax   = 20 * time.Second // a child gives up (and fails) after this long
)

// The files in the test's directory, besides child-NN.out, the output of
// generation NN.
const (
	crashDB      = "triggers.db"
	crashJournal = "journal.log"
)

// crashFlags says what the consumer does with a trigger, from its ID: the
// parent needs to know it too, to expect the follow-ups.
//
// IDs of scheduled triggers are "g<gen>-<n>"; the follow-up of one is
// "<id>-f". Every fourth trigger completes with a follow-up, every fifth
// fails its first attempt (and is retried).
func crashFlags(id string) (followUp string, failFirst bool) {
	if strings.HasSuffix(id, "-f") {
		return "", false
	}
	_, num, ok := strings.Cut(id, "-")
	n, err := strconv.Atoi(num)
	if !ok || err != nil {
		return "", false
	}
	if n%4 == 1 {
		followUp = id + "-f"
	}
	return followUp, n%5 == 3
}

// crashGenOf returns the generation that scheduled id (the parent's, for a
// follow-up).
func crashGenOf(id string) int {
	s, _, _ := strings.Cut(strings.TrimPrefix(id, "g"), "-")
	n, _ := strconv.Atoi(s)
	return n
}

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: skipped in -short mode")
	}
	began := time.Now()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(crashEnvSeed); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", crashEnvSeed, s, err)
		}
	}
	t.Logf("seed %d (set %s to repeat the same kill schedule)", seed, crashEnvSeed)
	rng := rand.New(rand.NewPCG(seed, seed>>1|1))
	kills := crashKills
	if s := os.Getenv(crashEnvKills); s != "" {
		var err error
		if kills, err = strconv.Atoi(s); err != nil || kills < 1 || kills > 9999 {
			t.Fatalf("%s=%q: want a number of kills from 1 to 9999", crashEnvKills, s)
		}
	}
	dir := t.TempDir()

	early := 0
	for gen := 1; gen <= kills; gen++ {
		// One kill in five is early: at a random moment from the process
		// start, often during Open or recovery. The others wait until the
		// scheduler runs, then kill 20 to 350 ms later.
		var delay time.Duration
		waitReady := rng.IntN(5) != 0
		if waitReady {
			delay = time.Duration(20+rng.IntN(330)) * time.Millisecond
		} else {
			delay = time.Duration(rng.IntN(40)) * time.Millisecond
		}
		ready := crashKill(t, dir, gen, waitReady, delay)
		if !ready {
			early++
		}
	}
	final := kills + 1
	crashFinal(t, dir, final)
	if t.Failed() {
		crashDumpOutputs(t, dir, final)
	}

	st := crashVerify(t, dir, final)
	t.Logf("%d generations killed (%d before they were ready), %d triggers scheduled (%d more stored by a Schedule the kill cut off), %d follow-ups; "+
		"%d runs, %d cut off by a kill, %d marked recovered, %d failed on purpose; %d triggers completed twice or more (%d extra completions); %v in all",
		kills, early, st.scheduled, st.unlogged, st.followUps, st.runs, st.cutOff, st.recovered, st.failed, st.duplicated, st.extra, time.Since(began).Round(time.Millisecond))
	if t.Failed() {
		t.Logf("the files are in %s: journal %s, database %s, child outputs child-NN.out", dir, crashJournal, crashDB)
	}
}

// crashCommand returns the command that runs generation gen as a child.
func crashCommand(ctx context.Context, dir string, gen int, final bool) (*exec.Cmd, *os.File, error) {
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), crashEnvDir+"="+dir, crashEnvGen+"="+strconv.Itoa(gen))
	if final {
		cmd.Env = append(cmd.Env, crashEnvFinal+"=1")
	}
	out, err := os.Create(filepath.Join(dir, fmt.Sprintf("child-%02d.out", gen)))
	if err != nil {
		return nil, nil, err
	}
	cmd.Stdout, cmd.Stderr = out, out
	return cmd, out, nil
}

// crashKill runs generation gen and kills it with SIGKILL after delay,
// counted from its readiness (its scheduler started) if waitReady, else
// from its start. It reports whether the child was ready when killed.
func crashKill(t *testing.T, dir string, gen int, waitReady bool, delay time.Duration) (ready bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), crashChildMax+10*time.Second)
	defer cancel()
	cmd, out, err := crashCommand(ctx, dir, gen, false)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.ExtraFiles = []*os.File{w} // fd 3 in the child: it writes a line once ready
	readyc := make(chan bool, 1)
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		t.Fatalf("generation %d: %v", gen, err)
	}
	w.Close()
	go func() {
		defer r.Close()
		n, _ := r.Read(make([]byte, 16)) // returns at the line, or at EOF when the child dies
		readyc <- n > 0
	}()

	if waitReady {
		select {
		case ok := <-readyc:
			if !ok {
				_ = cmd.Wait()
				t.Fatalf("generation %d died before it was ready:\n%s", gen, crashTail(dir, gen))
			}
			ready = true
		case <-time.After(crashChildMax):
			_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
			t.Fatalf("generation %d not ready after %v:\n%s", gen, crashChildMax, crashTail(dir, gen))
		}
	}
	time.Sleep(delay)
	if err := syscall.Kill(cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatalf("generation %d: kill: %v", gen, err)
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("generation %d: wait: %v", gen, err)
	}
	if ws, ok := exit.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("generation %d ended by itself (%v) before it was killed:\n%s", gen, err, crashTail(dir, gen))
	}
	if !waitReady {
		select {
		case ready = <-readyc:
		case <-time.After(5 * time.Second): // the pipe closed with the child: cannot happen
		}
	}
	// A kill in the middle of a journal write would leave half a line:
	// cut it, as if the write had not happened.
	if err := crashTrimJournal(filepath.Join(dir, crashJournal)); err != nil {
		t.Fatal(err)
	}
	// The child reports its own failures in the journal, but the race
	// detector and the runtime write only to its output.
	if out := crashTail(dir, gen); strings.Contains(out, "WARNING: DATA RACE") || strings.Contains(out, "panic:") || strings.Contains(out, "fatal error:") {
		t.Errorf("generation %d:\n%s", gen, out)
	}
	// Check the file after every kill, to tell which one broke it.
	crashCheckFile(t, filepath.Join(dir, crashDB), fmt.Sprintf("after the kill of generation %d", gen))
	return ready
}

// crashCheckFile runs bbolt's consistency check on the database (which no
// process has open).
func crashCheckFile(t *testing.T, path, when string) {
	t.Helper()
	if fi, err := os.Stat(path); errors.Is(err, os.ErrNotExist) || err == nil && fi.Size() == 0 {
		// Killed before Open created the file or wrote its first pages
		// (the next Open does that); a read-only Open cannot.
		return
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("%s: open %s read-only: %v", when, path, err)
	}
	defer db.Close()
	if err := db.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("%s: bbolt consistency check: %v", when, err)
		}
		return nil
	}); err != nil {
		t.Errorf("%s: bbolt consistency check: %v", when, err)
	}
}

// crashFinal runs the last generation, which schedules nothing and returns
// once every trigger in the store is final.
func crashFinal(t *testing.T, dir string, gen int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), crashChildMax+10*time.Second)
	defer cancel()
	cmd, out, err := crashCommand(ctx, dir, gen, true)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := cmd.Run(); err != nil {
		t.Errorf("final generation %d: %v:\n%s", gen, err, crashTail(dir, gen))
	}
}

// crashTrimJournal truncates the journal after its last newline.
func crashTrimJournal(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if n := bytes.LastIndexByte(b, '\n') + 1; n < len(b) {
		return os.Truncate(path, int64(n))
	}
	return nil
}

// crashTail returns the end of a child's output.
func crashTail(dir string, gen int) string {
	b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("child-%02d.out", gen)))
	const max = 4000
	if len(b) > max {
		b = append([]byte("..."), b[len(b)-max:]...)
	}
	return string(b)
}

// crashDumpOutputs logs the outputs of the children that wrote something
// beyond the test framework's lines.
func crashDumpOutputs(t *testing.T, dir string, final int) {
	for gen := 1; gen <= final; gen++ {
		out := crashTail(dir, gen)
		var kept []string
		for _, l := range strings.Split(out, "\n") {
			if l != "" && !strings.HasPrefix(l, "=== RUN") && l != "PASS" && !strings.Contains(l, errCrashOnPurpose.Error()) {
				kept = append(kept, l)
			}
		}
		if len(kept) > 0 {
			t.Logf("generation %d output:\n%s", gen, strings.Join(kept, "\n"))
		}
	}
}

// crashStats are counts of a run, for the log.
type crashStats struct {
	scheduled, unlogged, followUps  int
	runs, cutOff, recovered, failed int
	duplicated, extra               int
}

// crashRun is one run of a trigger, as the journal tells it.
type crashRun struct {
	gen       int
	line      int
	attempt   int
	recovered bool
	ended     bool // done or err
	done      bool // the consumer completed it
	fin       bool // the store recorded the completion
}

// crashVerify checks the files the generations left behind.
func crashVerify(t *testing.T, dir string, final int) crashStats {
	t.Helper()
	var st crashStats
	path := filepath.Join(dir, crashDB)

	// 1. bbolt's consistency check, on the file as the generations left it.
	crashCheckFile(t, path, "at the end")

	// 2. The journal.
	f, err := os.Open(filepath.Join(dir, crashJournal))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	scheduled := map[string]int{} // id -> generation that logged its Schedule
	runs := map[string][]*crashRun{}
	var order []string // IDs in order of first appearance
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		fields := strings.SplitN(sc.Text(), " ", 4)
		if len(fields) < 3 {
			t.Errorf("journal line %d: malformed %q", line, sc.Text())
			continue
		}
		gen, err := strconv.Atoi(fields[0])
		if err != nil || gen < 1 || gen > final {
			t.Errorf("journal line %d: bad generation in %q", line, sc.Text())
			continue
		}
		kind, id := fields[1], fields[2]
		if kind == "log" {
			t.Errorf("journal line %d: generation %d logged %s: %s", line, gen, id, fields[len(fields)-1])
			continue
		}
		if _, seen := runs[id]; !seen {
			if _, seen := scheduled[id]; !seen {
				order = append(order, id)
			}
		}
		rs := runs[id]
		var last *crashRun
		if len(rs) > 0 {
			last = rs[len(rs)-1]
		}
		switch kind {
		case "sched":
			if g, dup := scheduled[id]; dup {
				t.Errorf("journal line %d: %s scheduled twice (generations %d and %d)", line, id, g, gen)
			}
			if final == gen {
				t.Errorf("journal line %d: the final generation scheduled %s", line, id)
			}
			scheduled[id] = gen
		case "start":
			if last != nil && last.gen == gen && !last.ended {
				t.Errorf("journal line %d: %s started in generation %d while its run of line %d was still going", line, id, gen, last.line)
			}
			for _, r := range rs {
				if r.fin {
					t.Errorf("journal line %d: %s ran again in generation %d after the store recorded its completion (generation %d, line %d)", line, id, gen, r.gen, r.line)
				}
			}
			var attempt int
			var recovered bool
			if len(fields) == 4 {
				a, rec, _ := strings.Cut(fields[3], " ")
				attempt, _ = strconv.Atoi(a)
				recovered = rec == "true"
			}
			// Attempts count claims: they grow from one run to the next
			// within a generation. Across a kill they may stay (the record of
			// a claim made shortly before the kill may be lost, as the
			// package documentation says) but never go back.
			switch {
			case attempt < 1:
				t.Errorf("journal line %d: %s started with attempt %q", line, id, fields[3])
			case last != nil && last.gen == gen && attempt <= last.attempt:
				t.Errorf("journal line %d: %s started attempt %d in generation %d after attempt %d in the same generation (line %d)", line, id, attempt, gen, last.attempt, last.line)
			case last != nil && attempt < last.attempt:
				t.Errorf("journal line %d: %s started attempt %d in generation %d after attempt %d in generation %d (line %d)", line, id, attempt, gen, last.attempt, last.gen, last.line)
			case recovered && attempt < 2:
				t.Errorf("journal line %d: %s recovered at attempt %d", line, id, attempt)
			}
			runs[id] = append(rs, &crashRun{gen: gen, line: line, attempt: attempt, recovered: recovered})
		case "done", "err":
			if last == nil || last.gen != gen || last.ended {
				t.Errorf("journal line %d: %s %s in generation %d without a run in progress", line, id, kind, gen)
				continue
			}
			last.ended, last.done = true, kind == "done"
		case "fin":
			if last == nil || last.gen != gen || !last.done || last.fin {
				t.Errorf("journal line %d: completion of %s recorded in generation %d without a completed run", line, id, gen)
				continue
			}
			last.fin = true
		default:
			t.Errorf("journal line %d: unknown event %q", line, kind)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}

	// 3. The store, opened again: every trigger in it must be completed.
	s, err := boltstore.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]trigger.Trigger{}
	for _, state := range trigger.States() {
		q := trigger.ListQuery{State: state, Limit: 500}
		for {
			ts, err := s.List(t.Context(), q)
			if err != nil {
				t.Fatal(err)
			}
			for _, tr := range ts {
				stored[tr.ID] = tr
				if state != trigger.StateCompleted {
					t.Errorf("%s is %s in the store (attempt %d, last error %q), not completed", tr.ID, state, tr.Attempt, tr.LastError)
				}
			}
			if len(ts) < q.Limit {
				break
			}
			q.After = ts[len(ts)-1].ID
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// 4. Every trigger: known, stored, completed at least once, and run
	// again only after a kill cut off the run that completed it.
	expected := map[string]string{} // id -> why it must exist
	for id, gen := range scheduled {
		expected[id] = fmt.Sprintf("scheduled in generation %d", gen)
	}
	st.scheduled = len(scheduled)
	for id := range stored {
		if _, ok := expected[id]; ok || strings.HasSuffix(id, "-f") {
			continue
		}
		// Stored by a Schedule whose journal line the kill cut off: only
		// a killed generation can have one.
		if g := crashGenOf(id); g < 1 || g >= final {
			t.Errorf("%s is in the store but no generation scheduled it", id)
		}
		st.unlogged++
		expected[id] = "stored by a Schedule cut off by a kill"
	}
	for id, why := range copyMap(expected) {
		if _, ok := stored[id]; !ok {
			continue // reported below; expecting its follow-up adds nothing
		}
		if f, _ := crashFlags(id); f != "" {
			expected[f] = "follow-up of " + id + ", " + why
			st.followUps++
		}
	}
	for id := range stored {
		if _, ok := expected[id]; !ok {
			t.Errorf("%s is in the store but is neither scheduled nor a follow-up", id)
		}
	}
	for _, id := range order {
		if _, ok := expected[id]; !ok {
			t.Errorf("%s ran, but it was neither scheduled nor a follow-up", id)
		}
	}

	ids := make([]string, 0, len(expected))
	for id := range expected {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		tr, ok := stored[id]
		if !ok {
			t.Errorf("%s (%s) is not in the store: lost", id, expected[id])
		}
		rs := runs[id]
		var done []*crashRun
		for _, r := range rs {
			st.runs++
			if r.recovered {
				st.recovered++
			}
			if r.ended && !r.done {
				st.failed++
			}
			if !r.ended {
				st.cutOff++
				if r.gen == final {
					t.Errorf("%s: its run in the final generation (journal line %d) never ended", id, r.line)
				}
			}
			if r.done {
				done = append(done, r)
				if r.gen == final && !r.fin {
					t.Errorf("%s: its completion in the final generation (journal line %d) was not recorded", id, r.line)
				}
			}
		}
		if len(done) == 0 {
			t.Errorf("%s (%s) never completed: lost (%d runs)", id, expected[id], len(rs))
			continue
		}
		// The store recorded the last completion: with its attempt.
		if last := done[len(done)-1]; ok && tr.Attempt != last.attempt {
			t.Errorf("%s is completed with attempt %d in the store; its last completed run (journal line %d) was attempt %d", id, tr.Attempt, last.line, last.attempt)
		}
		if len(done) > 1 {
			st.duplicated++
			st.extra += len(done) - 1
		}
		// Every completion but the last must have been cut off by the kill
		// of its generation: the store had not recorded it (no fin), and
		// it was the last thing the trigger did in that generation.
		for i, r := range done[:len(done)-1] {
			next := done[i+1]
			switch {
			case r.gen == final:
				t.Errorf("%s completed in the final generation (line %d) and again (line %d)", id, r.line, next.line)
			case r.fin:
				t.Errorf("%s completed again (generation %d, line %d) after the store recorded its completion (generation %d, line %d)", id, next.gen, next.line, r.gen, r.line)
			case next.gen == r.gen:
				t.Errorf("%s completed twice in generation %d (lines %d and %d)", id, r.gen, r.line, next.line)
			}
			for _, later := range rs {
				if later.gen == r.gen && later.line > r.line {
					t.Errorf("%s ran again in generation %d (line %d) after its completion of line %d", id, r.gen, later.line, r.line)
				}
			}
		}
	}
	return st
}

// copyMap returns a copy of m, to range over while m grows.
func copyMap[K comparable, V any](m map[K]V) map[K]V {
	c := make(map[K]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// The child.

// crashJournalFile appends events to the journal, one write and one fsync
// per line. Writes to a file opened with O_APPEND do not interleave.
type crashJournalFile struct {
	f   *os.File
	gen int
	err atomic.Pointer[error]
}

func (j *crashJournalFile) add(kind, id string, extra ...string) {
	line := fmt.Sprintf("%d %s %s", j.gen, kind, id)
	for _, e := range extra {
		line += " " + e
	}
	_, err := j.f.WriteString(line + "\n")
	if err == nil {
		err = j.f.Sync()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "fatal error: journal: %v\n", err) // the parent looks for "fatal error:"
		j.err.CompareAndSwap(nil, &err)
	}
}

// crashStore records in the journal each completion the store accepted.
type crashStore struct {
	*boltstore.Store
	j *crashJournalFile
}

func (s crashStore) Finish(ctx context.Context, id string, token uint64, o trigger.Outcome) error {
	err := s.Store.Finish(ctx, id, token, o)
	if err == nil && o.Kind == trigger.OutcomeComplete {
		s.j.add("fin", id)
	}
	return err
}

// FinishBatch journals like Finish: without it, the embedded store's
// FinishBatch would be promoted and bypass Finish.
func (s crashStore) FinishBatch(ctx context.Context, fs []trigger.Finishing) []error {
	errs := s.Store.FinishBatch(ctx, fs)
	for i, f := range fs {
		if errs[i] == nil && f.Outcome.Kind == trigger.OutcomeComplete {
			s.j.add("fin", f.ID)
		}
	}
	return errs
}

// errCrashOnPurpose fails the first attempt of some triggers.
var errCrashOnPurpose = errors.New("first attempt fails on purpose")

// crashLogHandler writes logs to the child's output and journals warnings
// and errors, which the parent reports (all but those of the runs failed on
// purpose).
type crashLogHandler struct {
	slog.Handler
	j *crashJournalFile
}

func (h crashLogHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		msg := r.Message
		r.Attrs(func(a slog.Attr) bool {
			msg += " " + a.String()
			return true
		})
		if !strings.Contains(msg, errCrashOnPurpose.Error()) {
			h.j.add("log", r.Level.String(), strconv.Quote(msg))
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h crashLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return crashLogHandler{h.Handler.WithAttrs(as), h.j}
}

func (h crashLogHandler) WithGroup(name string) slog.Handler {
	return crashLogHandler{h.Handler.WithGroup(name), h.j}
}

// TestCrashChild is one generation of TestCrashRecovery; it does nothing
// unless run by it.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnvDir)
	if dir == "" {
		t.Skip("runs only as a child process of TestCrashRecovery")
	}
	gen, err := strconv.Atoi(os.Getenv(crashEnvGen))
	if err != nil || gen < 1 {
		t.Fatalf("%s=%q", crashEnvGen, os.Getenv(crashEnvGen))
	}
	final := os.Getenv(crashEnvFinal) != ""

	jf, err := os.OpenFile(filepath.Join(dir, crashJournal), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer jf.Close()
	j := &crashJournalFile{f: jf, gen: gen}
	defer func() {
		if err := j.err.Load(); err != nil {
			t.Errorf("journal: %v", *err)
		}
	}()
	logger := slog.New(crashLogHandler{slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}), j})

	store, err := boltstore.Open(filepath.Join(dir, crashDB), &boltstore.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := store.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()

	var rngMu sync.Mutex
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(gen)))
	randMs := func(lo, hi int) time.Duration {
		rngMu.Lock()
		defer rngMu.Unlock()
		return time.Duration(lo+rng.IntN(hi-lo+1)) * time.Millisecond
	}

	consumer := trigger.ConsumerFunc(func(ctx context.Context, tr *trigger.Trigger) error {
		j.add("start", tr.ID, strconv.Itoa(tr.Attempt), strconv.FormatBool(tr.Recovered))
		// Some work, so that kills find runs in progress.
		select {
		case <-time.After(randMs(0, 15)):
		case <-ctx.Done():
			j.add("err", tr.ID)
			return context.Cause(ctx)
		}
		followUp, failFirst := crashFlags(tr.ID)
		if failFirst && tr.Attempt == 1 {
			j.add("err", tr.ID)
			return errCrashOnPurpose
		}
		j.add("done", tr.ID)
		if followUp != "" {
			return trigger.Complete(trigger.Trigger{ID: followUp, DueAt: time.Now().Add(randMs(0, 100))})
		}
		return nil
	})
	s, err := trigger.New(crashStore{store, j}, consumer, trigger.Config{
		Workers:      8,
		ScanInterval: 50 * time.Millisecond,
		// Triggers are due up to 300ms out: those beyond the horizon come
		// in through the scan, the others are armed by Schedule.
		Horizon: 150 * time.Millisecond,
		// Small pages: scans page through the due index, and recovery
		// after a kill finds more overdue triggers than one scan takes.
		ScanLimit:   16,
		MaxAttempts: 1000, // kills count as attempts: never fail for good here
		RetryBase:   10 * time.Millisecond,
		RetryMax:    100 * time.Millisecond,
		Retention:   -1,
		Logger:      logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = s.Stop(context.Background())
		}
	}()

	if final {
		crashDrain(t, store)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
		stopped = true
		return
	}

	if ready := os.NewFile(3, "ready"); ready != nil {
		_, _ = ready.WriteString("ready\n")
		ready.Close()
	}
	// A failure here must reach the parent, which kills this process
	// before the test could report it: it goes to the journal too.
	fail := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		j.add("log", "FAIL", strconv.Quote(msg))
		t.Error(msg)
	}
	var next atomic.Int64
	newID := func() string { return fmt.Sprintf("g%02d-%05d", gen, next.Add(1)) }
	due := func() time.Time {
		if randMs(0, 4) == 0 {
			return time.Now().Add(-randMs(0, 50)) // overdue: runs now
		}
		return time.Now().Add(randMs(0, 300))
	}
	var wg sync.WaitGroup
	for range crashSchedulers {
		wg.Go(func() {
			for !t.Failed() {
				// Pacing, so a generation does not schedule more than the
				// next ones can run.
				time.Sleep(randMs(0, 8))
				if randMs(0, 7) == 0 {
					batch := []trigger.Trigger{{ID: newID(), DueAt: due()}, {ID: newID(), DueAt: due()}, {ID: newID(), DueAt: due()}}
					ids, err := s.ScheduleBatch(t.Context(), batch)
					if err != nil {
						fail("ScheduleBatch: %v", err)
						return
					}
					for _, id := range ids {
						j.add("sched", id)
					}
					continue
				}
				id, err := s.Schedule(t.Context(), trigger.Trigger{ID: newID(), DueAt: due()})
				if err != nil {
					fail("Schedule: %v", err)
					return
				}
				j.add("sched", id)
			}
		})
	}
	// The parent kills this process long before this watchdog fires.
	<-time.After(crashChildMax)
	fail("generation %d was not killed within %v", gen, crashChildMax)
	wg.Wait()
}

// crashDrain waits until no trigger in the store is scheduled, retrying,
// running or waiting: with nothing scheduled any more, every trigger ran to
// completion (or failed, which the parent reports).
func crashDrain(t *testing.T, store *boltstore.Store) {
	deadline := time.Now().Add(crashChildMax - 5*time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var left []string
		for _, state := range []trigger.State{trigger.StateScheduled, trigger.StateRetrying, trigger.StateRunning, trigger.StateWaiting} {
			ts, err := store.List(t.Context(), trigger.ListQuery{State: state, Limit: 20})
			if err != nil {
				t.Fatal(err)
			}
			for _, tr := range ts {
				left = append(left, fmt.Sprintf("%s (%s, due %v, attempt %d)", tr.ID, tr.State, tr.DueAt.Format(time.StampMilli), tr.Attempt))
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("after %v, triggers still not final (at most 20 per state): %s", crashChildMax-5*time.Second, strings.Join(left, ", "))
			return
		}
		<-tick.C
	}
}
