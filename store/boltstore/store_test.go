package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.etcd.io/bbolt"
	"go.uber.org/goleak"

	"github.com/triggerkit/trigger"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// t0 is the time every test starts from (stores never read the clock).
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// openTest opens a store in path, closes it at cleanup and then checks the
// file's consistency with bbolt's own checker.
func openTest(t testing.TB, path string, opts *Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { checkFile(t, path) })
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func newTest(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "triggers.db")
	return openTest(t, path, nil), path
}

// checkFile runs bbolt's consistency check on a closed store file.
func checkFile(t testing.TB, path string) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Errorf("check %s: %v", path, err)
		return
	}
	defer db.Close()
	if err := db.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("check %s: %v", path, err)
		}
		return nil
	}); err != nil {
		t.Errorf("check %s: %v", path, err)
	}
}

// withDB runs fn in a write transaction on the closed store file at path.
func withDB(t *testing.T, path string, fn func(tx *bbolt.Tx) error) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func next(id string, due time.Time) trigger.Trigger {
	return trigger.Trigger{ID: id, Type: trigger.TypeNext, DueAt: due}
}

func claimFor(owner string, now time.Time) trigger.Claim {
	return trigger.Claim{Owner: owner, Now: now, Until: now.Add(time.Minute)}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func ids(refs []trigger.Ref) string {
	var s []string
	for _, r := range refs {
		s = append(s, r.ID)
	}
	return strings.Join(s, ",")
}

func TestReopenKeepsTriggers(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "triggers.db")
	s, err := Open(path, nil)
	must(t, err)
	in := next("a", at(time.Hour))
	in.Payload = trigger.Payload{"k": "v"}
	must(t, s.Save(ctx, t0, in))
	must(t, s.Close())

	s = openTest(t, path, nil)
	got, err := s.Get(ctx, "a")
	must(t, err)
	if got.State != trigger.StateScheduled || !got.DueAt.Equal(in.DueAt) || got.Payload["k"] != "v" {
		t.Fatalf("after reopen: %+v", got)
	}
}

func TestReopenRecoversClaim(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "triggers.db")
	s, err := Open(path, nil)
	must(t, err)
	must(t, s.SaveBatch(ctx, t0, []trigger.Trigger{next("a", t0), next("b", at(time.Second))}))
	first, err := s.Claim(ctx, "a", claimFor("node-1", t0))
	must(t, err)
	// Close stands in for a crash that came after the claim's lazy write
	// (Close commits what is queued, as the next group commit would).
	must(t, s.Close())

	s = openTest(t, path, nil)
	got, err := s.Get(ctx, "a")
	must(t, err)
	if got.State != trigger.StateRunning || got.Owner != "node-1" || got.Attempt != 1 || got.Token != first.Token {
		t.Fatalf("claimed trigger after reopen: %+v", got)
	}
	// The lease died with the process: claimable at once, in claim order.
	refs, err := s.Due(ctx, trigger.DueQuery{Now: at(time.Second), Until: at(time.Second), Limit: 10})
	must(t, err)
	if ids(refs) != "a,b" {
		t.Fatalf("Due after reopen = %v, want a,b", refs)
	}
	if err := s.Finish(ctx, "a", first.Token, trigger.Outcome{Kind: trigger.OutcomeComplete, Now: at(time.Second)}); !errors.Is(err, trigger.ErrLeaseLost) {
		t.Fatalf("Finish with the token of the previous process: %v, want ErrLeaseLost", err)
	}
	again, err := s.Claim(ctx, "a", claimFor("node-2", at(time.Second)))
	must(t, err)
	if !again.Recovered || again.Token <= first.Token || again.Attempt != 2 {
		t.Fatalf("claim after reopen: Recovered %v, Token %d (before %d), Attempt %d; want true, bigger, 2",
			again.Recovered, again.Token, first.Token, again.Attempt)
	}
	must(t, s.Finish(ctx, "a", again.Token, trigger.Outcome{Kind: trigger.OutcomeComplete, Now: at(2 * time.Second)}))
}

func TestTokensGrowAcrossOpens(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "triggers.db")
	var last uint64
	for i := range 3 {
		s, err := Open(path, nil)
		must(t, err)
		id := fmt.Sprint("t", i)
		must(t, s.Save(ctx, t0, next(id, t0)))
		c, err := s.Claim(ctx, id, claimFor("o", t0))
		must(t, err)
		if c.Token <= last {
			t.Fatalf("open %d: token %d, not above %d", i, c.Token, last)
		}
		last = c.Token
		must(t, s.Close())
	}
	checkFile(t, path)
}

func TestOpenLockedFailsFast(t *testing.T) {
	t.Parallel()
	_, path := newTest(t)
	start := time.Now()
	s, err := Open(path, &Options{OpenTimeout: 100 * time.Millisecond})
	if err == nil {
		s.Close()
		t.Fatal("second Open of a file in use succeeded")
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("second Open took %v", d)
	}
	if _, err := Open(path, &Options{OpenTimeout: -1}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open without waiting: %v, want ErrLocked", err)
	}
}

func TestWrap(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "app.db")
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	must(t, err)
	defer db.Close()
	must(t, db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucket([]byte("app"))
		return err
	}))
	s, err := Wrap(db, nil)
	must(t, err)
	if _, err := Wrap(db, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Wrap: %v, want ErrLocked", err)
	}
	must(t, s.Save(ctx, t0, next("a", t0)))
	must(t, s.Close())
	// The DB stays open and can be wrapped again.
	s, err = Wrap(db, nil)
	must(t, err)
	defer s.Close()
	if _, err := s.Get(ctx, "a"); err != nil {
		t.Fatal(err)
	}
}

