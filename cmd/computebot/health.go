package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// healthUsage is `computebot health --help`.
const healthUsage = `usage: computebot health [ADDR]

Asks a running bot's /healthz at ADDR (default: COMPUTEBOT_LISTEN, else
` + DefaultListen + `; ":9090" means 127.0.0.1:9090) and prints healthy or
unhealthy and why; exit 0 when /healthz answers 200, else 1, within 3 s.
For container health checks: the image has no shell, curl or wget.`

// runHealth is `computebot health`: it asks the running bot's /healthz on
// the --listen address (COMPUTEBOT_LISTEN, default 127.0.0.1:9090) and exits
// 0 when it answers 200. It exists for container health checks: the
// distroless image has no shell, curl or wget.
func runHealth(args []string, stdout io.Writer, getenv func(string) string) int {
	if wantsHelp(args) {
		fmt.Fprintln(stdout, healthUsage)
		return 0
	}
	if len(args) > 1 {
		fmt.Fprintf(stdout, "computebot health: unexpected argument %q\n%s\n", args[1], healthUsage)
		return 2
	}
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
