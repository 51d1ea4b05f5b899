package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The example run twice on one file, with a pause between the runs, under
// a fake clock: the second run changes no registration, catches up as each
// policy says, and runs no occurrence the first one ran.
func TestRunTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := filepath.Join(t.TempDir(), "cron.db")
		// Start just after a boundary of every spec, so that the counts
		// below are exact.
		time.Sleep(time.Until(time.Now().Truncate(time.Minute).Add(time.Minute + 100*time.Millisecond)))
		var first, second bytes.Buffer
		if err := run(context.Background(), []string{"-db", db, "-for", "6s"}, &first); err != nil {
			t.Fatalf("first run: %v\n%s", err, first.String())
		}
		time.Sleep(5 * time.Second) // down for a while
		if err := run(context.Background(), []string{"-db", db, "-for", "6s"}, &second); err != nil {
			t.Fatalf("second run: %v\n%s", err, second.String())
		}
		t.Logf("first run:\n%s\nsecond run:\n%s", first.String(), second.String())

		for _, want := range []string{"registered report", "created"} {
			if !strings.Contains(first.String(), want) {
				t.Errorf("the first run does not say %q", want)
			}
		}
		if n := strings.Count(second.String(), "unchanged"); n != 3 {
			t.Errorf("the second run found %d registrations unchanged, want 3", n)
		}
		// Every occurrence runs once across both runs.
		occ := regexp.MustCompile(`(?m)^\s+\S+\s+(\S+)\s+stands for (\S+)\s+(.*)$`)
		seen := map[string]string{}
		catchUps := map[string]int{}
		for i, out := range []string{first.String(), second.String()} {
			for _, m := range occ.FindAllStringSubmatch(out, -1) {
				key := m[1] + " " + m[2]
				if prev, ok := seen[key]; ok {
					t.Errorf("%s ran twice: %q and %q", key, prev, m[0])
				}
				seen[key] = m[0]
				if strings.Contains(m[3], "REPEATED") {
					t.Errorf("repeated occurrence: %s", m[0])
				}
				if i == 1 && m[3] == "catch-up" {
					catchUps[m[1]]++
				}
			}
		}
		// Down from about 0:06.1 to 0:11.1: report (every 2s, fire all, cap
		// 3) missed 0:08 and 0:10 and runs both; heartbeat (every 1s, fire
		// once) catches up once; cleanup (every 3s, skip) never.
		if want := map[string]int{"report": 2, "heartbeat": 1}; !equal(catchUps, want) {
			t.Errorf("catch-up runs in the second run: %v, want %v", catchUps, want)
		}
		if !strings.Contains(second.String(), "0 repeated; the ledger holds "+itoa(len(seen))+" occurrences of 2 runs") {
			t.Errorf("the second run's summary does not count %d occurrences over 2 runs", len(seen))
		}
	})
}

func equal(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func itoa(n int) string { return strconv.Itoa(n) }