// asVersion turns the file at path, written by this build, into a file of
// format version v as that version wrote it: without the buckets added
// since, with the state index entries it kept (scheduled triggers in
// version 1, completed ones up to version 2), with version 5's token values
// (no time), and with children without a batch before version 7. The
// records stay otherwise: those of the tests that call it use no other
// field newer than v.
func asVersion(t *testing.T, path string, v uint32) {
	t.Helper()
	withDB(t, path, func(tx *bbolt.Tx) error {
		if v < 7 {
			var old []record
			err := tx.Bucket(bucketTriggers).ForEach(func(k, val []byte) error {
				r, err := decodeRecord(string(k), val)
				if err == nil && r.batch != 0 {
					r.batch = 0
					old = append(old, r)
				}
				return err
			})
			if err != nil {
				return err
			}
			for _, r := range old {
				if err := tx.Bucket(bucketTriggers).Put([]byte(r.t.ID), r.encode()); err != nil {
					return err
				}
			}
		}
		if v == 5 {
			b := tx.Bucket(bucketTokens)
			c := b.Cursor()
			for k, val := c.First(); k != nil; k, val = c.Next() {
				tk, err := decodeToken(val)
				if err != nil {
					continue // left as it is, as the upgrade leaves it
				}
				old := append([]byte{tk.state}, appendString(nil, tk.id)...)
				key := bytes.Clone(k)
				if err := b.Put(key, append(old, tk.payload...)); err != nil {
					return err
				}
				c.Seek(key)
			}
		}
		if v < 5 {
			for _, name := range waitBuckets {
				if err := tx.DeleteBucket(name); err != nil {
					return err
				}
			}
		}
		if v < 3 {
			state := tx.Bucket(bucketState)
			err := tx.Bucket(bucketTriggers).ForEach(func(k, val []byte) error {
				r, err := decodeRecord(string(k), val)
				if err != nil {
					return err
				}
				if st := r.t.State; st == trigger.StateCompleted || (v == 1 && st == trigger.StateScheduled) {
					return state.Put(stateKey(st, string(k)), []byte{})
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyFormat, binary.BigEndian.AppendUint32(nil, v))
	})
}

// Every earlier version upgrades to the current one on Open: version 1 and
// 2 files lose the state index entries of scheduled (version 1) and
// completed triggers, keeping the others, and the triggers stay listable;
// files before version 5 get the wait buckets, and their triggers wait as
// new ones do; a version 4 file's recurring fields read back as they were.
func TestUpgradeFromOlderFormats(t *testing.T) {
	t.Parallel()
	for version := uint32(1); version < formatVersion; version++ {
		t.Run(fmt.Sprint("version ", version), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "triggers.db")
			s, err := Open(path, nil)
			must(t, err)
			must(t, s.SaveBatch(ctx, t0, []trigger.Trigger{next("a", t0), next("b", t0), next("c", t0), next("w", t0), next("p", t0)}))
			for id, o := range map[string]trigger.Outcome{
				"b": {Kind: trigger.OutcomeComplete, Now: t0},
				"c": {Kind: trigger.OutcomeFail, Now: t0, Error: "boom"},
			} {
				cl, err := s.Claim(ctx, id, claimFor("o", t0))
				must(t, err)
				must(t, s.Finish(ctx, id, cl.Token, o))
			}
			var rec trigger.Trigger
			if version >= 4 {
				// A recurring trigger mid-retry and paused: the fields of
				// version 4.
				_, err := s.Register(ctx, t0, trigger.Trigger{ID: "r", Type: trigger.TypeCron, Cron: "0 3 * * *", DueAt: t0.Add(time.Hour)})
				must(t, err)
				cl, err := s.Claim(ctx, "r", claimFor("o", t0.Add(time.Hour)))
				must(t, err)
				must(t, s.Finish(ctx, "r", cl.Token, trigger.Outcome{Kind: trigger.OutcomeRetry, Now: t0.Add(time.Hour), At: t0.Add(2 * time.Hour), Error: "e"}))
				must(t, s.Pause(ctx, "r", t0.Add(time.Hour)))
				rec, err = s.Get(ctx, "r")
				must(t, err)
				if !rec.Paused || rec.PlannedAt.Equal(rec.DueAt) {
					t.Fatalf("recurring trigger before the downgrade: %+v", rec)
				}
			}
			must(t, s.Close())
			asVersion(t, path, version)

			s, err = Open(path, nil)
			must(t, err)
			for st, want := range map[trigger.State]string{trigger.StateScheduled: "a,p,w", trigger.StateCompleted: "b", trigger.StateFailed: "c"} {
				ts, err := s.List(ctx, trigger.ListQuery{State: st, Limit: 10, Type: trigger.TypeNext})
				must(t, err)
				var got []string
				for _, tr := range ts {
					got = append(got, tr.ID)
				}
				if strings.Join(got, ",") != want {
					t.Errorf("List(%s) after the upgrade = %v, want [%s]", st, got, want)
				}
			}
			if version >= 4 {
				got, err := s.Get(ctx, "r")
				must(t, err)
				if !got.Paused || !got.PlannedAt.Equal(rec.PlannedAt) || !got.DueAt.Equal(rec.DueAt) || got.Cron != rec.Cron || got.State != trigger.StateRetrying {
					t.Errorf("recurring trigger after the upgrade: %+v, want %+v", got, rec)
				}
			}
			// The triggers of the old file wait as new ones do: for a token
			// (resumed) and for children (the last one ends the wait).
			c, err := s.Claim(ctx, "w", claimFor("o", t0))
			must(t, err)
			due, err := s.Park(ctx, "w", c.Token, trigger.Park{Kind: trigger.WaitKindToken, Now: t0, Key: "k"})
			must(t, err)
			if !due.IsZero() {
				t.Errorf("Park returned due %v", due)
			}
			res, id, err := s.Resume(ctx, t0.Add(time.Second), "k", trigger.Payload{"x": 1.0})
			must(t, err)
			if res != trigger.ResumeDelivered || id != "w" {
				t.Errorf("Resume after the upgrade = %v, %q", res, id)
			}
			c, err = s.Claim(ctx, "p", claimFor("o", t0))
			must(t, err)
			_, err = s.Park(ctx, "p", c.Token, trigger.Park{Kind: trigger.WaitKindChildren, Now: t0, Children: []trigger.Trigger{next("k1", t0)}})
			must(t, err)
			k, err := s.Claim(ctx, "k1", claimFor("o", t0))
			must(t, err)
			must(t, s.Finish(ctx, "k1", k.Token, trigger.Outcome{Kind: trigger.OutcomeComplete, Now: t0.Add(time.Second)}))
			if p, err := s.Get(ctx, "p"); err != nil || p.State != trigger.StateScheduled || p.Wait.Pending != 0 {
				t.Errorf("parent after its child, after the upgrade: %+v, %v", p, err)
			}
			must(t, s.Close())
			withDB(t, path, func(tx *bbolt.Tx) error {
				if v := binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(keyFormat)); v != formatVersion {
					t.Errorf("format version %d after the upgrade, want %d", v, formatVersion)
				}
				for _, name := range waitBuckets {
					if tx.Bucket(name) == nil {
						t.Errorf("no bucket %q after the upgrade", name)
					}
				}
				var keys []string
				tx.Bucket(bucketState).ForEach(func(k, _ []byte) error {
					keys = append(keys, fmt.Sprintf("%s/%s", trigger.State(k[0]), k[1:]))
					return nil
				})
				want := "[failed/c]" // p is scheduled again, as its child ended
				if version >= 4 {
					want = "[retrying/r failed/c]"
				}
				if fmt.Sprint(keys) != want {
					t.Errorf("state index after the upgrade holds %v, want %s", keys, want)
				}
				return nil
			})
		})
	}
}

