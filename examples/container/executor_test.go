//go:build unix

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/triggerkit/trigger"
	"github.com/triggerkit/trigger/store/memstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// ladder is small → medium → large.
var ladder = []Preset{
	{Name: "small", CPUs: 0.5, Memory: 256 << 20, Next: "medium"},
	{Name: "medium", CPUs: 1, Memory: 512 << 20, Next: "large"},
	{Name: "large", CPUs: 2, Memory: 1 << 30},
}

// bundle is what an executor test works with.
type bundle struct {
	exec   *Executor
	runner *ProcessRunner
	// exits receives every Result as OnResult sees it (buffered).
	exits chan *Result
}

// setup returns an executor on local processes whose Command runs the
// payload's "script" with sh -c, with env added to its environment and the
// payload's "timeout".
func setup(t *testing.T, cfg Config, env ...string) *bundle {
	t.Helper()
	b := &bundle{runner: &ProcessRunner{Dir: t.TempDir()}, exits: make(chan *Result, 16)}
	if cfg.Runner == nil {
		cfg.Runner = b.runner
	}
	if cfg.Command == nil {
		cfg.Command = func(t *trigger.Trigger) (Spec, error) {
			script, ok := t.Payload["script"].(string)
			if !ok {
				return Spec{}, errors.New("no script")
			}
			spec := Spec{Command: []string{"sh", "-c", script}, Env: env}
			if s, ok := t.Payload["timeout"].(string); ok {
				d, err := time.ParseDuration(s)
				if err != nil {
					return Spec{}, err
				}
				spec.Timeout = d
			}
			return spec, nil
		}
	}
	cfg.Logger = quiet
	onResult := cfg.OnResult
	cfg.OnResult = func(ctx context.Context, tr *trigger.Trigger, r *Result, outcome error) error {
		b.exits <- r
		if onResult != nil {
			return onResult(ctx, tr, r, outcome)
		}
		return outcome
	}
	e, err := NewExecutor(cfg)
	if err != nil {
		t.Fatalf("NewExecutor: %v", err)
	}
	b.exec = e
	return b
}

// consume runs tr (attempt 1 unless set) and returns Consume's error and
// the run's Result.
func (b *bundle) consume(t *testing.T, ctx context.Context, tr trigger.Trigger) (*Result, error) {
	t.Helper()
	if tr.Attempt == 0 {
		tr.Attempt = 1
	}
	err := b.exec.Consume(trigger.NewContext(ctx, &tr), &tr)
	return <-b.exits, err
}

// pidFiles returns the names in the runner's pid file directory.
func (b *bundle) pidFiles(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(b.runner.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// isFail reports whether err is trigger.Fail(cause) for the cause it wraps.
func isFail(err error) bool {
	var d *trigger.Directive
	return errors.As(err, &d) && d.Unwrap() != nil && d.Error() == trigger.Fail(d.Unwrap()).Error()
}

func isDirective(err error) bool {
	var d *trigger.Directive
	return errors.As(err, &d)
}

// pidPipe makes a named pipe for a script to write pids into ($PIDS) and
// returns its path and a function that reads the pids the script wrote. That
// function fails the test if the run ends (errc) without writing them;
// it leaves errc's value for the caller.
func pidPipe(t *testing.T) (string, func(errc chan error) []int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pids")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, func(errc chan error) []int {
		t.Helper()
		got := make(chan []byte, 1)
		go func() {
			f, err := os.Open(path) // blocks until the script opens it to write
			if err != nil {
				got <- nil
				return
			}
			data, _ := io.ReadAll(f)
			f.Close()
			got <- data
		}()
		var data []byte
		select {
		case data = <-got:
		case err := <-errc:
			errc <- err
			// The run ended: if the script never opened the pipe, unblock
			// the reader's open; if it did, the reader has its data.
			if w, werr := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); werr == nil {
				w.Close()
			}
			if data = <-got; len(data) == 0 {
				t.Fatalf("the run ended (%v) before it wrote its pids", err)
			}
		}
		var pids []int
		for _, f := range strings.Fields(string(data)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("bad pid %q in %q", f, data)
			}
			pids = append(pids, pid)
		}
		return pids
	}
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err == nil {
		i := bytes.LastIndexByte(data, ')')
		state := bytes.TrimSpace(data[i+1:])
		return !bytes.HasPrefix(state, []byte("Z")) && !bytes.HasPrefix(state, []byte("X"))
	}
	if _, serr := os.Stat("/proc/self"); errors.Is(err, fs.ErrNotExist) && serr == nil {
		return false
	}
	return syscall.Kill(pid, 0) == nil
}

