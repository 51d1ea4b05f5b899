package memstore_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/triggerkit/trigger"
	"github.com/triggerkit/trigger/store/memstore"
	"github.com/triggerkit/trigger/store/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestConformance runs the suite, and checks each store's structures once
// its test is done.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) trigger.Store {
		s := memstore.New()
		t.Cleanup(func() {
			if err := memstore.Check(s); err != nil {
				t.Error(err)
			}
		})
		return s
	})
}