// A version 5 file's wait tokens come through the upgrade with their state,
// trigger and payload, stamped with the time of the upgrade: the ones no
// trigger waits for are purged one retention after it, the waiter's is
// kept, and resumes behave as before. A value that does not decode is left
// as it was, and a purge keeps it and reports it.
func TestUpgradeTokensFromVersion5(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "triggers.db")
	s, err := Open(path, nil)
	must(t, err)
	resume := func(now time.Time, key string, p trigger.Payload, want trigger.ResumeResult) {
		t.Helper()
		res, _, err := s.Resume(ctx, now, key, p)
		must(t, err)
		if res != want {
			t.Fatalf("Resume(%q) = %v, want %v", key, res, want)
		}
	}
	resume(t0, "early", trigger.Payload{"n": 1.0}, trigger.ResumeStored)
	must(t, s.Save(ctx, t0, trigger.Trigger{ID: "w", Type: trigger.TypeEvent, WaitKey: "wk"}))
	must(t, s.Save(ctx, t0, trigger.Trigger{ID: "d", Type: trigger.TypeEvent, WaitKey: "dk"}))
	resume(t0, "dk", nil, trigger.ResumeDelivered)
	must(t, s.Close())
	asVersion(t, path, 5)
	bad := []byte{tokenWaiter, 9, 'x'} // its ID runs past the end
	withDB(t, path, func(tx *bbolt.Tx) error { return tx.Bucket(bucketTokens).Put([]byte("bad"), bad) })
	v5 := map[string]string{}
	withDB(t, path, func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
			v5[string(k)] = string(v)
			return nil
		})
	})
	if want := "\x03\x01d"; v5["dk"] != want { // delivered, to d; no time
		t.Fatalf("version 5 value of dk = %q, want %q", v5["dk"], want)
	}

	lo := time.Now()
	var log logBuffer
	s = openTest(t, path, &Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	hi := time.Now()
	must(t, s.db.View(func(tx *bbolt.Tx) error {
		if v := binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(keyFormat)); v != formatVersion {
			t.Errorf("format version %d after the upgrade, want %d", v, formatVersion)
		}
		for key, want := range map[string]tokenRec{
			"early": {state: tokenEarly, payload: []byte(`{"n":1}`)},
			"wk":    {state: tokenWaiter, id: "w"},
			"dk":    {state: tokenDelivered, id: "d"},
		} {
			got, err := decodeToken(tx.Bucket(bucketTokens).Get([]byte(key)))
			if err != nil || got.state != want.state || got.id != want.id || !bytes.Equal(got.payload, want.payload) ||
				got.changed.Before(lo.Truncate(time.Nanosecond)) || got.changed.After(hi) {
				t.Errorf("token %q after the upgrade = %+v, %v; want %+v changed between %v and %v", key, got, err, want, lo, hi)
			}
		}
		if v := tx.Bucket(bucketTokens).Get([]byte("bad")); !bytes.Equal(v, bad) {
			t.Errorf("a token value that does not decode became %q", v)
		}
		return nil
	}))
	// The time is the upgrade's: nothing is purged before it.
	n, err := s.PurgeTokens(ctx, lo.Add(-time.Millisecond), 10)
	must(t, err)
	if n != 0 {
		t.Fatalf("PurgeTokens before the upgrade deleted %d", n)
	}
	resume(at(time.Hour), "dk", nil, trigger.ResumeDuplicate)
	n, err = s.PurgeTokens(ctx, hi.Add(time.Millisecond), 10)
	must(t, err)
	if n != 2 { // early and dk; not wk, nor bad
		t.Fatalf("PurgeTokens after the upgrade deleted %d, want 2", n)
	}
	if !strings.Contains(log.String(), "wait_key=bad") {
		t.Errorf("the token that does not decode was not reported; log:\n%s", log.String())
	}
	resume(at(time.Hour), "wk", trigger.Payload{"ok": true}, trigger.ResumeDelivered)
	resume(at(time.Hour), "dk", nil, trigger.ResumeStored)
	resume(at(time.Hour), "early", nil, trigger.ResumeStored)
	if _, _, err := s.Resume(ctx, at(time.Hour), "bad", nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Resume of the token that does not decode: %v, want ErrCorrupt", err)
	}
}

