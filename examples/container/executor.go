//go:build unix

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/triggerkit/trigger"
)

// Payload keys the executor writes when it escalates a trigger to a larger
// machine preset. The scheduler's Reschedule keeps Trigger.Machine as it was
// scheduled, so the preset a trigger runs on after an escalation travels in
// its payload, and PayloadMachine overrides Trigger.Machine.
const (
	// PayloadMachine holds the name of the preset the next run uses.
	PayloadMachine = "container.machine"
	// PayloadOOM holds the message of the OOM kill that caused the last
	// escalation, with the tail of that run's output.
	PayloadOOM = "container.oom"
)

// Environment variables every run gets, on top of Spec.Env.
const (
	EnvRunID   = "TRIGGER_RUN_ID"  // the run's name, run-<id>-<attempt>
	EnvID      = "TRIGGER_ID"      // the trigger's ID
	EnvAttempt = "TRIGGER_ATTEMPT" // the attempt number, 1 on the first run
	EnvToken   = "TRIGGER_TOKEN"   // the claim's fencing token, for systems that can refuse stale writers
	EnvMachine = "TRIGGER_MACHINE" // the preset's name (only with presets)
	EnvCPUs    = "TRIGGER_CPUS"    // the preset's CPUs (only when limited)
	EnvMemory  = "TRIGGER_MEMORY"  // the preset's memory in bytes (only when limited)
)

// ErrInvalid is returned (wrapped) when a trigger cannot be run as asked:
// its machine preset is unknown, Config.Command refused it, or the spec
// lacks what the runner needs. Consume fails such a trigger at once,
// without retries: it would fail the same way again.
var ErrInvalid = errors.New("container: invalid run")

// Preset is a machine preset: the resources of one run. Trigger.Machine
// names the preset a trigger runs on.
type Preset struct {
	// Name is what Trigger.Machine refers to, such as "small-1x".
	Name string
	// CPUs is the CPU limit (docker run --cpus). Zero means no limit.
	CPUs float64
	// Memory is the memory limit in bytes (docker run --memory, with no
	// swap on top). Zero means no limit.
	Memory int64
	// Next names the preset to run on after an OOM kill on this one. Empty
	// means there is none: an OOM kill fails the trigger for good, since
	// running it again on the same preset would be killed again.
	Next string
}

// Spec is what to run for a trigger, as Config.Command builds it.
type Spec struct {
	// Image is the container image. The DockerRunner requires it; the
	// ProcessRunner ignores it.
	Image string
	// Command is the argument vector. For the ProcessRunner, Command[0] is
	// the program (looked up in PATH); for the DockerRunner it follows the
	// image, and empty runs the image's default command.
	Command []string
	// Env holds extra "KEY=value" variables for the run.
	Env []string
	// Timeout, when positive, replaces Config.Timeout for this run.
	Timeout time.Duration
}

// Config configures an Executor. The zero value of every optional field is
// documented.
type Config struct {
	// Runner creates, restores and deletes runs: a *ProcessRunner for local
	// processes or a *DockerRunner for containers. Required.
	Runner Runner
	// Command returns what to run for a trigger, typically from its NodeID
	// and Payload. An error fails the trigger for good (the spec is a
	// function of the trigger, so a retry would get the same error).
	// Required.
	Command func(t *trigger.Trigger) (Spec, error)

	// Presets are the machine presets triggers may ask for, with their
	// escalation ladder (Preset.Next). Empty means no limits; a trigger
	// that names a machine then fails with ErrInvalid.
	Presets []Preset
	// DefaultMachine is the preset of triggers with an empty Machine.
	// Defaults to the first preset.
	DefaultMachine string

	// Timeout bounds every run: a run still going after it is killed (its
	// whole process group, or its container) and fails with a
	// *TimeoutError, which is retried like any failure. Spec.Timeout
	// overrides it per run. Defaults to 10m.
	Timeout time.Duration
	// OutputLimit is how many bytes of stdout and of stderr are kept per
	// run: the last ones, which are the ones that say why it ended.
	// Defaults to 64 KiB.
	OutputLimit int

	// OnResult, when set, is called once per Consume, after the run was
	// cleaned up (or refused before it started: Result.Started is then
	// zero), with what happened (the output, the exit, the classified
	// error) and the outcome the executor chose: nil to complete, an error
	// to retry, or a directive (trigger.Fail, trigger.Reschedule for an
	// escalation). What it returns is what Consume returns, so it can
	// observe or decide, such as handing the output on to the next node
	// in the same store write as the completion:
	//
	//	OnResult: func(ctx context.Context, t *trigger.Trigger, r *Result, outcome error) error {
	//		if outcome != nil {
	//			return outcome
	//		}
	//		return trigger.Complete(trigger.Trigger{NodeID: "report", Payload: trigger.Payload{"stdout": string(r.Stdout)}})
	//	}
	//
	// Defaults to returning outcome unchanged. It must be safe for
	// concurrent use.
	OnResult func(ctx context.Context, t *trigger.Trigger, r *Result, outcome error) error

	// Logger receives restores, escalations and failed cleanups. Defaults
	// to slog.Default().
	Logger *slog.Logger
}