// requireDead fails unless every pid is dead. An orphan killed by SIGKILL is
// reaped by init, which nothing here can wait for: poll, briefly.
func requireDead(t *testing.T, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for _, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("process %d is still alive", pid)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
}

func TestSuccessCapturesOutput(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Presets: ladder})
	r, err := b.consume(t, context.Background(), trigger.Trigger{
		ID: "hello", Attempt: 2, Token: 9,
		Payload: trigger.Payload{"script": `echo "out $TRIGGER_RUN_ID $TRIGGER_ID $TRIGGER_ATTEMPT $TRIGGER_TOKEN"; echo "err $TRIGGER_MACHINE $TRIGGER_CPUS $TRIGGER_MEMORY" >&2`},
	})
	if err != nil {
		t.Fatalf("Consume = %v, want nil", err)
	}
	if got, want := string(r.Stdout), "out run-hello-2 hello 2 9\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if got, want := string(r.Stderr), "err small 0.5 268435456\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
	if r.Err != nil || r.Exit != (Exit{}) || r.Name != "run-hello-2" || r.Machine.Name != "small" {
		t.Errorf("result = %+v", r)
	}
	if files := b.pidFiles(t); len(files) != 0 {
		t.Errorf("pid files left: %v", files)
	}
}

func TestFailureCarriesOutputTail(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{OutputLimit: 1000})
	r, err := b.consume(t, context.Background(), trigger.Trigger{ID: "noisy", Payload: trigger.Payload{
		"script": `head -c 100000 /dev/zero | tr '\0' x; echo; echo "the reason" >&2; exit 3`,
	}})
	var exitErr *ExitError
	if !errors.As(err, &exitErr) || isDirective(err) {
		t.Fatalf("Consume = %v, want a plain *ExitError (retried)", err)
	}
	if exitErr.Exit.Code != 3 || exitErr.Output != "the reason" {
		t.Errorf("ExitError = %+v", exitErr)
	}
	if got, want := err.Error(), "run-noisy-1: exit status 3\nthe reason"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
	if len(r.Stdout) != 1000 || !bytes.HasSuffix(r.Stdout, []byte("xx\n")) {
		t.Errorf("stdout kept %d bytes ending %q, want the last 1000", len(r.Stdout), r.Stdout[max(0, len(r.Stdout)-5):])
	}
}

func TestTimeoutKillsTheProcessGroup(t *testing.T) {
	t.Parallel()
	pipe, readPids := pidPipe(t)
	b := setup(t, Config{}, "PIDS="+pipe)
	errc := make(chan error, 1)
	go func() {
		_, err := b.consume(t, context.Background(), trigger.Trigger{ID: "slow", Payload: trigger.Payload{
			// A grandchild in the background, which must die with the group.
			"script":  `echo started; sleep 30 & echo $$ $! > "$PIDS"; wait`,
			"timeout": "300ms",
		}})
		errc <- err
	}()
	pids := readPids(errc)
	err := <-errc
	var timeout *TimeoutError
	if !errors.As(err, &timeout) || isDirective(err) {
		t.Fatalf("Consume = %v, want a plain *TimeoutError (retried)", err)
	}
	if timeout.Timeout != 300*time.Millisecond || timeout.Output != "started" {
		t.Errorf("TimeoutError = %+v", timeout)
	}
	if len(pids) != 2 {
		t.Fatalf("pids = %v, want the shell's and the sleep's", pids)
	}
	requireDead(t, pids...)
	if files := b.pidFiles(t); len(files) != 0 {
		t.Errorf("pid files left: %v", files)
	}
}

func TestCancelKillsTheProcessGroup(t *testing.T) {
	t.Parallel()
	pipe, readPids := pidPipe(t)
	b := setup(t, Config{}, "PIDS="+pipe)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := b.consume(t, ctx, trigger.Trigger{ID: "canceled", Payload: trigger.Payload{
			"script": `sleep 30 & echo $$ $! > "$PIDS"; wait`,
		}})
		errc <- err
	}()
	pids := readPids(errc)
	cancel()
	err := <-errc
	var timeout *TimeoutError
	if !errors.Is(err, context.Canceled) || errors.As(err, &timeout) {
		t.Fatalf("Consume = %v, want context.Canceled", err)
	}
	requireDead(t, pids...)
	if files := b.pidFiles(t); len(files) != 0 {
		t.Errorf("pid files left: %v", files)
	}
}

