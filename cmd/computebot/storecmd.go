package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/computebot/computebot/aws/dynamostore"
	"github.com/computebot/computebot/config"
	"github.com/computebot/computebot/store"
)

// runStore is `computebot store init` and `computebot store migrate`: the
// shared table's one-off set-up, by an admin (the bot never creates
// tables).
func runStore(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, storeUsage)
		return 2
	}
	switch args[0] {
	case "init":
		return runStoreInit(args[1:], stdout, stderr)
	case "migrate":
		return runStoreMigrate(args[1:], stdout, stderr)
	}
	if wantsHelp(args) {
		fmt.Fprintln(stdout, storeUsage)
		return 0
	}
	fmt.Fprintln(stderr, storeUsage)
	return 2
}

// storeUsage is `computebot store --help`.
const storeUsage = "usage: computebot store init --config FILE\n       computebot store migrate --from computebot.db --to TABLE [--region REGION]"

// storeCommandTimeout bounds a whole init or migrate.
const storeCommandTimeout = 10 * time.Minute

func runStoreInit(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("computebot store init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", os.Getenv("COMPUTEBOT_CONFIG"), "config file naming store.dynamodb.table; env COMPUTEBOT_CONFIG")
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "computebot store init: "+format+"\n", a...)
		return 1
	}
	if *path == "" {
		return fail("no config: pass --config FILE")
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return fail("%v", err)
	}
	if !cfg.Store.Shared() {
		return fail("%s sets no store.dynamodb.table: the embedded store (store.path) needs no set-up", *path)
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeCommandTimeout)
	defer cancel()
	table := cfg.Store.DynamoDB.Table
	res, err := dynamostore.InitTable(ctx, cfg.AWS.Region, table)
	if err != nil {
		return fail("%v", err)
	}
	say := func(done bool, did, was string) {
		if done {
			fmt.Fprintln(stdout, did)
		} else {
			fmt.Fprintln(stdout, was)
		}
	}
	say(res.CreatedTable, "created table "+table+" (PAY_PER_REQUEST, keys pk and sk)", "table "+table+" exists")
	say(res.EnabledTTL, "enabled time to live on "+dynamostore.AttrExpires, "time to live is on ("+dynamostore.AttrExpires+")")
	fmt.Fprintln(stdout, "next: computebot check --config "+*path)
	return 0
}

func runStoreMigrate(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("computebot store migrate", flag.ContinueOnError)
	fl.SetOutput(stderr)
	from := fl.String("from", "", "the embedded store file (store.path), e.g. computebot.db")
	to := fl.String("to", "", "the DynamoDB table (store.dynamodb.table), created by computebot store init")
	region := fl.String("region", "", "AWS region of the table (default: the SDK's, AWS_REGION)")
	if code, done := parseFlags(fl, args, stdout); done {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "computebot store migrate: "+format+"\n", a...)
		return 1
	}
	if *from == "" || *to == "" {
		return fail("pass --from FILE and --to TABLE")
	}
	if _, err := os.Stat(*from); errors.Is(err, fs.ErrNotExist) {
		return fail("there is no store at %s", *from)
	}
	db, err := store.Open(*from, store.Options{Timeout: auditLockTimeout, ReadOnly: true,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if errors.Is(err, store.ErrLocked) {
		return fail("%s is in use: stop the bot first (nothing may change while it is copied)", *from)
	}
	if err != nil {
		return fail("%v", err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), storeCommandTimeout)
	defer cancel()
	dst, err := dynamostore.Connect(ctx, *region, dynamostore.Options{Table: *to})
	if err != nil {
		return fail("table %s: %v", *to, err)
	}
	n, err := migrate(ctx, db, dst)
	if err != nil {
		return fail("%v (run it again: what was copied is not copied twice)", err)
	}
	fmt.Fprintf(stdout, "copied %d requests, %d unfinished intents, %d key/value entries and %d audit entries from %s to %s (%d already there)\n",
		n.requests, n.intents, n.kv, n.audit, *from, *to, n.skipped)
	fmt.Fprintln(stdout, "next: set store.dynamodb.table: "+*to+" (and remove store.path) in the config, then start the bot")
	return 0
}

type migrated struct{ requests, intents, kv, audit, skipped int }

// migrate copies everything the bot keeps from the embedded file to the
// table. Each copy is harmless to repeat.
func migrate(ctx context.Context, from *store.DB, to *dynamostore.Store) (migrated, error) {
	var n migrated
	count := func(copied bool, into *int) {
		if copied {
			*into++
		} else {
			n.skipped++
		}
	}
	reqs, err := from.Requests(ctx)
	if err != nil {
		return n, err
	}
	for _, r := range reqs {
		ok, err := to.ImportRequest(ctx, r)
		if err != nil {
			return n, err
		}
		count(ok, &n.requests)
	}
	ins, err := from.UnfinishedIntents(ctx)
	if err != nil {
		return n, err
	}
	for _, in := range ins {
		ok, err := to.ImportIntent(ctx, in)
		if err != nil {
			return n, err
		}
		count(ok, &n.intents)
	}
	buckets, err := from.Buckets(ctx)
	if err != nil {
		return n, err
	}
	for _, b := range buckets {
		err := from.List(ctx, b, func(key string, raw []byte) error {
			ok, err := to.ImportKV(ctx, b, key, raw)
			count(ok, &n.kv)
			return err
		})
		if err != nil {
			return n, fmt.Errorf("bucket %s: %w", b, err)
		}
	}
	log, err := from.AuditLog(ctx)
	if err != nil {
		return n, err
	}
	for i, e := range log {
		if err := to.ImportAudit(ctx, i, e); err != nil {
			return n, err
		}
		n.audit++
	}
	return n, nil
}
