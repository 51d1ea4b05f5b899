package boltstore

import (
	"path/filepath"
	"testing"

	"github.com/triggerkit/trigger"
	"github.com/triggerkit/trigger/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) trigger.Store {
		s, _ := newTest(t)
		return s
	})
}

// TestConformanceReopened runs the suite on stores that were opened, closed
// and opened again, so every test starts past the first Open (a file
// with a format version and tokens already reserved).
func TestConformanceReopened(t *testing.T) {
	storetest.Run(t, func(t *testing.T) trigger.Store {
		path := filepath.Join(t.TempDir(), "triggers.db")
		s, err := Open(path, nil)
		must(t, err)
		must(t, s.Close())
		return openTest(t, path, nil)
	})
}
