package store_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/computebot/computebot/internal/storetest"
	"github.com/computebot/computebot/store"
)

// TestContract runs the store contract (internal/storetest) that the
// DynamoDB store runs too.
func TestContract(t *testing.T) {
	storetest.Run(t, storetest.Bed{
		Open: func(t *testing.T, _ string) storetest.Store {
			db, err := store.Open(filepath.Join(t.TempDir(), "computebot.db"), store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return db
		},
		Expire: func(t *testing.T, s storetest.Store, age time.Duration) {
			// The flow prunes what was done a day before now; age later.
			if _, err := s.PruneIntents(context.Background(), time.Now().Add(age-24*time.Hour)); err != nil {
				t.Fatal(err)
			}
		},
	})
}
