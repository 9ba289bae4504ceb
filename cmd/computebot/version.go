package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3"
// (the Dockerfile passes its VERSION build argument so). Without it the
// module version and VCS revision from the build info are used.
var version string

// versionString is what `computebot version` prints.
func versionString() string {
	info, _ := debug.ReadBuildInfo()
	return versionOf(version, info)
}

// versionOf is the version set at build time (else the module's) with the
// VCS revision, each said once: since Go 1.24 a build in a checkout is
// stamped with a pseudo-version that already ends in the revision
// (v0.0.0-20261201150121-df7c8604fd5b+dirty).
func versionOf(set string, info *debug.BuildInfo) string {
	v, rev, dirty := set, "", false
	if info != nil {
		if v == "" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	// A version given as `git describe` output names the commit by its
	// first 7 digits.
	if rev == "" || strings.Contains(v, rev[:min(7, len(rev))]) {
		return v
	}
	if dirty {
		rev += "-dirty"
	}
	return v + " " + rev
}

func printVersion(w io.Writer) {
	fmt.Fprintf(w, "computebot %s %s %s/%s\n", versionString(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