// A version 6 file's children have no batch (see countChild). Those of a
// wait in progress at the upgrade count in it and resume their parent;
// those of a wait their parent leaves after the upgrade count in none of
// its later waits. Children lists the old children as one batch, older
// than any new one.
func TestUpgradeChildrenFromVersion6(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "triggers.db")
	s, err := Open(path, nil)
	must(t, err)
	must(t, s.SaveBatch(ctx, t0, []trigger.Trigger{next("p1", t0), next("p2", t0)}))
	for id, kids := range map[string][]trigger.Trigger{
		"p1": {next("k1", at(time.Hour)), next("k2", at(time.Hour))},
		"p2": {next("m1", at(time.Hour)), next("m2", at(time.Hour))},
	} {
		c, err := s.Claim(ctx, id, claimFor("o", t0))
		must(t, err)
		_, err = s.Park(ctx, id, c.Token, trigger.Park{Kind: trigger.WaitKindChildren, Now: t0, Children: kids})
		must(t, err)
	}
	must(t, s.Close())
	asVersion(t, path, 6)
	withDB(t, path, func(tx *bbolt.Tx) error {
		for _, id := range []string{"k1", "k2", "m1", "m2"} {
			if r, err := decodeRecord(id, tx.Bucket(bucketTriggers).Get([]byte(id))); err != nil || r.batch != 0 || r.t.ParentID == "" {
				t.Fatalf("child %s of the version 6 file: batch %d, parent %q, %v", id, r.batch, r.t.ParentID, err)
			}
		}
		return nil
	})
	// The second Open reads the token ceiling the first noted.
	s, err = Open(path, nil)
	must(t, err)
	must(t, s.Close())
	s = openTest(t, path, nil)

	end := func(id string, now time.Time) {
		t.Helper()
		c, err := s.Claim(ctx, id, trigger.Claim{Owner: "o", Now: now, Until: now.Add(time.Minute), Force: true})
		must(t, err)
		must(t, s.Finish(ctx, id, c.Token, trigger.Outcome{Kind: trigger.OutcomeComplete, Now: now}))
	}
	parent := func(id string, state trigger.State, pending int) {
		t.Helper()
		p, err := s.Get(ctx, id)
		must(t, err)
		if p.State != state || p.Wait.Pending != pending {
			t.Fatalf("parent %s: %v, %d pending; want %v, %d", id, p.State, p.Wait.Pending, state, pending)
		}
	}
	children := func(id, want string) {
		t.Helper()
		cs, err := s.Children(ctx, id)
		must(t, err)
		var got []string
		for _, c := range cs {
			got = append(got, c.ID+":"+c.State.String())
		}
		if fmt.Sprint(got) != want {
			t.Errorf("Children(%s) = %v, want %s", id, got, want)
		}
	}
	// p2 leaves its wait (it is fired) and parks on a new batch.
	c, err := s.Claim(ctx, "p2", trigger.Claim{Owner: "o", Now: at(time.Second), Until: at(time.Hour), Force: true})
	must(t, err)
	_, err = s.Park(ctx, "p2", c.Token, trigger.Park{Kind: trigger.WaitKindChildren, Now: at(time.Second), Children: []trigger.Trigger{next("n1", at(time.Hour))}})
	must(t, err)
	children("p1", "[k1:scheduled k2:scheduled]")
	children("p2", "[n1:scheduled]")
	end("k1", at(2*time.Second))
	parent("p1", trigger.StateWaiting, 1)
	end("m1", at(2*time.Second))
	parent("p2", trigger.StateWaiting, 1)
	end("k2", at(3*time.Second))
	parent("p1", trigger.StateScheduled, 0)
	end("m2", at(3*time.Second))
	parent("p2", trigger.StateWaiting, 1)
	end("n1", at(4*time.Second))
	parent("p2", trigger.StateScheduled, 0)
	children("p1", "[k1:completed k2:completed]")
	children("p2", "[n1:completed]")
}

