package dynamostore_test

import (
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/computebot/computebot/aws/dynamostore"
	"github.com/computebot/computebot/internal/dynamotest"
	"github.com/computebot/computebot/internal/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	dynamotest.Stop()
	os.Exit(code)
}

// TestContract runs the store contract on moto and on dynalite, two
// independent DynamoDB implementations, with two stores on one table as
// two replicas.
func TestContract(t *testing.T) {
	for _, srv := range dynamotest.All(t) {
		t.Run(srv.Name, func(t *testing.T) {
			var (
				mu     sync.Mutex
				tables = map[string]string{}
				// skew is how far the stores' clocks are moved on (Expire).
				skew = map[string]*atomic.Int64{}
			)
			storetest.Run(t, storetest.Bed{
				Shared: true,
				Open: func(t *testing.T, shared string) storetest.Store {
					mu.Lock()
					table, ok := tables[shared]
					if !ok || shared == "" {
						table = dynamotest.NewTable(t, srv)
						tables[shared] = table
						skew[table] = new(atomic.Int64)
					}
					off := skew[table]
					mu.Unlock()
					s, err := dynamostore.Open(t.Context(), dynamotest.Client(srv), dynamostore.Options{
						Table: table, Now: func() time.Time { return time.Now().Add(time.Duration(off.Load())) }})
					if err != nil {
						t.Fatal(err)
					}
					return s
				},
				Expire: func(t *testing.T, s storetest.Store, age time.Duration) {
					mu.Lock()
					defer mu.Unlock()
					for _, off := range skew {
						off.Add(int64(age))
					}
				},
			})
		})
	}
}
