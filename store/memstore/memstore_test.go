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

func TestConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) trigger.Store { return memstore.New() })
}
