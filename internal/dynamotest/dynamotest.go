// Package dynamotest runs the DynamoDB tests against independent
// implementations of DynamoDB on 127.0.0.1, never a fake of our own:
// moto (Python, `python3 -m moto.server`) and dynalite (Node.js, installed
// by `npm ci --prefix .ci`). Each test binary starts them once, on free
// ports, the first time a test asks; Stop (from TestMain) ends them, and
// on Linux they also die with the test binary. A server that cannot start
// fails the test with what to install: the DynamoDB tests never skip.
package dynamotest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/computebot/computebot/aws/dynamostore"
)

// Server is one running DynamoDB implementation.
type Server struct {
	Name     string // "moto" or "dynalite"
	Endpoint string // http://127.0.0.1:PORT
	// TTL reports whether the server has UpdateTimeToLive (dynalite has
	// not).
	TTL bool
}

type running struct {
	srv Server
	cmd *exec.Cmd
	err error
}

var (
	mu      sync.Mutex
	servers = map[string]*running{}
	tables  atomic.Int64
)

// Moto returns the moto server, starting it the first time.
func Moto(t testing.TB) Server { t.Helper(); return start(t, "moto") }

// Dynalite returns the dynalite server, starting it the first time.
func Dynalite(t testing.TB) Server { t.Helper(); return start(t, "dynalite") }

// All returns both servers: what a suite that must hold on DynamoDB runs
// on.
func All(t testing.TB) []Server {
	t.Helper()
	return []Server{Moto(t), Dynalite(t)}
}

func start(t testing.TB, name string) Server {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	r, ok := servers[name]
	if !ok {
		r = launch(name)
		servers[name] = r
	}
	if r.err != nil {
		t.Fatalf("dynamotest: %s: %v", name, r.err)
	}
	return r.srv
}

func launch(name string) *running {
	port, err := freePort()
	if err != nil {
		return &running{err: err}
	}
	var cmd *exec.Cmd
	srv := Server{Name: name, Endpoint: "http://127.0.0.1:" + strconv.Itoa(port)}
	switch name {
	case "moto":
		srv.TTL = true
		python := os.Getenv("COMPUTEBOT_PYTHON")
		if python == "" {
			python = "python3"
		}
		cmd = exec.Command(python, "-m", "moto.server", "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	case "dynalite":
		bin, err := dynaliteBin()
		if err != nil {
			return &running{err: err}
		}
		cmd = exec.Command(bin, "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--createTableMs", "0")
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &limited{b: &out}, &limited{b: &out}
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		hint := ""
		if name == "moto" {
			hint = " (moto ships with the machine image's Python 3.11; set COMPUTEBOT_PYTHON to another interpreter that has moto[server])"
		}
		return &running{err: fmt.Errorf("start %s: %w%s", name, err, hint)}
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if up(srv.Endpoint) {
			return &running{srv: srv, cmd: cmd}
		}
		select {
		case err := <-exited:
			return &running{err: fmt.Errorf("%s exited before it answered (%v): %s", name, err, out.String())}
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			return &running{err: fmt.Errorf("%s did not answer on %s within 30s: %s", name, srv.Endpoint, out.String())}
		}
	}
}

// dynaliteBin finds dynalite: COMPUTEBOT_DYNALITE, else .ci/node_modules
// of the module this runs in.
func dynaliteBin() (string, error) {
	if p := os.Getenv("COMPUTEBOT_DYNALITE"); p != "" {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			bin := filepath.Join(dir, ".ci", "node_modules", ".bin", "dynalite")
			if _, err := os.Stat(bin); err != nil {
				return "", fmt.Errorf("dynalite is not installed: run `npm ci --prefix .ci` in %s (Node.js and npm; .ci/run does it), or set COMPUTEBOT_DYNALITE to its binary", dir)
			}
			return bin, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("dynalite: no go.mod above the working directory")
		}
		dir = parent
	}
}

// up reports whether something answers HTTP on endpoint.
func up(endpoint string) bool {
	c := http.Client{Timeout: 500 * time.Millisecond}
	resp, err := c.Get(endpoint)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return true
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Stop ends the servers this test binary started. Call it from TestMain
// after m.Run.
func Stop() {
	mu.Lock()
	defer mu.Unlock()
	for name, r := range servers {
		if r.cmd != nil && r.cmd.Process != nil {
			_ = r.cmd.Process.Kill()
		}
		delete(servers, name)
	}
}

// Client returns an SDK client for srv, with static credentials (the
// servers check none, but the SDK signs every request).
func Client(srv Server) *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		BaseEndpoint: awssdk.String(srv.Endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
}

// NewTable creates a table of its own for one test, as `computebot store
// init` would (TTL too where the server has it), and returns its name.
func NewTable(t testing.TB, srv Server) string {
	t.Helper()
	name := fmt.Sprintf("computebot-test-%d-%d", os.Getpid(), tables.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := dynamostore.Init(ctx, ttlOptional{Client(srv), srv.TTL}, name, 20*time.Second)
	if err != nil {
		t.Fatalf("dynamotest: create table %s on %s: %v", name, srv.Name, err)
	}
	return name
}

// ttlOptional skips UpdateTimeToLive on a server without it (dynalite).
type ttlOptional struct {
	*dynamodb.Client
	ttl bool
}

func (c ttlOptional) UpdateTimeToLive(ctx context.Context, in *dynamodb.UpdateTimeToLiveInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error) {
	if !c.ttl {
		return &dynamodb.UpdateTimeToLiveOutput{}, nil
	}
	return c.Client.UpdateTimeToLive(ctx, in, opts...)
}

// limited keeps the first 8 KiB a server prints, for the failure message.
type limited struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (l *limited) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := 8<<10 - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// NewWrongTable creates a table that is not what the bot expects (keyed
// by "id" alone, no TTL), for the check's failure.
func NewWrongTable(t testing.TB, srv Server, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := Client(srv).CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            &name,
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: awssdk.String("id"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: awssdk.String("id"), KeyType: types.KeyTypeHash}},
	})
	if err != nil {
		t.Fatalf("dynamotest: create table %s: %v", name, err)
	}
}
