package boltstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/triggerkit/trigger"
)

// Finish builds the run's outcome on the lease's copy of the record
// (lease.rec), read before its write is queued. A Checkpoint that commits
// in between changes that copy, and the outcome is built again on it: the
// checkpointed payload survives the Finish.
func TestCheckpointCommittedWhileFinishIsQueued(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := newTest(t)
	tr := next("a", t0)
	tr.Payload = trigger.Payload{"step": 0.0}
	must(t, s.Save(ctx, t0, tr))
	c, err := s.Claim(ctx, "a", claimFor("o", t0))
	must(t, err)

	release := block(s)
	q := s.queued()
	checkpointed := make(chan error)
	go func() {
		checkpointed <- s.Checkpoint(ctx, "a", c.Token, at(time.Second), trigger.Payload{"step": 5.0})
	}()
	for s.queued() < q+1 {
		time.Sleep(time.Millisecond)
	}
	finished := make(chan error)
	go func() { // its outcome is built before the Checkpoint commits
		finished <- s.Finish(ctx, "a", c.Token, trigger.Outcome{Kind: trigger.OutcomeRetry, Now: at(2 * time.Second), At: at(time.Minute), Error: "e"})
	}()
	for s.queued() < q+2 {
		time.Sleep(time.Millisecond)
	}
	release()
	must(t, <-checkpointed)
	must(t, <-finished)
	got, err := s.Get(ctx, "a")
	must(t, err)
	if got.State != trigger.StateRetrying || got.Payload["step"] != 5.0 {
		t.Fatalf("after the Finish: %v with payload %v; want retrying with the checkpoint", got.State, got.Payload)
	}
	// The next run starts from the checkpoint, and so does a wait.
	c, err = s.Claim(ctx, "a", claimFor("o", at(time.Minute)))
	must(t, err)
	must(t, s.Checkpoint(ctx, "a", c.Token, at(time.Minute+time.Second), trigger.Payload{"step": 6.0}))
	_, err = s.Park(ctx, "a", c.Token, trigger.Park{Kind: trigger.WaitKindTime, Now: at(time.Minute + 2*time.Second), Until: at(time.Hour)})
	must(t, err)
	if got, err := s.Get(ctx, "a"); err != nil || got.Payload["step"] != 6.0 || got.State != trigger.StateScheduled {
		t.Fatalf("after the Park: %+v, %v; want scheduled with the checkpoint", got, err)
	}
}

// A token value keeps its state, time (to the nanosecond, in UTC), ID and
// payload; a value that is not one is refused, never a panic.
func TestTokenCodec(t *testing.T) {
	t.Parallel()
	for _, tk := range []tokenRec{
		{state: tokenEarly, changed: at(time.Second + 7), payload: []byte(`{"a":1}`)},
		{state: tokenEarly, changed: time.Unix(0, 0).UTC()},
		{state: tokenWaiter, changed: time.Date(1900, 1, 1, 0, 0, 0, 999999999, time.UTC), id: "trigger-1"},
		{state: tokenDelivered, changed: at(time.Hour).In(time.FixedZone("x", 3600)), id: "t"},
	} {
		v := appendToken(nil, &tk)
		got, err := decodeToken(v)
		if err != nil || got.state != tk.state || !got.changed.Equal(tk.changed) || got.changed.Location() != time.UTC ||
			got.id != tk.id || !bytes.Equal(got.payload, tk.payload) {
			t.Errorf("decodeToken(appendToken(%+v)) = %+v, %v", tk, got, err)
		}
		for i := range len(v) {
			decodeToken(v[:i]) // must not panic; a shorter payload may decode
		}
	}
	for name, v := range map[string][]byte{
		"empty":            nil,
		"state 0":          {0, 0, 0, 0},
		"state 4":          {4, 0, 0, 0},
		"no time":          {tokenEarly},
		"nanoseconds 1e9":  binary.AppendUvarint([]byte{tokenEarly, 0}, 1e9),
		"no id":            {tokenEarly, 0, 0},
		"id past the end":  {tokenWaiter, 0, 0, 5, 'a'},
		"version 5 waiter": append([]byte{tokenWaiter, 3}, "abc"...),
	} {
		if tk, err := decodeToken(v); err == nil {
			t.Errorf("%s: decodeToken(%q) = %+v, want an error", name, v, tk)
		}
	}
}

// countTokens returns how many token records s holds.
func countTokens(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	must(t, s.db.View(func(tx *bbolt.Tx) error {
		n = tx.Bucket(bucketTokens).Stats().KeyN
		return nil
	}))
	return n
}

// earlyTokens stores n early resumes changed at now, keys "k00000" on, in
// one write.
func earlyTokens(t *testing.T, s *Store, n int, now time.Time) {
	t.Helper()
	must(t, s.write(t.Context(), func(w *writeTx) error {
		for i := range n {
			w.putToken(fmt.Sprintf("k%05d", i), tokenRec{state: tokenEarly, changed: now})
		}
		return nil
	}))
}

