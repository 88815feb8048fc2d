// Package version says what a Corral program is: Corral's version, the
// commit it was built from, and the Go that built it.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/corral-run/corral/bus"
)

// Info is what a program says of itself.
type Info struct {
	Version string `json:"version"` // Corral's (bus.Version)
	Commit  string `json:"commit"`  // the VCS revision, "-dirty" when built from changed files; "unknown" outside a checkout
	Go      string `json:"go"`
	// NATSServer is the version of the NATS server: the embedded one's
	// (corrald), or the one a client is connected to.
	NATSServer string `json:"natsServer,omitempty"`
}

// Get reads the program's build information.
func Get() Info {
	i := Info{Version: bus.Version, Commit: "unknown", Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return i
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if modified == "true" {
			rev += "-dirty"
		}
		i.Commit = rev
	}
	return i
}

// String is the one line a --version prints.
func (i Info) String(program string) string {
	s := fmt.Sprintf("%s %s (commit %s, %s", program, i.Version, i.Commit, i.Go)
	if i.NATSServer != "" {
		s += ", nats-server " + i.NATSServer
	}
	return s + ")"
}
