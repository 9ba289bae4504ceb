package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/computebot/computebot"
	bolt "go.etcd.io/bbolt"
)

// Schema-1 records as computebot wrote them: flat, the kind stored ("" for
// a launch, omitted), states "launching" and "ready".
const (
	v1Launch = `{"id":"R-launch","requester":"U0ANA","channel_id":"C0DATASCI",` +
		`"response_url":"https://hooks.slack.com/commands/T000/1/abc","message_ts":"1700000000.000100",` +
		`"instance_type":"t3.large","image_ref":"resolve:ssm:/aws/service/al2023","image_id":"ami-0123",` +
		`"image_name":"al2023-ami-2023.1","image_root":"/dev/xvda","name":"features","reason":"feature engineering",` +
		`"lease_ns":14400000000000,"vcpus":2,"memory_mib":8192,"price_per_hour":0.0832,"price_known":true,` +
		`"state":"launching","auto_approved":true,"decided_by":"U0BO","decided_at":"2025-01-02T03:04:05.123456789Z",` +
		`"created_at":"2025-01-02T03:00:00Z","approval_expires_at":"2025-01-02T04:00:00Z","updated_at":"2025-01-02T03:04:06Z",` +
		`"instance_id":"i-0abc","public_ip":"54.1.2.3","private_ip":"10.0.0.7"}`
	v1Lambda = `{"id":"R-lambda","kind":"lambda","requester":"U0ANA","channel_id":"C0DATASCI",` +
		`"state":"ready","decided_by":"U0BO","created_at":"2025-01-03T00:00:00Z","updated_at":"2025-01-03T00:01:00Z",` +
		`"function":"reindex","payload":"{\"full\":true}","async":true}`
	v1Failed = `{"id":"R-failed","state":"failed","failure":"no capacity","created_at":"2025-01-01T00:00:00Z"}`
	v1Audit  = `{"time":"2025-01-02T03:04:05Z","actor":"U0BO","action":"approve","request_id":"R-launch","result":"ok"}`
	v1Notice = `{"instance_id":"i-0abc","episode":3}`
)

// writeSchema1 builds a schema-1 file by hand, with raw bbolt.
func writeSchema1(t *testing.T, path string, requests map[string]string) {
	t.Helper()
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		buckets := map[string]*bolt.Bucket{}
		for _, name := range []string{"meta", "requests", "audit", "kv"} {
			bk, err := tx.CreateBucket([]byte(name))
			if err != nil {
				return err
			}
			buckets[name] = bk
		}
		if err := buckets["meta"].Put([]byte("schema_version"), []byte("1")); err != nil {
			return err
		}
		for id, rec := range requests {
			if err := buckets["requests"].Put([]byte(id), []byte(rec)); err != nil {
				return err
			}
		}
		if err := buckets["audit"].SetSequence(1); err != nil {
			return err
		}
		if err := buckets["audit"].Put(binary.BigEndian.AppendUint64(nil, 1), []byte(v1Audit)); err != nil {
			return err
		}
		notices, err := buckets["kv"].CreateBucket([]byte("idle-notices"))
		if err != nil {
			return err
		}
		return notices.Put([]byte("i-0abc"), []byte(v1Notice))
	})
	if cerr := b.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

