package config

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
)

// MaxProcessIDLen is the length of the process ids the node makes: "proc_"
// and 16 random characters. The socket path check assumes no id is longer;
// if node changes its ids, change this.
const MaxProcessIDLen = 21

// maxSocketPathLen is the longest unix socket path the OS takes: sun_path
// less its terminating NUL (107 bytes on Linux, 103 on macOS and the BSDs).
var maxSocketPathLen = len(syscall.RawSockaddrUnix{}.Path) - 1

// checkSocketDir refuses a socket directory (absolute) whose
// <dir>/<processId>.sock paths would be too long to bind.
func checkSocketDir(dir string) error {
	longest := filepath.Join(dir, strings.Repeat("x", MaxProcessIDLen)+".sock")
	if len(longest) > maxSocketPathLen {
		return fmt.Errorf("socket paths %q would be %d bytes long, over the %d bytes unix sockets allow: choose a shorter node.socket_dir",
			filepath.Join(dir, "<processId>.sock"), len(longest), maxSocketPathLen)
	}
	return nil
}