// Executor is a trigger.Consumer that runs one process or container per
// trigger, with the create / restore / delete lifecycle:
//
//   - restore: when a run is a recovery (Trigger.Recovered: the previous
//     attempt was cut off by a crash or lost its lease), whatever that
//     attempt left — a process group, a container — is found and removed
//     before the new one starts. It is not re-attached: a process that is
//     not our child cannot be waited for, and its output up to now is gone,
//     so the run starts again, which at-least-once delivery allows. Retries
//     (Attempt > 1) restore too, in case a delete failed.
//   - create: the run is started on its machine preset, named
//     run-<id>-<attempt> (RunName), with the Env* variables, and killed when
//     its timeout passes or its context is canceled.
//   - delete: whatever happened, the run is killed if it still goes and
//     removed (its process group, its container, its pid file).
//
// Outcomes. Exit status 0 completes the trigger. An exit by SIGKILL or with
// status 137 (how a container runtime reports the OOM killer) is an
// *OOMError: the trigger is rescheduled at once on the preset's Next, with
// PayloadMachine set to it, or failed for good when there is no larger
// preset. The escalation is a trigger.Reschedule, the only outcome that can
// change the payload: attempts start over on the new preset (so its first
// run is run-<id>-1 again) and Iteration grows by one. A timeout (*TimeoutError)
// or another exit status (*ExitError) is an ordinary failure: retried with
// the scheduler's backoff until MaxAttempts. A canceled run returns its
// context's error.
//
// Output. The last Config.OutputLimit bytes of stdout and stderr are
// captured per run. A failure's error carries the tail of stderr (of stdout
// when stderr is empty), so the stored trigger's LastError says why it
// failed, and an escalated trigger has it in its payload (PayloadOOM). A
// completed trigger's payload does not change; Config.OnResult receives the
// output of every run and can pass it on in follow-up triggers.
//
// An Executor is safe for concurrent use.
type Executor struct {
	cfg     Config
	presets map[string]Preset
	log     *slog.Logger
}

var _ trigger.Consumer = (*Executor)(nil)

const (
	defaultTimeout     = 10 * time.Minute
	defaultOutputLimit = 64 << 10
	// errorOutputLimit bounds the output quoted in an error message, which
	// the store keeps as the trigger's LastError.
	errorOutputLimit = 2 << 10
	// cleanupTimeout bounds a delete that runs after the run's context
	// ended.
	cleanupTimeout = 30 * time.Second
)

