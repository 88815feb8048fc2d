package gateway

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// sseWriter writes server-sent events (the text/event-stream format of
// the HTML standard) to a response: events and comments are gathered,
// then flushed together.
type sseWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	buf bytes.Buffer
}

// Limits of a stream.
const (
	// streamWriteTimeout drops a client that takes longer than this to
	// take a flush.
	streamWriteTimeout = 30 * time.Second
	// keepAlive is how often an idle stream says something, so that
	// proxies and the client know it is alive.
	keepAlive = 15 * time.Second
	// reconnectMs is the retry the client is told: how long EventSource
	// waits before it reconnects.
	reconnectMs = 1000
)

// startSSE answers 200 with the headers of an event stream, and lets the
// stream outlive the server's read timeout.
func startSSE(w http.ResponseWriter) *sseWriter {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	s := &sseWriter{w: w, rc: rc}
	s.buf.WriteString("retry: " + strconv.Itoa(reconnectMs) + "\n\n")
	return s
}

// event adds an event: its id (none when 0), its name (none when empty)
// and its data, one data line per line of it.
func (s *sseWriter) event(id uint64, name string, data []byte) {
	if id > 0 {
		s.buf.WriteString("id: ")
		s.buf.WriteString(strconv.FormatUint(id, 10))
		s.buf.WriteByte('\n')
	}
	if name != "" {
		s.buf.WriteString("event: ")
		s.buf.WriteString(oneLine(name))
		s.buf.WriteByte('\n')
	}
	for {
		line, rest, more := cutLine(data)
		s.buf.WriteString("data: ")
		s.buf.Write(line)
		s.buf.WriteByte('\n')
		if !more {
			break
		}
		data = rest
	}
	s.buf.WriteByte('\n')
}

// comment adds a comment line, which clients ignore.
func (s *sseWriter) comment(text string) {
	s.buf.WriteString(": ")
	s.buf.WriteString(oneLine(text))
	s.buf.WriteString("\n\n")
}

// pending is the size of what waits to be flushed.
func (s *sseWriter) pending() int { return s.buf.Len() }

// flush sends what was gathered.
func (s *sseWriter) flush() error {
	if s.buf.Len() == 0 {
		return nil
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	_, err := s.w.Write(s.buf.Bytes())
	s.buf.Reset()
	if err != nil {
		return err
	}
	return s.rc.Flush()
}

// cutLine cuts data at its first line end (\n, \r\n or \r).
func cutLine(data []byte) (line, rest []byte, found bool) {
	i := bytes.IndexAny(data, "\r\n")
	if i < 0 {
		return data, nil, false
	}
	if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
		return data[:i], data[i+2:], true
	}
	return data[:i], data[i+1:], true
}

func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}
