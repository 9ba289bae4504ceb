package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// runHealth is `computebot health`: it asks the running bot's /healthz on
// the --listen address (COMPUTEBOT_LISTEN, default 127.0.0.1:9090) and exits
// 0 when it answers 200. It exists for container health checks: the
// distroless image has no shell, curl or wget.
func runHealth(args []string, stdout io.Writer, getenv func(string) string) int {
	addr := getenv("COMPUTEBOT_LISTEN")
	if len(args) > 0 {
		addr = args[0]
	}
	if addr == "" {
		addr = DefaultListen
	}
	if strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1" + addr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
	if err != nil {
		fmt.Fprintln(stdout, "unhealthy:", err)
		return 1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(stdout, "unhealthy:", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(stdout, "unhealthy: /healthz answered", resp.Status)
		return 1
	}
	fmt.Fprintln(stdout, "healthy")
	return 0
}
