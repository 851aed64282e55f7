// Package version says which build of the manager is running, for
// `manager version` and the operator's start-up log line: a person reading
// a log or filing a bug must be able to tell which code wrote it.
//
// `make build` and the Dockerfile set the values with the linker:
//
//	go build -ldflags "-X github.com/aws-auth-guardian/aws-auth-guardian/internal/version.version=v1.2.3 \
//	  -X github.com/aws-auth-guardian/aws-auth-guardian/internal/version.commit=<sha> \
//	  -X github.com/aws-auth-guardian/aws-auth-guardian/internal/version.date=<RFC 3339>"
//
// A binary built without them (go run, go build, go install) falls back to
// what the Go toolchain stamps into it (runtime/debug.ReadBuildInfo).
package version

import (
	"runtime"
	"runtime/debug"
)

// Set with -ldflags -X; empty unless the build set them.
var (
	version string // git describe --tags --always --dirty
	commit  string // the full commit hash
	date    string // when the binary was built, RFC 3339 in UTC
)

// unknown stands for a value neither the linker nor the toolchain gave.
const unknown = "unknown"

// Info is the build of the running binary.
type Info struct {
	Version   string // a tag, a git describe, a module pseudo-version, or "unknown"
	Commit    string // the commit hash, "-dirty" when built from a modified tree, or "unknown"
	BuildDate string // RFC 3339, or "unknown"
	GoVersion string // the Go toolchain that built it
	Platform  string // GOOS/GOARCH
}

// Get returns the build of the running binary.
func Get() Info {
	info := Info{
		Version:   version,
		Commit:    commit,
		BuildDate: date,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		fillFromBuildInfo(&info, bi)
	}
	for _, field := range []*string{&info.Version, &info.Commit, &info.BuildDate} {
		if *field == "" {
			*field = unknown
		}
	}
	return info
}

// fillFromBuildInfo fills what the linker did not set from what the Go
// toolchain records: the module version (a tag or, since Go 1.24, a
// pseudo-version from the VCS) and the VCS revision. It has no build date.
func fillFromBuildInfo(info *Info, bi *debug.BuildInfo) {
	if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		info.Version = bi.Main.Version
	}
	if info.Commit != "" {
		return
	}
	var revision, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if revision != "" && modified == "true" {
		revision += "-dirty" // as git describe --dirty says it
	}
	info.Commit = revision
}