func TestExitKillsWhatTheRunLeft(t *testing.T) {
	t.Parallel()
	pipe, readPids := pidPipe(t)
	b := setup(t, Config{}, "PIDS="+pipe)
	errc := make(chan error, 1)
	go func() {
		// The main process ends at once; a run ends with it, as a
		// container does.
		_, err := b.consume(t, context.Background(), trigger.Trigger{ID: "daemon", Payload: trigger.Payload{
			"script": `sleep 30 & echo $! > "$PIDS"; echo left`,
		}})
		errc <- err
	}()
	pids := readPids(errc)
	if err := <-errc; err != nil {
		t.Fatalf("Consume = %v, want nil", err)
	}
	requireDead(t, pids...)
}

func TestSIGKILLIsReportedAsOOM(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, script string
		oom          bool
		exit         Exit
	}{
		{"sigkill", `echo "no memory left" >&2; kill -9 $$`, true, Exit{Code: 137, Signal: syscall.SIGKILL}},
		{"status 137", `echo "no memory left" >&2; exit 137`, true, Exit{Code: 137}},
		{"sigterm", `echo "no memory left" >&2; kill -TERM $$`, false, Exit{Code: 143, Signal: syscall.SIGTERM}},
		{"status 1", `echo "no memory left" >&2; exit 1`, false, Exit{Code: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, Config{Presets: ladder})
			r, err := b.consume(t, context.Background(), trigger.Trigger{ID: "x", Machine: "large", Payload: trigger.Payload{"script": tc.script}})
			if r.Exit != tc.exit {
				t.Errorf("exit = %+v, want %+v", r.Exit, tc.exit)
			}
			var oom *OOMError
			var exitErr *ExitError
			switch {
			case tc.oom && (!errors.As(err, &oom) || !isFail(err)):
				t.Fatalf("Consume = %v, want trigger.Fail(*OOMError): no larger preset than large", err)
			case tc.oom:
				want := OOMError{Run: "run-x-1", Machine: "large", Memory: 1 << 30, Output: "no memory left"}
				if *oom != want {
					t.Errorf("OOMError = %+v, want %+v", *oom, want)
				}
				if !errors.As(r.Err, &oom) {
					t.Errorf("Result.Err = %v, want the *OOMError", r.Err)
				}
			case !errors.As(err, &exitErr) || errors.As(err, &oom) || isDirective(err):
				t.Fatalf("Consume = %v, want a plain *ExitError", err)
			}
		})
	}
}

func TestOOMEscalatesToTheNextPresetThenSucceeds(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Presets: ladder})
	s, err := trigger.New(memstore.New(), b.exec, trigger.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	id, err := s.Schedule(ctx, trigger.Trigger{Machine: "small", DueAt: time.Now(), Payload: trigger.Payload{
		"script": `[ "$TRIGGER_MACHINE" = medium ] || { echo "$TRIGGER_MEMORY is not enough" >&2; kill -9 $$; }; echo "ok on $TRIGGER_MACHINE"`,
		"other":  "kept",
	}})
	if err != nil {
		t.Fatal(err)
	}
	first, second := <-b.exits, <-b.exits
	if err := s.Stop(ctx); err != nil { // records the second run's outcome
		t.Fatal(err)
	}

	var oom *OOMError
	if first.Machine.Name != "small" || !errors.As(first.Err, &oom) {
		t.Errorf("first run on %q: %v, want an OOM kill on small", first.Machine.Name, first.Err)
	}
	if second.Machine.Name != "medium" || second.Err != nil || string(second.Stdout) != "ok on medium\n" {
		t.Errorf("second run on %q: %v, stdout %q, want a success on medium", second.Machine.Name, second.Err, second.Stdout)
	}
	got, err := s.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != trigger.StateCompleted || got.Machine != "small" || got.Payload[PayloadMachine] != "medium" || got.Payload["other"] != "kept" {
		t.Errorf("stored trigger: state %v, machine %q, payload %v", got.State, got.Machine, got.Payload)
	}
	if oomText, _ := got.Payload[PayloadOOM].(string); !strings.HasPrefix(oomText, oom.Error()) || !strings.Contains(oomText, "268435456 is not enough") {
		t.Errorf("payload %s = %q, want the OOM kill on small with its output", PayloadOOM, oomText)
	}
}

