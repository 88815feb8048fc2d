package node

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/corral-run/corral/api"
)

// maxLogTail bounds how much of a log LogTail reads.
const maxLogTail = 256 << 10

// LogTail returns the last lines lines (default 100) of a process's
// captured stdout and stderr, reading at most the last 256 KiB.
func (s *Supervisor) LogTail(id string, lines int) (string, error) {
	p := s.lookup(id)
	if p == nil {
		return "", api.Errorf(ErrNotFound, "cannot read logs of %q: no such process", id)
	}
	if p.logPath == "" {
		return "", api.Errorf(ErrNotFound, "cannot read logs of %q: this node does not capture output", id)
	}
	if lines <= 0 {
		lines = 100
	}
	f, err := os.Open(p.logPath)
	if err != nil {
		return "", fmt.Errorf("cannot read logs of %q: %w", id, err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return "", fmt.Errorf("cannot read logs of %q: %w", id, err)
	}
	start := max(size-maxLogTail, 0)
	buf := make([]byte, size-start)
	if _, err := f.ReadAt(buf, start); err != nil && err != io.EOF {
		return "", fmt.Errorf("cannot read logs of %q: %w", id, err)
	}
	buf = bytes.TrimRight(buf, "\n")
	for i, n := len(buf)-1, 0; i >= 0; i-- {
		if buf[i] == '\n' {
			if n++; n == lines {
				return string(buf[i+1:]) + "\n", nil
			}
		}
	}
	if len(buf) == 0 {
		return "", nil
	}
	return string(buf) + "\n", nil
}