// A file of an older version that holds the wait buckets was written by a
// build of the waits work before it took format version 5, whose record
// fields had other bits: Open refuses it rather than misread its records.
func TestPreReleaseWaitsFileRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "triggers.db")
	s, err := Open(path, nil)
	must(t, err)
	must(t, s.Close())
	withDB(t, path, func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyFormat, binary.BigEndian.AppendUint32(nil, 3))
	})
	if s, err := Open(path, nil); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "pre-release") {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open of a version 3 file with wait buckets: %v, want ErrFormat", err)
	}
}

func TestNewerFormatRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "triggers.db")
	s, err := Open(path, nil)
	must(t, err)
	must(t, s.Close())
	withDB(t, path, func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyFormat, binary.BigEndian.AppendUint32(nil, formatVersion+1))
	})
	if s, err := Open(path, nil); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), fmt.Sprintf("version %d", formatVersion+1)) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open of a newer format: %v, want ErrFormat naming the version", err)
	}
}

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestCorruptRecordIsSkippedAndReported(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "triggers.db")
	s, err := Open(path, nil)
	must(t, err)
	must(t, s.SaveBatch(ctx, t0, []trigger.Trigger{next("a", t0), next("b", t0), next("c", t0), next("d", t0)}))
	c, err := s.Claim(ctx, "d", claimFor("o", t0))
	must(t, err)
	must(t, s.Finish(ctx, "d", c.Token, trigger.Outcome{Kind: trigger.OutcomeComplete, Now: t0}))
	must(t, s.Close())
	// b and d keep their index entries but their records become garbage.
	withDB(t, path, func(tx *bbolt.Tx) error {
		must(t, tx.Bucket(bucketTriggers).Put([]byte("b"), []byte("\x01garbage")))
		return tx.Bucket(bucketTriggers).Put([]byte("d"), []byte{recordVersion, 1, 5, 0, 0x80})
	})

	var logs logBuffer
	s = openTest(t, path, &Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if _, err := s.Get(ctx, "b"); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("Get of a corrupt record: %v, want ErrCorrupt naming b", err)
	}
	if _, err := s.Claim(ctx, "b", claimFor("o", t0)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Claim of a corrupt record: %v, want ErrCorrupt", err)
	}
	refs, err := s.Due(ctx, trigger.DueQuery{Now: t0, Until: t0, Limit: 10})
	must(t, err)
	if ids(refs) != "a,c" {
		t.Fatalf("Due = %v, want a,c", refs)
	}
	list, err := s.List(ctx, trigger.ListQuery{State: trigger.StateScheduled, Limit: 10})
	must(t, err)
	if len(list) != 2 || list[0].ID != "a" || list[1].ID != "c" {
		t.Fatalf("List = %v, want a, c", list)
	}
	if n, err := s.Purge(ctx, trigger.PurgeQuery{State: trigger.StateCompleted, Before: at(time.Hour), Limit: 10}); err != nil || n != 0 {
		t.Fatalf("Purge = %d, %v; want 0 (the completed record is corrupt)", n, err)
	}
	for _, id := range []string{"b", "d"} {
		if !strings.Contains(logs.String(), "trigger_id="+id) {
			t.Errorf("no log names corrupt trigger %s; logs:\n%s", id, logs.String())
		}
	}
	// The rest keeps working, and Delete removes the garbage.
	must(t, s.Delete(ctx, "b"))
	must(t, s.Delete(ctx, "d"))
	if _, err := s.Get(ctx, "b"); !errors.Is(err, trigger.ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	refs, err = s.Due(ctx, trigger.DueQuery{Now: t0, Until: t0, Limit: 10})
	must(t, err)
	if ids(refs) != "a,c" {
		t.Fatalf("Due after Delete = %v, want a,c", refs)
	}
	n, err := s.Purge(ctx, trigger.PurgeQuery{State: trigger.StateCompleted, Before: at(time.Hour), Limit: 10})
	if err != nil || n != 0 {
		t.Fatalf("Purge = %d, %v", n, err)
	}
	// The entries the deleted garbage left in the due and final indexes
	// were removed (the due one by a background write: Close flushes it).
	must(t, s.Close())
	withDB(t, path, func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketDue, bucketFinal} {
			c := tx.Bucket(name).Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				if bytes.HasSuffix(k, []byte("b")) || bytes.HasSuffix(k, []byte("d")) {
					t.Errorf("bucket %s still has key %q", name, k)
				}
			}
		}
		return nil
	})
}

