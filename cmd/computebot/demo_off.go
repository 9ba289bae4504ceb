//go:build nodemo

package main

import (
	"fmt"
	"io"
)

// runDemo in a production build (go build -tags nodemo, as the Dockerfile
// does): the demo runs the bot against in-process fakes of Slack and AWS,
// which a production binary should not carry.
func runDemo(_ []string, _ io.Reader, stdout io.Writer) int {
	fmt.Fprintln(stdout, "computebot demo: this build has no demo (built with -tags nodemo). From a checkout, run: go run ./cmd/computebot demo")
	return 2
}