func TestFailedTriggerKeepsTheOutputInLastError(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Presets: ladder})
	s, err := trigger.New(memstore.New(), b.exec, trigger.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	id, err := s.Schedule(ctx, trigger.Trigger{Machine: "large", DueAt: time.Now(), Payload: trigger.Payload{
		"script": `echo "loading 2 GiB" >&2; kill -9 $$`,
	}})
	if err != nil {
		t.Fatal(err)
	}
	<-b.exits
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	want := (&OOMError{Run: RunName(id, 1), Machine: "large", Memory: 1 << 30, Output: "loading 2 GiB"}).Error()
	if got.State != trigger.StateFailed || got.Attempt != 1 || got.LastError != want {
		t.Errorf("stored trigger: state %v after %d attempts, last error %q; want failed after 1 with %q", got.State, got.Attempt, got.LastError, want)
	}
}

func TestOnResultHandsTheOutputOn(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{OnResult: func(ctx context.Context, t *trigger.Trigger, r *Result, outcome error) error {
		if outcome != nil {
			return outcome
		}
		return trigger.Complete(trigger.Trigger{ID: t.ID + "-report", Type: trigger.TypeManual, Payload: trigger.Payload{"stdout": string(r.Stdout)}})
	}})
	s, err := trigger.New(memstore.New(), b.exec, trigger.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	id, err := s.Schedule(ctx, trigger.Trigger{DueAt: time.Now(), Payload: trigger.Payload{"script": "echo 42"}})
	if err != nil {
		t.Fatal(err)
	}
	<-b.exits
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	done, err := s.Get(ctx, id)
	if err != nil || done.State != trigger.StateCompleted {
		t.Fatalf("Get(%s) = %v, %v; want completed", id, done.State, err)
	}
	report, err := s.Get(ctx, id+"-report")
	if err != nil || report.Payload["stdout"] != "42\n" {
		t.Errorf("follow-up = %v, %v; want the output in its payload", report.Payload, err)
	}
}