// snapshot returns every key and value of the file, bucket path first.
func snapshot(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	out := map[string]string{}
	var walk func(prefix string, bk *bolt.Bucket) error
	walk = func(prefix string, bk *bolt.Bucket) error {
		return bk.ForEach(func(k, v []byte) error {
			if v == nil {
				return walk(prefix+string(k)+"/", bk.Bucket(k))
			}
			out[prefix+string(k)] = string(v)
			return nil
		})
	}
	err = b.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, bk *bolt.Bucket) error {
			return walk(string(name)+"/", bk)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMigrateSchema1(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "computebot.db")
	writeSchema1(t, path, map[string]string{"R-launch": v1Launch, "R-lambda": v1Lambda, "R-failed": v1Failed})
	before := snapshot(t, path)

	db, err := Open(path, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ts := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	wantLaunch := &computebot.Request{
		ID: "R-launch", Requester: "U0ANA", ChannelID: "C0DATASCI",
		ResponseURL: "https://hooks.slack.com/commands/T000/1/abc", MessageTS: "1700000000.000100",
		State: computebot.RequestExecuting, Version: 1,
		AutoApproved: true, DecidedBy: "U0BO", DecidedAt: ts("2025-01-02T03:04:05.123456789Z"),
		CreatedAt: ts("2025-01-02T03:00:00Z"), ApprovalExpiresAt: ts("2025-01-02T04:00:00Z"), UpdatedAt: ts("2025-01-02T03:04:06Z"),
		Launch: &computebot.LaunchRequest{
			InstanceType: "t3.large", ImageRef: "resolve:ssm:/aws/service/al2023", ImageID: "ami-0123",
			ImageName: "al2023-ami-2023.1", ImageRoot: "/dev/xvda", Name: "features", Reason: "feature engineering",
			Lease: 4 * time.Hour, VCPUs: 2, MemoryMiB: 8192, PricePerHour: 0.0832, PriceKnown: true,
			InstanceID: "i-0abc", PublicIP: "54.1.2.3", PrivateIP: "10.0.0.7",
		},
	}
	wantLambda := &computebot.Request{
		ID: "R-lambda", Requester: "U0ANA", ChannelID: "C0DATASCI",
		State: computebot.RequestDone, Version: 1, DecidedBy: "U0BO",
		CreatedAt: ts("2025-01-03T00:00:00Z"), UpdatedAt: ts("2025-01-03T00:01:00Z"),
		Lambda: &computebot.LambdaRequest{Function: "reindex", Payload: `{"full":true}`, Async: true},
	}
	wantFailed := &computebot.Request{
		ID: "R-failed", State: computebot.RequestFailed, Version: 1, Failure: "no capacity",
		CreatedAt: ts("2025-01-01T00:00:00Z"), Launch: &computebot.LaunchRequest{},
	}
	check := func(db *DB) {
		t.Helper()
		for _, want := range []*computebot.Request{wantLaunch, wantLambda, wantFailed} {
			got, err := db.Request(ctx, want.ID)
			if err != nil {
				t.Fatal(err)
			}
			sameRequest(t, want, got)
		}
		if got, _ := db.Request(ctx, "R-lambda"); got.Kind() != computebot.KindLambda {
			t.Errorf("migrated Lambda request has kind %q", got.Kind())
		}
		list, err := db.Requests(ctx, computebot.RequestExecuting)
		if err != nil || len(list) != 1 || list[0].ID != "R-launch" {
			t.Errorf("Requests(executing) after migration: %v, %v", list, err)
		}
		log, err := db.AuditLog(ctx)
		if err != nil || len(log) != 1 || log[0].Action != "approve" || log[0].RequestID != "R-launch" {
			t.Errorf("audit log after migration: %+v, %v", log, err)
		}
		var n struct {
			Episode int `json:"episode"`
		}
		if err := db.Get(ctx, "idle-notices", "i-0abc", &n); err != nil || n.Episode != 3 {
			t.Errorf("kv after migration: %+v, %v", n, err)
		}
	}
	check(db)
	// A migrated request goes on as any other: its version is compared.
	if r, err := db.UpdateRequest(ctx, "R-launch", func(r *computebot.Request) error {
		r.State = computebot.RequestLaunched
		return nil
	}); err != nil || r.Version != 2 {
		t.Fatalf("update of a migrated request: %v, %+v", err, r)
	}
	back, err := db.UpdateRequest(ctx, "R-launch", func(r *computebot.Request) error {
		r.State = computebot.RequestExecuting
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantLaunch.Version, wantLaunch.UpdatedAt = 3, back.UpdatedAt
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	after := snapshot(t, path)
	if got := after["meta/schema_version"]; got != "2" {
		t.Fatalf("schema version %q after migration, want 2", got)
	}
	for k, v := range before {
		if strings.HasPrefix(k, "audit/") || strings.HasPrefix(k, "kv/") {
			if after[k] != v {
				t.Errorf("%s changed by the migration: %q, was %q", k, after[k], v)
			}
		}
	}
	// The new records have the new shape: nested payload, version, no
	// flat fields, no kind.
	var rec map[string]any
	if err := json.Unmarshal([]byte(after["requests/R-lambda"]), &rec); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"kind", "function", "payload", "async"} {
		if _, ok := rec[gone]; ok {
			t.Errorf("migrated record still has %q: %s", gone, after["requests/R-lambda"])
		}
	}
	if l, ok := rec["lambda"].(map[string]any); !ok || l["function"] != "reindex" || rec["version"] != 1.0 || rec["state"] != "done" {
		t.Errorf("migrated Lambda record: %s", after["requests/R-lambda"])
	}
	if _, ok := rec["launch"]; ok {
		t.Errorf("migrated Lambda record has a launch payload: %s", after["requests/R-lambda"])
	}

	// Reopening is a no-op: nothing is rewritten.
	db = openAt(t, path)
	check(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if again := snapshot(t, path); !maps.Equal(again, after) {
		t.Fatalf("reopening changed the file:\n was %v\n now %v", after, again)
	}
}

// A schema-1 record of a kind this version does not know fails Open
// rather than be guessed at, and leaves the file as it was.
func TestMigrateSchema1UnknownKind(t *testing.T) {
	path := filepath.Join(t.TempDir(), "computebot.db")
	writeSchema1(t, path, map[string]string{"R-1": v1Launch, "R-odd": `{"id":"R-odd","kind":"batch","state":"new"}`})
	before := snapshot(t, path)
	_, err := Open(path, Options{Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), `unknown request kind "batch"`) || !strings.Contains(err.Error(), "R-odd") {
		t.Fatalf("Open: %v, want an unknown-kind error naming R-odd", err)
	}
	if after := snapshot(t, path); !maps.Equal(before, after) {
		t.Fatal("a failed migration changed the file")
	}
	if errors.Is(err, ErrNewerSchema) {
		t.Fatal("unknown kind reported as a newer schema")
	}
}

// The new record's JSON does not depend on Go field names: a fixed record
// decodes as expected (a rename in Go that forgot the tag would break it).
func TestRequestRecordJSONNames(t *testing.T) {
	raw := `{"id":"R-1","state":"executing","version":7,"created_at":"2025-01-01T00:00:00Z",` +
		`"launch":{"instance_type":"t3.micro","lease_ns":3600000000000,"instance_id":"i-1"}}`
	r, err := decodeRequest([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != "R-1" || r.State != computebot.RequestExecuting || r.Version != 7 || r.Lambda != nil ||
		r.Launch == nil || r.Launch.InstanceType != "t3.micro" || r.Launch.Lease != time.Hour || r.Launch.InstanceID != "i-1" {
		t.Fatalf("decoded %s", dump(r))
	}
	enc, err := json.Marshal(toRequestRecord(r))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, []byte(raw)) {
		t.Fatalf("re-encoded\n %s\nwant\n %s", enc, raw)
	}
}

// A journal left by a computebot before schema 2: empty, it is removed;
// not empty (requests acked but not committed when that bot died), Open
// refuses before migrating, so that the previous version can still be
// started to replay it.
func TestOldJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "computebot.db")
	writeSchema1(t, path, map[string]string{"R-launch": v1Launch})
	if err := os.WriteFile(path+".journal", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".journal.1", []byte("0badc0de {\"op\":\"create_request\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, path)
	_, err := Open(path, Options{Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), path+".journal.1 holds requests") {
		t.Fatalf("Open with a non-empty old journal: %v", err)
	}
	if after := snapshot(t, path); !maps.Equal(before, after) {
		t.Fatal("Open migrated the file despite the old journal")
	}

	if err := os.Truncate(path+".journal.1", 0); err != nil {
		t.Fatal(err)
	}
	db := openAt(t, path)
	if _, err := db.Request(t.Context(), "R-launch"); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{".journal", ".journal.1"} {
		if _, err := os.Stat(path + suffix); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("empty old journal %s not removed: %v", suffix, err)
		}
	}
}