func TestDueOrderAndCursor(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := newTest(t)
	mk := func(id string, due time.Duration, prio int) trigger.Trigger {
		tr := next(id, at(due))
		tr.Priority = prio
		return tr
	}
	must(t, s.SaveBatch(ctx, t0, []trigger.Trigger{
		mk("late", 3*time.Second, 0),
		mk("b", time.Second, 0),
		mk("a", time.Second, 0),
		mk("high", time.Second, 5),
		mk("low", time.Second, -5),
		mk("first", 0, trigger.MinPriority),
		mk("future", time.Hour, trigger.MaxPriority),
		{ID: "w", Type: trigger.TypeManual},
	}))
	due := func(q trigger.DueQuery) string {
		q.Limit = max(q.Limit, 1)
		refs, err := s.Due(ctx, q)
		must(t, err)
		return ids(refs)
	}
	q := trigger.DueQuery{Now: at(10 * time.Second), Until: at(10 * time.Second), Limit: 100}
	if got := due(q); got != "first,high,a,b,low,late" {
		t.Fatalf("Due = %s", got)
	}
	// Paging with After returns the same order.
	var paged []string
	q.Limit = 2
	for {
		refs, err := s.Due(ctx, q)
		must(t, err)
		if len(refs) == 0 {
			break
		}
		paged = append(paged, ids(refs))
		q.After = refs[len(refs)-1]
	}
	if got := strings.Join(paged, ","); got != "first,high,a,b,low,late" {
		t.Fatalf("paged Due = %s", got)
	}
	// An After without an ID is a time window.
	if got := due(trigger.DueQuery{Now: t0, Until: at(3 * time.Second), After: trigger.Ref{DueAt: at(time.Second)}, Limit: 10}); got != "late" {
		t.Fatalf("Due after 1s = %s, want late", got)
	}

	// A live lease hides its trigger; an expired one shows it at the lease
	// deadline.
	c, err := s.Claim(ctx, "first", trigger.Claim{Owner: "o", Now: t0, Until: at(2 * time.Second)})
	must(t, err)
	if got := due(trigger.DueQuery{Now: at(time.Second), Until: at(10 * time.Second), Limit: 100}); got != "high,a,b,low,late" {
		t.Fatalf("Due with a live lease = %s", got)
	}
	refs, err := s.Due(ctx, trigger.DueQuery{Now: at(2 * time.Second), Until: at(10 * time.Second), Limit: 100})
	must(t, err)
	if ids(refs) != "high,a,b,low,first,late" || !refs[4].DueAt.Equal(at(2*time.Second)) {
		t.Fatalf("Due with an expired lease = %v", refs)
	}
	must(t, s.Finish(ctx, "first", c.Token, trigger.Outcome{Kind: trigger.OutcomeComplete, Now: at(time.Second)}))
	if got := due(trigger.DueQuery{Now: at(2 * time.Second), Until: at(10 * time.Second), Limit: 100}); got != "high,a,b,low,late" {
		t.Fatalf("Due after Finish = %s", got)
	}
}

func (s *Store) queued() int {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return len(s.queue)
}

// block holds the committer until the returned function is called.
func block(s *Store) (release func()) {
	held, gate := make(chan struct{}), make(chan struct{})
	s.writeLazy(func(*writeTx) error {
		close(held)
		<-gate
		return nil
	})
	<-held
	return func() { close(gate) }
}

func TestContextEndsWhileQueued(t *testing.T) {
	t.Parallel()
	s, _ := newTest(t)
	release := block(s)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- s.Save(ctx, t0, next("a", t0)) }()
	time.Sleep(10 * time.Millisecond) // let Save queue (the result is the same if it has not)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Save: %v, want context.Canceled", err)
	}
	release()
	// A withdrawn write is never applied.
	must(t, s.Save(t.Context(), t0, next("b", t0)))
	if _, err := s.Get(t.Context(), "a"); !errors.Is(err, trigger.ErrNotFound) {
		t.Fatalf("Get of the withdrawn trigger: %v, want ErrNotFound", err)
	}
}

func TestGroupCommit(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := newTest(t)
	must(t, s.Save(ctx, t0, next("dup", t0)))
	release := block(s)
	before := s.commits.Load()
	// While the committer is held, 64 writers queue; one of them fails.
	errs := make([]error, 64)
	var wg sync.WaitGroup
	for i := range errs {
		id := fmt.Sprint("t", i)
		if i == 7 {
			id = "dup"
		}
		wg.Go(func() { errs[i] = s.Save(ctx, t0, next(id, t0)) })
	}
	for s.queued() < len(errs) {
		time.Sleep(time.Millisecond)
	}
	release()
	wg.Wait()
	for i, err := range errs {
		if want := error(nil); i == 7 {
			if !errors.Is(err, trigger.ErrDuplicate) {
				t.Errorf("Save of the duplicate: %v", err)
			}
		} else if err != want {
			t.Errorf("Save %d: %v", i, err)
		}
	}
	// One commit for the blocker, one for all 64 writers.
	if n := s.commits.Load() - before; n != 2 {
		t.Errorf("%d commits, want 2", n)
	}
	list, err := s.List(ctx, trigger.ListQuery{State: trigger.StateScheduled, Limit: 100})
	must(t, err)
	if len(list) != 64 {
		t.Errorf("%d triggers stored, want 64", len(list))
	}
}

// crashCopy returns a copy of the file as a crash at this instant would
// leave it: everything committed, nothing else.
func crashCopy(t *testing.T, s *Store) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "crashed.db")
	must(t, s.db.View(func(tx *bbolt.Tx) error { return tx.CopyFile(path, 0o600) }))
	return path
}

func TestCrashKeepsWhatReturned(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := newTest(t)
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() { must(t, s.Save(ctx, t0, next(fmt.Sprint("t", i), t0))) })
	}
	wg.Wait()
	c, err := s.Claim(ctx, "t0", claimFor("o", t0))
	must(t, err)
	must(t, s.Finish(ctx, "t0", c.Token, trigger.Outcome{Kind: trigger.OutcomeFail, Now: t0, Error: "boom",
		FollowUps: []trigger.Trigger{next("follow", at(time.Hour))}}))

	crashed := openTest(t, crashCopy(t, s), nil)
	list, err := crashed.List(ctx, trigger.ListQuery{State: trigger.StateScheduled, Limit: 100})
	must(t, err)
	if len(list) != 32 { // t1..t31 and the follow-up
		t.Fatalf("%d scheduled triggers after the crash, want 32", len(list))
	}
	got, err := crashed.Get(ctx, "t0")
	must(t, err)
	if got.State != trigger.StateFailed || got.LastError != "boom" || got.Attempt != 1 || got.Token != c.Token {
		t.Fatalf("finished trigger after the crash: %+v", got)
	}
}