// A purge of more tokens than a page deletes them a page per commit, not
// in one transaction, and keeps the tokens triggers wait for wherever they
// are in the bucket. Calls with a small limit go on where the last one
// stopped, and together delete them all.
func TestPurgeTokensPages(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := newTest(t)
	const n = 3*tokenPage + 7
	waiters := []string{"k00000w", "k01500w", fmt.Sprintf("k%05dw", n-1)} // after k00000, ...
	for round, limit := range []int{n, 1000, 1} {
		earlyTokens(t, s, n, t0)
		for _, key := range waiters {
			must(t, s.Save(ctx, t0, trigger.Trigger{ID: fmt.Sprint("w-", round, "-", key), Type: trigger.TypeEvent, WaitKey: key}))
		}
		commits := s.commits.Load()
		total, calls, want := 0, 0, n
		if limit == 1 {
			s.sweep.store(nil)
		}
		for {
			d, err := s.PurgeTokens(ctx, at(time.Hour), limit)
			must(t, err)
			total += d
			calls++
			if d < limit {
				break
			}
			if limit == 1 {
				// Each call goes on after the key the last one stopped at.
				if got, want := string(s.sweep.load()), fmt.Sprintf("k%05d", calls-1); got != want {
					t.Fatalf("after %d purges of one token, the sweep is at %q, want %q", calls, got, want)
				}
				if calls < 5 {
					continue
				}
				// Tokens before where it stopped: the next call goes
				// round to them.
				must(t, s.write(ctx, func(w *writeTx) error {
					for i := range 10 {
						w.putToken(fmt.Sprint("a", i), tokenRec{state: tokenEarly, changed: t0})
					}
					return nil
				}))
				want += 10
				d, err := s.PurgeTokens(ctx, at(time.Hour), 2*n)
				must(t, err)
				total += d
				break
			}
		}
		pages := int(s.commits.Load() - commits)
		if total != want || countTokens(t, s) != len(waiters) {
			t.Fatalf("limit %d: %d calls deleted %d tokens, %d left; want %d deleted, %d left", limit, calls, total, countTokens(t, s), want, len(waiters))
		}
		if limit == n && (pages < n/tokenPage || pages > n/tokenPage+2) {
			t.Errorf("one purge of %d tokens took %d commits, want about one per %d", n, pages, tokenPage)
		}
		for _, key := range waiters {
			res, _, err := s.Resume(ctx, at(2*time.Hour), key, nil)
			must(t, err)
			if res != trigger.ResumeDelivered {
				t.Fatalf("Resume(%q) after the purge = %v, want delivered", key, res)
			}
		}
		d, err := s.PurgeTokens(ctx, at(3*time.Hour), n) // the delivered ones
		must(t, err)
		if d != len(waiters) || countTokens(t, s) != 0 {
			t.Fatalf("purge of the delivered tokens: %d deleted, %d left", d, countTokens(t, s))
		}
	}
}

// A page's deletes check each token again in the write: one bound to a
// waiter since the page read it is kept, even when its value is the same
// bytes (a park at the very time of the token's last change).
func TestPurgeTokensRecheckInTheWrite(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := newTest(t)
	_, _, err := s.Resume(ctx, at(time.Second), "early", nil)
	must(t, err)
	// b's wait for kt timed out and its run is retried: the token is bound
	// to b, which does not wait for it. (While the run that timed out goes
	// on, its claim's record may not be written yet, and a purge keeps the
	// token of a trigger the file says is waiting.)
	must(t, s.Save(ctx, t0, next("b", t0)))
	c, err := s.Claim(ctx, "b", claimFor("o", t0))
	must(t, err)
	_, err = s.Park(ctx, "b", c.Token, trigger.Park{Kind: trigger.WaitKindToken, Now: at(time.Second), Key: "kt", Until: at(time.Minute)})
	must(t, err)
	c, err = s.Claim(ctx, "b", claimFor("o", at(time.Minute)))
	must(t, err)
	must(t, s.Finish(ctx, "b", c.Token, trigger.Outcome{Kind: trigger.OutcomeRetry, Now: at(time.Minute), At: at(2 * time.Minute), Error: "e"}))
	c, err = s.Claim(ctx, "b", claimFor("o", at(2*time.Minute)))
	must(t, err)

	stale, _, done, err := s.staleTokens(nil, nil, at(time.Hour), 10)
	must(t, err)
	if len(stale) != 2 || !done {
		t.Fatalf("staleTokens = %d tokens (done %v), want early and kt", len(stale), done)
	}
	// Both change before the write: a waiter parks on the early resume,
	// and b parks on kt again, at the time kt last changed.
	must(t, s.Save(ctx, at(2*time.Second), trigger.Trigger{ID: "e", Type: trigger.TypeEvent, WaitKey: "early"}))
	_, err = s.Park(ctx, "b", c.Token, trigger.Park{Kind: trigger.WaitKindToken, Now: at(time.Second), Key: "kt"})
	must(t, err)
	d, err := s.deleteTokens(ctx, stale)
	must(t, err)
	if d != 0 || countTokens(t, s) != 2 {
		t.Fatalf("deleteTokens of tokens changed since the read: %d deleted, %d left", d, countTokens(t, s))
	}
	res, _, err := s.Resume(ctx, at(time.Hour), "kt", nil)
	must(t, err)
	if res != trigger.ResumeDelivered {
		t.Fatalf("Resume(kt) = %v, want delivered", res)
	}
	if res, _, err = s.Resume(ctx, at(time.Hour), "early", nil); err != nil || res != trigger.ResumeDuplicate {
		t.Fatalf("Resume(early) = %v, %v; want duplicate (delivered to e)", res, err)
	}
}
