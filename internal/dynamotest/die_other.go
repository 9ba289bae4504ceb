//go:build !linux

package dynamotest

import "os/exec"

// dieWithParent: elsewhere, Stop (from TestMain) ends the servers.
func dieWithParent(*exec.Cmd) {}