// TestFailedFinishKeepsTheClaimRecord covers the claim record skipped
// because a Finish was queued: when that Finish fails, the record is
// written after all.
func TestFailedFinishKeepsTheClaimRecord(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := newTest(t)
	must(t, s.SaveBatch(ctx, t0, []trigger.Trigger{next("a", t0), next("b", t0)}))
	release := block(s)
	c, err := s.Claim(ctx, "a", claimFor("o", t0))
	must(t, err)
	finished := make(chan error)
	go func() {
		finished <- s.Finish(ctx, "a", c.Token, trigger.Outcome{Kind: trigger.OutcomeComplete, Now: t0,
			FollowUps: []trigger.Trigger{next("b", t0)}})
	}()
	for s.queued() < 2 { // the claim record and the Finish share a group
		time.Sleep(time.Millisecond)
	}
	release()
	if err := <-finished; !errors.Is(err, trigger.ErrDuplicate) {
		t.Fatalf("Finish with an existing follow-up: %v, want ErrDuplicate", err)
	}
	must(t, s.Save(ctx, t0, next("c", t0))) // a commit after the re-queued record
	got, err := openTest(t, crashCopy(t, s), nil).Get(ctx, "a")
	must(t, err)
	if got.State != trigger.StateRunning || got.Attempt != 1 || got.Token != c.Token {
		t.Fatalf("claimed trigger after a crash: %+v; want running, attempt 1, token %d", got, c.Token)
	}
}

// TestClaimRacesCancel: whatever the interleaving, every trigger ends
// canceled, with no lease left, and a claim that won cannot finish.
func TestClaimRacesCancel(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := newTest(t)
	const n = 200
	var ts []trigger.Trigger
	for i := range n {
		ts = append(ts, next(fmt.Sprint("t", i), t0))
	}
	must(t, s.SaveBatch(ctx, t0, ts))
	tokens := make([]uint64, n)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			must(t, s.Cancel(ctx, ts[i].ID, at(time.Second)))
		}
	})
	wg.Go(func() {
		for i := range n {
			c, err := s.Claim(ctx, ts[i].ID, claimFor("o", t0))
			switch {
			case err == nil:
				tokens[i] = c.Token
			case !errors.Is(err, trigger.ErrInvalidState):
				t.Errorf("Claim(%s): %v", ts[i].ID, err)
			}
		}
	})
	wg.Wait()
	for i, tr := range ts {
		got, err := s.Get(ctx, tr.ID)
		must(t, err)
		if got.State != trigger.StateCanceled || got.Owner != "" {
			t.Errorf("%s: %s owned by %q, want canceled", tr.ID, got.State, got.Owner)
		}
		if tokens[i] != 0 {
			err := s.Finish(ctx, tr.ID, tokens[i], trigger.Outcome{Kind: trigger.OutcomeComplete, Now: at(time.Second)})
			if !errors.Is(err, trigger.ErrLeaseLost) {
				t.Errorf("%s: Finish after Cancel: %v, want ErrLeaseLost", tr.ID, err)
			}
		}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.leases) != 0 || len(s.pending) != 0 {
		t.Errorf("%d leases and %d pending marks left", len(s.leases), len(s.pending))
	}
}

// TestTakeoverRacesFinish: when a lease has expired, its owner's Finish and
// another owner's Claim race; exactly one wins and the store shows it.
func TestTakeoverRacesFinish(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := newTest(t)
	const n = 100
	for i := range n {
		id := fmt.Sprint("t", i)
		must(t, s.Save(ctx, t0, next(id, t0)))
		c, err := s.Claim(ctx, id, claimFor("old", t0))
		must(t, err)
		later := at(2 * time.Minute) // the old lease has expired
		var finishErr, claimErr error
		var taken trigger.Trigger
		var wg sync.WaitGroup
		wg.Go(func() {
			finishErr = s.Finish(ctx, id, c.Token, trigger.Outcome{Kind: trigger.OutcomeComplete, Now: later})
		})
		wg.Go(func() { taken, claimErr = s.Claim(ctx, id, claimFor("new", later)) })
		wg.Wait()
		got, err := s.Get(ctx, id)
		must(t, err)
		switch {
		case finishErr == nil && errors.Is(claimErr, trigger.ErrInvalidState):
			if got.State != trigger.StateCompleted {
				t.Fatalf("%s: Finish won but the trigger is %s", id, got.State)
			}
		case claimErr == nil && errors.Is(finishErr, trigger.ErrLeaseLost):
			if got.State != trigger.StateRunning || got.Owner != "new" || got.Token != taken.Token || !taken.Recovered || taken.Attempt != 2 {
				t.Fatalf("%s: Claim won but the trigger is %+v (claim %+v)", id, got, taken)
			}
		default:
			t.Fatalf("%s: Finish %v, Claim %v: want exactly one to win", id, finishErr, claimErr)
		}
	}
}