func TestRecoveredRunRemovesTheLeftover(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	ctx := context.Background()
	start := func(id string, attempt int) *process {
		t.Helper()
		name := RunName(id, attempt)
		inst, err := b.runner.Create(ctx, Run{Name: name, TriggerID: id, Attempt: attempt,
			Spec: Spec{Command: []string{"sleep", "30"}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { inst.Delete(ctx) })
		return inst.(*process)
	}
	// What a crashed attempt 1 left, and a live run of a trigger whose ID
	// merely starts with the same letters.
	leftover := start("job", 1)
	other := start("job-1", 4)

	r, err := b.consume(t, ctx, trigger.Trigger{ID: "job", Attempt: 2, Recovered: true, Payload: trigger.Payload{"script": "echo fresh"}})
	if err != nil || string(r.Stdout) != "fresh\n" {
		t.Fatalf("Consume = %v, stdout %q; want a fresh success", err, r.Stdout)
	}
	x, err := leftover.Wait()
	if err != nil || x.Signal != syscall.SIGKILL {
		t.Errorf("leftover ended with %+v, %v; want killed by SIGKILL", x, err)
	}
	if !alive(other.pgid) {
		t.Errorf("the run of trigger job-1 was killed")
	}
	if files := b.pidFiles(t); len(files) != 1 || files[0] != RunName("job-1", 4)+".pid" {
		t.Errorf("pid files = %v, want only job-1's", files)
	}
}

func TestRestoreSparesAReusedPID(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skipf("no /proc here, so pid files are trusted: %v", err)
	}
	runner := &ProcessRunner{Dir: t.TempDir()}
	ctx := context.Background()
	name := RunName("reused", 1)
	inst, err := runner.Create(ctx, Run{Name: name, TriggerID: "reused", Attempt: 1, Spec: Spec{Command: []string{"sleep", "30"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Delete(ctx)
	p := inst.(*process)
	// The pid file of a run whose leader died and whose number went to this
	// process: same number, another start time.
	path := filepath.Join(runner.Dir, name+".pid")
	if err := writeFileAtomic(path, pidRecord{TriggerID: "reused", Run: name, PGID: p.pgid, Start: "1"}); err != nil {
		t.Fatal(err)
	}
	if err := runner.Restore(ctx, Run{Name: RunName("reused", 2), TriggerID: "reused", Attempt: 2}); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if !alive(p.pgid) {
		t.Errorf("Restore killed a process that only shares the number")
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale pid file kept: %v", err)
	}
}

func TestInvalidRunsFailWithoutStarting(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		presets []Preset
		tr      trigger.Trigger
	}{
		{"unknown preset", ladder, trigger.Trigger{ID: "x", Machine: "huge", Payload: trigger.Payload{"script": "true"}}},
		{"machine without presets", nil, trigger.Trigger{ID: "x", Machine: "small", Payload: trigger.Payload{"script": "true"}}},
		{"bad escalated preset", ladder, trigger.Trigger{ID: "x", Payload: trigger.Payload{"script": "true", PayloadMachine: 3.0}}},
		{"command refuses", ladder, trigger.Trigger{ID: "x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, Config{Presets: tc.presets})
			r, err := b.consume(t, context.Background(), tc.tr)
			if !isFail(err) || !errors.Is(err, ErrInvalid) || !errors.Is(r.Err, ErrInvalid) {
				t.Errorf("Consume = %v, want trigger.Fail wrapping ErrInvalid", err)
			}
			if !r.Started.IsZero() {
				t.Errorf("a run was started")
			}
		})
	}
}

func TestNewExecutorValidates(t *testing.T) {
	t.Parallel()
	cmd := func(*trigger.Trigger) (Spec, error) { return Spec{}, nil }
	runner := &ProcessRunner{}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no runner", Config{Command: cmd}, "Runner is nil"},
		{"no command", Config{Runner: runner}, "Command is nil"},
		{"negative timeout", Config{Runner: runner, Command: cmd, Timeout: -1}, "Timeout is negative"},
		{"negative output limit", Config{Runner: runner, Command: cmd, OutputLimit: -1}, "OutputLimit is negative"},
		{"unnamed preset", Config{Runner: runner, Command: cmd, Presets: []Preset{{CPUs: 1}}}, "no Name"},
		{"negative limit", Config{Runner: runner, Command: cmd, Presets: []Preset{{Name: "a", Memory: -1}}}, "negative limit"},
		{"duplicate preset", Config{Runner: runner, Command: cmd, Presets: []Preset{{Name: "a"}, {Name: "a"}}}, "twice"},
		{"unknown next", Config{Runner: runner, Command: cmd, Presets: []Preset{{Name: "a", Next: "b"}}}, `Next names "b"`},
		{"cycle", Config{Runner: runner, Command: cmd, Presets: []Preset{{Name: "a", Next: "b"}, {Name: "b", Next: "a"}}}, "cycle"},
		{"unknown default", Config{Runner: runner, Command: cmd, Presets: ladder, DefaultMachine: "huge"}, "DefaultMachine"},
	} {
		_, err := NewExecutor(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: NewExecutor = %v, want an error about %q", tc.name, err, tc.want)
		}
	}
	if _, err := NewExecutor(Config{Runner: runner, Command: cmd, Presets: ladder}); err != nil {
		t.Errorf("NewExecutor(ladder) = %v", err)
	}
}

func TestRunName(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 150)
	for _, tc := range []struct {
		id      string
		attempt int
		want    string
	}{
		{"abc", 1, "run-abc-1"},
		{"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", 12, "run-0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b-12"},
		{"a_b.c", 2, "run-a_b.c-2"},
		{"a/b c", 1, "run-a_b_c-" + fmt.Sprintf("%x", sha256Prefix("a/b c")) + "-1"},
		{long, 3, "run-" + long[:100] + "-" + fmt.Sprintf("%x", sha256Prefix(long)) + "-3"},
	} {
		if got := RunName(tc.id, tc.attempt); got != tc.want {
			t.Errorf("RunName(%q, %d) = %q, want %q", tc.id, tc.attempt, got, tc.want)
		}
	}
	if RunName("a/b", 1) == RunName("a_b", 1) || RunName("a/b", 1) == RunName("a b", 1) {
		t.Errorf("two IDs share a run name")
	}
}

func sha256Prefix(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:4]
}
