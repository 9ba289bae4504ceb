package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/aws/dynamostore"
	"github.com/computebot/computebot/cluster"
	"github.com/computebot/computebot/config"
	"github.com/computebot/computebot/store"
)

// botStore is what the bot keeps its state in: the requests, intents and
// audit log, and the key/value entries (idle notices, leases). The
// embedded file (*store.DB) or the shared table (*dynamostore.Store).
type botStore interface {
	computebot.Store
	Get(ctx context.Context, bucket, key string, v any) error
	Update(ctx context.Context, bucket, key string, v any, fn func(found bool) error) error
	List(ctx context.Context, bucket string, fn func(key string, raw []byte) error) error
}

// openStore opens the store the config names: store.path, or the table
// of store.dynamodb.table.
func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger, onCall func(string, float64, error)) (botStore, error) {
	if !cfg.Store.Shared() {
		return store.Open(cfg.Store.Path, store.Options{Logger: log})
	}
	s, err := dynamostore.Connect(ctx, cfg.AWS.Region, dynamostore.Options{Table: cfg.Store.DynamoDB.Table, Logger: log, OnCall: onCall})
	if err != nil {
		return nil, fmt.Errorf("store.dynamodb.table %s: %w", cfg.Store.DynamoDB.Table, err)
	}
	return s, nil
}

// storeName says where the state is, for logs.
func storeName(cfg *config.Config) string {
	if cfg.Store.Shared() {
		return "dynamodb:" + cfg.Store.DynamoDB.Table
	}
	return cfg.Store.Path
}

// replicaSet is this replica's place among the others: with the shared
// table, leases on it (*cluster.Cluster); with the embedded file, which
// one process holds alone, a cluster of one (cluster.Solo).
type replicaSet interface {
	Self() string
	Leading() bool
	Gone(ctx context.Context, replica string) bool
	Lease() (token int64, until time.Time, ok bool)
}

// joinCluster makes this replica known (its first heartbeat, before it
// claims anything: a claim without a heartbeat looks gone) and, with the
// shared table, returns the cluster whose Run the caller starts.
func joinCluster(ctx context.Context, cfg *config.Config, db botStore, id string, ttl time.Duration, log *slog.Logger) (replicaSet, *cluster.Cluster, error) {
	if !cfg.Store.Shared() {
		return cluster.Solo{ID: id}, nil, nil
	}
	c, err := cluster.New(db, cluster.Options{Self: id, LeaseTTL: ttl, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	if err := c.Join(ctx); err != nil {
		return nil, nil, err
	}
	return c, c, nil
}