func TestClosed(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "triggers.db")
	s, err := Open(path, nil)
	must(t, err)
	must(t, s.Close())
	must(t, s.Close())
	if err := s.Save(ctx, t0, next("a", t0)); !errors.Is(err, ErrClosed) {
		t.Errorf("Save after Close: %v", err)
	}
	if _, err := s.Get(ctx, "a"); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
	if _, err := s.Claim(ctx, "a", claimFor("o", t0)); !errors.Is(err, ErrClosed) {
		t.Errorf("Claim after Close: %v", err)
	}
	if _, err := s.Due(ctx, trigger.DueQuery{Now: t0, Until: t0, Limit: 1}); !errors.Is(err, ErrClosed) {
		t.Errorf("Due after Close: %v", err)
	}
}

func TestTokenReservation(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "triggers.db")
	s, err := Open(path, nil)
	must(t, err)
	must(t, s.SaveBatch(ctx, t0, []trigger.Trigger{next("a", t0), next("b", t0), next("c", t0)}))
	// Use up half the block: the next claim reserves another one.
	s.mu.Lock()
	s.lastToken = s.ceiling - tokenBlock/2
	ceiling := s.ceiling
	s.mu.Unlock()
	a, err := s.Claim(ctx, "a", claimFor("o", t0))
	must(t, err)
	must(t, s.Save(ctx, t0, next("d", t0))) // commits after the reservation
	s.mu.Lock()
	if s.ceiling != ceiling+tokenBlock || s.reserving {
		t.Errorf("ceiling %d (reserving %v), want %d", s.ceiling, s.reserving, ceiling+tokenBlock)
	}
	// Tokens beyond the reservation are refused, not handed out.
	s.lastToken = s.ceiling
	s.mu.Unlock()
	if _, err := s.Claim(ctx, "b", claimFor("o", t0)); err == nil {
		t.Error("claim beyond the reserved tokens succeeded")
	}
	must(t, s.Close())

	s = openTest(t, path, nil)
	c, err := s.Claim(ctx, "c", claimFor("o", t0))
	must(t, err)
	if c.Token <= a.Token || c.Token <= ceiling+tokenBlock {
		t.Errorf("token after reopen %d, want above %d", c.Token, ceiling+tokenBlock)
	}
}

// TestFailedCommit uses a file that may not grow: the writes of a failed
// commit fail and change nothing, in the file or in memory, and the store
// keeps working.
func TestFailedCommit(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "small.db")
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{MaxSize: 1 << 20, Timeout: time.Second})
	must(t, err)
	defer db.Close()
	s, err := Wrap(db, &Options{Logger: slog.New(slog.DiscardHandler)})
	must(t, err)
	defer s.Close()
	must(t, s.Save(ctx, t0, next("a", t0)))
	c, err := s.Claim(ctx, "a", claimFor("o", t0))
	must(t, err)

	huge := strings.Repeat("x", 2<<20)
	err = s.Finish(ctx, "a", c.Token, trigger.Outcome{Kind: trigger.OutcomeFail, Now: at(time.Second), Error: huge})
	if err == nil || !strings.Contains(err.Error(), "maximum size") {
		t.Fatalf("Finish beyond the file's size limit: %v, want a commit error", err)
	}
	big := next("big", t0)
	big.Payload = trigger.Payload{"x": huge}
	if err := s.Save(ctx, t0, big); err == nil {
		t.Fatal("Save beyond the file's size limit succeeded")
	}
	// The lease is intact: the owner can extend and finish.
	got, err := s.Get(ctx, "a")
	must(t, err)
	if got.State != trigger.StateRunning || got.Token != c.Token {
		t.Fatalf("after the failed Finish: %+v", got)
	}
	must(t, s.Extend(ctx, "a", c.Token, at(time.Second), at(time.Hour)))
	must(t, s.Finish(ctx, "a", c.Token, trigger.Outcome{Kind: trigger.OutcomeComplete, Now: at(2 * time.Second)}))
	if _, err := s.Get(ctx, "big"); !errors.Is(err, trigger.ErrNotFound) {
		t.Fatalf("Get of the trigger whose Save failed: %v", err)
	}
}

// TestClaimCostsNoCommit: a claim's record waits for a durable write to ride
// with, and gets a commit of its own only after lazyDelay. (Fake time: the
// store's timer runs in the synctest bubble.)
func TestClaimCostsNoCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		s, _ := newTest(t)
		must(t, s.SaveBatch(ctx, t0, []trigger.Trigger{next("a", t0), next("b", t0)}))
		before := s.commits.Load()
		_, err := s.Claim(ctx, "a", claimFor("o", t0))
		must(t, err)
		synctest.Wait()
		if n := s.commits.Load() - before; n != 0 {
			t.Fatalf("a claim caused %d commits at once", n)
		}
		time.Sleep(lazyDelay)
		synctest.Wait()
		if n := s.commits.Load() - before; n != 1 {
			t.Fatalf("%d commits after lazyDelay, want 1 (the claim's record)", n)
		}
		// A claim followed by a durable write rides with it.
		_, err = s.Claim(ctx, "b", claimFor("o", t0))
		must(t, err)
		must(t, s.Save(ctx, t0, next("c", t0)))
		time.Sleep(lazyDelay)
		synctest.Wait()
		if n := s.commits.Load() - before; n != 2 {
			t.Fatalf("%d commits, want 2: the second claim's record rides with the Save", n)
		}
		got, err := s.Get(ctx, "b")
		must(t, err)
		if got.State != trigger.StateRunning {
			t.Fatalf("b is %s", got.State)
		}
	})
}