// NewExecutor validates cfg and returns an executor.
func NewExecutor(cfg Config) (*Executor, error) {
	if cfg.Runner == nil {
		return nil, errors.New("container: Config.Runner is nil; use &ProcessRunner{} or &DockerRunner{}")
	}
	if cfg.Command == nil {
		return nil, errors.New("container: Config.Command is nil; it builds the Spec of each trigger")
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("container: Config.Timeout is negative (%v); use zero for the default of %v", cfg.Timeout, defaultTimeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultTimeout
	}
	if cfg.OutputLimit < 0 {
		return nil, fmt.Errorf("container: Config.OutputLimit is negative (%d); use zero for the default of %d bytes", cfg.OutputLimit, defaultOutputLimit)
	}
	if cfg.OutputLimit == 0 {
		cfg.OutputLimit = defaultOutputLimit
	}
	presets := make(map[string]Preset, len(cfg.Presets))
	for _, p := range cfg.Presets {
		switch {
		case p.Name == "":
			return nil, errors.New("container: a preset has no Name")
		case p.CPUs < 0 || p.Memory < 0:
			return nil, fmt.Errorf("container: preset %q has a negative limit; zero means no limit", p.Name)
		}
		if _, dup := presets[p.Name]; dup {
			return nil, fmt.Errorf("container: preset %q is configured twice", p.Name)
		}
		presets[p.Name] = p
	}
	for _, p := range cfg.Presets {
		// Walk the ladder from p: every step must exist and none may come
		// back, or an OOM kill would escalate forever.
		seen := map[string]bool{p.Name: true}
		for q := p; q.Next != ""; {
			next, ok := presets[q.Next]
			if !ok {
				return nil, fmt.Errorf("container: preset %q: Next names %q, which is not configured", q.Name, q.Next)
			}
			if seen[next.Name] {
				return nil, fmt.Errorf("container: presets escalate in a cycle through %q", next.Name)
			}
			seen[next.Name] = true
			q = next
		}
	}
	if cfg.DefaultMachine == "" && len(cfg.Presets) > 0 {
		cfg.DefaultMachine = cfg.Presets[0].Name
	}
	if _, ok := presets[cfg.DefaultMachine]; cfg.DefaultMachine != "" && !ok {
		return nil, fmt.Errorf("container: Config.DefaultMachine %q is not a configured preset", cfg.DefaultMachine)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Executor{cfg: cfg, presets: presets, log: log}, nil
}

// Result is what one run did, as Config.OnResult receives it.
type Result struct {
	// Name is the run's name, run-<id>-<attempt>.
	Name string
	// Machine is the preset the run used; zero without presets.
	Machine Preset
	// Exit is how the process or container ended; zero if it never started.
	Exit Exit
	// Stdout and Stderr are the last Config.OutputLimit bytes of each
	// stream.
	Stdout, Stderr []byte
	// Started is when the run was created; Duration how long it lasted.
	Started  time.Time
	Duration time.Duration
	// Err is nil for a success, or why the run failed: a *TimeoutError, an
	// *OOMError, an *ExitError, an error wrapping ErrInvalid, the context's
	// error for a canceled run, or an error of the runner.
	Err error
}

// Exit is how a process or container ended.
type Exit struct {
	// Code is the exit status; 128+n when signal n killed the process, as
	// shells and container runtimes report it.
	Code int
	// Signal is the signal that killed the process, or 0 if it exited.
	Signal syscall.Signal
	// OOMKilled is set when the runtime confirms that the kernel's OOM
	// killer ended the run (docker's State.OOMKilled).
	OOMKilled bool
}

// Killed reports whether the run was killed the way the OOM killer kills:
// by SIGKILL, or with exit status 137 from a runtime that reports its
// child's SIGKILL that way.
func (x Exit) Killed() bool {
	return x.OOMKilled || x.Signal == syscall.SIGKILL || x.Code == 128+int(syscall.SIGKILL)
}

// OOMError is the error of a run killed by SIGKILL or with exit status 137:
// most likely out of memory. Consume escalates it to the preset's Next, or
// fails the trigger for good with it (find it with errors.As).
type OOMError struct {
	Run     string
	Machine string // the preset's name; empty without presets
	Memory  int64  // the preset's memory limit in bytes; zero if none
	// Confirmed is set when the runtime confirmed the OOM kill; otherwise
	// something else may have sent the SIGKILL.
	Confirmed bool
	Output    string // the tail of the run's output
}

func (e *OOMError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s%s: killed by SIGKILL", e.Run, on(e.Machine))
	if e.Confirmed {
		b.WriteString(", out of memory")
	} else {
		b.WriteString(", probably out of memory")
	}
	if e.Memory > 0 {
		fmt.Fprintf(&b, " (limit %s)", bytesString(e.Memory))
	}
	return b.String() + quote(e.Output)
}

// TimeoutError is the error of a run that outlived its timeout and was
// killed.
type TimeoutError struct {
	Run     string
	Machine string
	Timeout time.Duration
	Output  string // the tail of the run's output
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("%s%s: timed out after %v, killed", e.Run, on(e.Machine), e.Timeout) + quote(e.Output)
}

// ExitError is the error of a run that ended with a non-zero exit status
// (other than an OOM kill).
type ExitError struct {
	Run     string
	Machine string
	Exit    Exit
	Output  string // the tail of the run's output
}

func (e *ExitError) Error() string {
	how := "exit status " + strconv.Itoa(e.Exit.Code)
	if e.Exit.Signal != 0 {
		how = "killed by " + e.Exit.Signal.String()
	}
	return fmt.Sprintf("%s%s: %s", e.Run, on(e.Machine), how) + quote(e.Output)
}

func on(machine string) string {
	if machine == "" {
		return ""
	}
	return " on " + machine
}

func quote(output string) string {
	if output == "" {
		return ""
	}
	return "\n" + output
}

func bytesString(n int64) string {
	switch {
	case n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + " GiB"
	case n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// Consume runs t: see Executor for the lifecycle and the outcomes.
func (e *Executor) Consume(ctx context.Context, t *trigger.Trigger) error {
	r := &Result{Name: RunName(t.ID, t.Attempt)}
	outcome := e.run(ctx, t, r)
	if e.cfg.OnResult != nil {
		outcome = e.cfg.OnResult(ctx, t, r, outcome)
	}
	return outcome
}

func (e *Executor) run(ctx context.Context, t *trigger.Trigger, r *Result) error {
	preset, err := e.machine(t)
	if err != nil {
		r.Err = err
		return trigger.Fail(err)
	}
	r.Machine = preset
	spec, err := e.cfg.Command(t)
	if err != nil {
		r.Err = fmt.Errorf("%w: command for %s: %w", ErrInvalid, r.Name, err)
		return trigger.Fail(r.Err)
	}
	stdout := &tail{limit: e.cfg.OutputLimit}
	stderr := &tail{limit: e.cfg.OutputLimit}
	run := Run{
		Name:      r.Name,
		TriggerID: t.ID,
		Attempt:   t.Attempt,
		Machine:   preset,
		Spec:      spec,
		Env:       runEnv(t, r.Name, preset, spec.Env),
		Stdout:    stdout,
		Stderr:    stderr,
	}
	attrs := slices.Clip(append(t.LogAttrs(), slog.String("run", r.Name)))

	if t.Recovered || t.Attempt > 1 {
		if err := e.cfg.Runner.Restore(ctx, run); err != nil {
			// Starting now could run two copies at once: retry instead.
			r.Err = fmt.Errorf("restore before %s: %w", r.Name, err)
			return r.Err
		}
		if t.Recovered {
			e.log.LogAttrs(ctx, slog.LevelInfo, "recovered run: removed what earlier attempts left", attrs...)
		}
	}

	timeout := e.cfg.Timeout
	if spec.Timeout > 0 {
		timeout = spec.Timeout
	}
	runCtx, cancel := context.WithTimeoutCause(ctx, timeout, errTimedOut)
	defer cancel()
	r.Started = time.Now()
	inst, err := e.cfg.Runner.Create(runCtx, run)
	if err != nil {
		r.Err = fmt.Errorf("create %s: %w", r.Name, err)
		if errors.Is(err, ErrInvalid) {
			return trigger.Fail(r.Err)
		}
		return r.Err
	}

	// Wait for the run, or kill it when its context ends. The goroutine
	// ends with the run: Delete kills it, and Wait returns once it is dead.
	waited := make(chan waitResult, 1)
	go func() {
		x, err := inst.Wait()
		waited <- waitResult{x, err}
	}()
	var w waitResult
	killed := false
	select {
	case w = <-waited:
	case <-runCtx.Done():
		killed = true
		e.delete(ctx, inst, attrs)
		w = <-waited
	}
	r.Duration = time.Since(r.Started)
	if !killed {
		e.delete(ctx, inst, attrs)
	}
	r.Exit, r.Stdout, r.Stderr = w.exit, stdout.Bytes(), stderr.Bytes()

	output := errorOutput(r.Stdout, r.Stderr)
	switch {
	case killed && context.Cause(runCtx) == errTimedOut: // not the caller's cancellation
		r.Err = &TimeoutError{Run: r.Name, Machine: preset.Name, Timeout: timeout, Output: output}
		return r.Err
	case killed:
		r.Err = fmt.Errorf("%s stopped: %w", r.Name, ctx.Err())
		if cause := context.Cause(ctx); cause != ctx.Err() {
			r.Err = fmt.Errorf("%w (%w)", r.Err, cause)
		}
		return r.Err
	case w.err != nil:
		r.Err = fmt.Errorf("wait for %s: %w", r.Name, w.err)
		return r.Err
	case w.exit.Killed():
		oom := &OOMError{Run: r.Name, Machine: preset.Name, Memory: preset.Memory, Confirmed: w.exit.OOMKilled, Output: output}
		r.Err = oom
		return e.escalate(ctx, t, preset, oom, attrs)
	case w.exit.Code != 0:
		r.Err = &ExitError{Run: r.Name, Machine: preset.Name, Exit: w.exit, Output: output}
		return r.Err
	}
	return nil
}

var errTimedOut = errors.New("container: run timed out")

type waitResult struct {
	exit Exit
	err  error
}

// delete removes inst with a context of its own: the run's may be over.
func (e *Executor) delete(ctx context.Context, inst Instance, attrs []slog.Attr) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := inst.Delete(dctx); err != nil {
		e.log.LogAttrs(ctx, slog.LevelWarn, "could not delete the run; the next retry or recovery of the trigger removes it", append(attrs, slog.Any("error", err))...)
	}
}

// escalate returns the outcome of an OOM kill on preset.
func (e *Executor) escalate(ctx context.Context, t *trigger.Trigger, preset Preset, oom *OOMError, attrs []slog.Attr) error {
	if preset.Next == "" {
		return trigger.Fail(oom)
	}
	payload := maps.Clone(t.Payload)
	if payload == nil {
		payload = trigger.Payload{}
	}
	payload[PayloadMachine] = preset.Next
	payload[PayloadOOM] = oom.Error()
	e.log.LogAttrs(ctx, slog.LevelWarn, "run killed, probably out of memory; running again on a larger preset",
		append(attrs, slog.String("machine", preset.Name), slog.String("next_machine", preset.Next))...)
	return trigger.Reschedule(time.Now(), payload)
}

// machine returns the preset t runs on: PayloadMachine when an escalation
// set it, else t.Machine, else the default.
func (e *Executor) machine(t *trigger.Trigger) (Preset, error) {
	name := t.Machine
	if v, ok := t.Payload[PayloadMachine]; ok {
		s, ok := v.(string)
		if !ok {
			return Preset{}, fmt.Errorf("%w: payload key %q is %T, not a preset name", ErrInvalid, PayloadMachine, v)
		}
		name = s
	}
	if len(e.presets) == 0 {
		if name != "" {
			return Preset{}, fmt.Errorf("%w: machine %q asked for, but no presets are configured", ErrInvalid, name)
		}
		return Preset{}, nil
	}
	if name == "" {
		name = e.cfg.DefaultMachine
	}
	p, ok := e.presets[name]
	if !ok {
		names := make([]string, len(e.cfg.Presets))
		for i, p := range e.cfg.Presets {
			names[i] = p.Name
		}
		return Preset{}, fmt.Errorf("%w: unknown machine preset %q (configured: %s)", ErrInvalid, name, strings.Join(names, ", "))
	}
	return p, nil
}

// runEnv returns extra followed by the run's variables, which win over
// extra's.
func runEnv(t *trigger.Trigger, name string, p Preset, extra []string) []string {
	env := append([]string(nil), extra...)
	env = append(env,
		EnvRunID+"="+name,
		EnvID+"="+t.ID,
		EnvAttempt+"="+strconv.Itoa(t.Attempt),
		EnvToken+"="+strconv.FormatUint(t.Token, 10),
	)
	if p.Name != "" {
		env = append(env, EnvMachine+"="+p.Name)
	}
	if p.CPUs > 0 {
		env = append(env, EnvCPUs+"="+strconv.FormatFloat(p.CPUs, 'f', -1, 64))
	}
	if p.Memory > 0 {
		env = append(env, EnvMemory+"="+strconv.FormatInt(p.Memory, 10))
	}
	return env
}

// RunName returns the name of a run: run-<id>-<attempt>, the container's
// name and the pid file's. An ID that is long or has characters other than
// ASCII letters, digits, '_', '.' and '-' is shortened and has them
// replaced by '_', with a hash of the ID appended so that two IDs never
// share a name.
func RunName(id string, attempt int) string {
	return "run-" + nameID(id) + "-" + strconv.Itoa(attempt)
}

const maxNameID = 100

func nameID(id string) string {
	clean := len(id) <= maxNameID
	b := []byte(id[:min(len(id), maxNameID)])
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			b[i] = '_'
			clean = false
		}
	}
	if clean {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return string(b) + "-" + hex.EncodeToString(sum[:4])
}

// errorOutput is the output quoted in an error: the tail of stderr, or of
// stdout when stderr is empty.
func errorOutput(stdout, stderr []byte) string {
	out := stderr
	if len(strings.TrimSpace(string(out))) == 0 {
		out = stdout
	}
	if len(out) > errorOutputLimit {
		out = out[len(out)-errorOutputLimit:]
	}
	return strings.TrimSpace(strings.ToValidUTF8(string(out), "")) // the cut may split a rune
}

// tail is a writer that keeps the last limit bytes written to it. It is
// not safe for concurrent use: one stream writes it, and it is read after
// the run.
type tail struct {
	limit int
	buf   []byte
}

func (b *tail) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	if len(b.buf) > 2*b.limit { // trim in batches, not on every write
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-b.limit:]...)
	}
	return len(p), nil
}

// Bytes returns the last limit bytes written.
func (b *tail) Bytes() []byte {
	if len(b.buf) > b.limit {
		return b.buf[len(b.buf)-b.limit:]
	}
	return b.buf
}

var _ io.Writer = (*tail)(nil)
