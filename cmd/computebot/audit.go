package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/aws/dynamostore"
	"github.com/computebot/computebot/commands"
	"github.com/computebot/computebot/config"
	"github.com/computebot/computebot/store"
)

// auditUsage is `computebot audit --help`.
const auditUsage = `usage: computebot audit --config FILE [--since 7d|all] [--instance i-…] [--user U…] [--json]

Prints the audit log from the bot's store (store.path in the config): every
launch, approval, denial, stop, start, termination, extension, invocation
and idle stop, oldest first, as a table with times in UTC, or with --json as
JSON Lines, one object per entry with the fields time, actor, action,
request_id, target, result and detail.

The store is one file that one process at a time may open, so this works
while the bot is stopped. While it runs, read the bot's log lines with
audit=true from your log system (the same entries), or ask in Slack:
/computebot audit.
`

// auditLockTimeout is how long audit waits for the store's lock: a bot that
// is shutting down lets go within a second or two; a running bot never does.
const auditLockTimeout = 2 * time.Second

// auditRecord is one entry in --json output. The names are part of the
// interface (scripts read them): change them never, add fields at most.
type auditRecord struct {
	Time      string `json:"time"` // RFC 3339 in UTC, with nanoseconds
	Actor     string `json:"actor"`
	Action    string `json:"action"`
	RequestID string `json:"request_id"`
	Target    string `json:"target"`
	Result    string `json:"result"`
	Detail    string `json:"detail"`
}

func runAudit(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	set := flag.NewFlagSet("computebot audit", flag.ContinueOnError)
	set.SetOutput(stderr)
	path := set.String("config", getenv("COMPUTEBOT_CONFIG"), "config file (YAML); env COMPUTEBOT_CONFIG")
	sinceFlag := set.String("since", "7d", `how far back: a duration such as 36h, 7d or 1d12h, or "all"`)
	instance := set.String("instance", "", "only the entries about this instance (i-…), its request's approval included")
	user := set.String("user", "", "only the entries this Slack user acted in (U…)")
	asJSON := set.Bool("json", false, "JSON Lines instead of a table")
	set.Usage = func() {
		fmt.Fprint(set.Output(), auditUsage+"\n")
		set.PrintDefaults()
	}
	if code, done := parseFlags(set, args, stdout); done {
		return code
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "computebot audit: "+format+" (see --help)\n", a...)
		return 2
	}
	if set.NArg() > 0 {
		return usage("unexpected argument %q", set.Arg(0))
	}
	if *path == "" {
		return usage("no config: pass --config FILE or set COMPUTEBOT_CONFIG")
	}
	var since time.Time // zero: all
	if s := strings.TrimSpace(*sinceFlag); s != "all" {
		d, err := config.ParseDuration(s)
		if err != nil || d <= 0 {
			return usage("--since %q: give a duration such as 36h, 7d or 1d12h, or all", *sinceFlag)
		}
		since = time.Now().Add(-d)
	}
	if *instance != "" {
		*instance = strings.ToLower(*instance)
		if !commands.IsInstanceID(*instance) {
			return usage("--instance %q is not an instance ID (i- followed by 8 or 17 hex digits)", *instance)
		}
	}
	if *user != "" && !commands.IsUserID(*user) {
		return usage("--user %q is not a Slack user ID (U… or W…, in the profile under ⋮ → Copy member ID)", *user)
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "computebot audit: "+format+"\n", a...)
		return 1
	}

	cfg, err := config.Load(*path)
	if err != nil {
		return fail("%v", err)
	}
	var db auditLog
	if cfg.Store.Shared() {
		// The shared table is read while the bot runs: nothing to stop.
		s, err := dynamostore.Connect(context.Background(), cfg.AWS.Region, dynamostore.Options{Table: cfg.Store.DynamoDB.Table})
		if err != nil {
			return fail("store.dynamodb.table %s: %v", cfg.Store.DynamoDB.Table, err)
		}
		db = s
	} else {
		var code int
		if db, code = openAuditFile(cfg, *path, stderr, fail); db == nil {
			return code
		}
	}
	defer db.Close()

	ctx := context.Background()
	var entries []computebot.AuditEntry
	if since.IsZero() {
		entries, err = db.AuditLog(ctx)
	} else {
		entries, err = db.AuditSince(ctx, since)
	}
	if err != nil {
		return fail("%v", err)
	}
	kept := computebot.AuditFilter{Instance: *instance, User: *user}.Keep(entries)
	if *asJSON {
		err = writeAuditJSON(stdout, kept)
	} else {
		err = writeAuditTable(stdout, kept, since)
	}
	if err != nil {
		return fail("write: %v", err)
	}
	if err := db.Close(); err != nil {
		return fail("%v", err)
	}
	return 0
}

func writeAuditJSON(w io.Writer, entries []computebot.AuditEntry) error {
	enc := json.NewEncoder(w)
	for _, e := range entries {
		rec := auditRecord{Time: e.Time.UTC().Format(time.RFC3339Nano), Actor: e.Actor, Action: e.Action,
			RequestID: e.RequestID, Target: e.Target, Result: e.Result, Detail: e.Detail}
		if err := enc.Encode(rec); err != nil {
			return err
		}
	}
	return nil
}

func writeAuditTable(w io.Writer, entries []computebot.AuditEntry, since time.Time) error {
	if len(entries) == 0 {
		if since.IsZero() {
			_, err := fmt.Fprintln(w, "The audit log has no entries.")
			return err
		}
		_, err := fmt.Fprintf(w, "The audit log has no entries since %s.\n", since.UTC().Format("2006-01-02 15:04 UTC"))
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME (UTC)\tACTOR\tACTION\tTARGET\tREQUEST\tRESULT\tDETAIL")
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.UTC().Format("2006-01-02 15:04:05"),
			cell(e.Actor), cell(e.Action), cell(e.Target), cell(e.RequestID), cell(e.Result), cell(e.Detail))
	}
	return tw.Flush()
}

// cell is text from the store for one table cell: on one line, without
// control characters (no terminal escapes out of an AWS message), "-"
// when empty.
func cell(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "-"
	}
	return s
}

// auditLog is what the audit command reads: either store.
type auditLog interface {
	AuditLog(ctx context.Context) ([]computebot.AuditEntry, error)
	AuditSince(ctx context.Context, since time.Time) ([]computebot.AuditEntry, error)
	Close() error
}

// openAuditFile opens the embedded store read-only, or says why not (nil
// and the exit code).
func openAuditFile(cfg *config.Config, cfgPath string, stderr io.Writer, fail func(string, ...any) int) (auditLog, int) {
	dbPath := cfg.Store.Path
	// store.Open would create a missing file: a mistyped path would then
	// look like an empty log.
	if _, err := os.Stat(dbPath); errors.Is(err, fs.ErrNotExist) {
		return nil, fail("there is no store at %s (store.path in %s; a relative path is from the bot's working directory)", dbPath, cfgPath)
	}
	// Read-only: the audit command never migrates or writes the bot's
	// store (a store of an older schema is read as it is).
	db, err := store.Open(dbPath, store.Options{Timeout: auditLockTimeout, ReadOnly: true,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if errors.Is(err, store.ErrLocked) {
		return nil, fail("the store %s is in use: the bot is running. Stop it, or read the log lines with audit=true from your log system (or ask in Slack: /computebot audit).", dbPath)
	}
	if err != nil {
		return nil, fail("%v", err)
	}
	return db, 0
}
