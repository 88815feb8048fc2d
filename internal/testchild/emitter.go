package testchild

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// RoleEmitter is a child for benchmarks: it connects to the node's socket
// and to the test's control socket as RoleProxy does, then writes events as the test commands, one command a line:
//
//	flood N EVENT WINDOW  N events as fast as the node takes them; with
//	                      WINDOW > 0 each line has an id and at most
//	                      WINDOW wait for their ack
//	paced N EVENT RATE    N events at RATE a second (RATE/1000 every
//	                      millisecond), each carrying its send time
//
// and answers each with "done" once written (flood with a window: once
// every ack came), or "error: …". Every relayed payload is EmitterPayload
// bytes: {"processId":…,"name":…,"k":"<counter>","t":"<unix ns>","pad":…}.
// SIGTERM, or the control socket closing, ends it.
const RoleEmitter = "emitter"

// EmitterPayload is the size of the payloads the emitter's events become
// on NATS (for a process name of at most 16 bytes).
const EmitterPayload = 128

// EmitterSentAt reads the send time a paced event's payload carries.
func EmitterSentAt(payload []byte) (time.Time, bool) {
	i := bytes.Index(payload, []byte(`"t":"`))
	if i < 0 || len(payload) < i+5+19 {
		return time.Time{}, false
	}
	ns, err := strconv.ParseInt(string(payload[i+5:i+5+19]), 10, 64)
	return time.Unix(0, ns), err == nil
}

func emitter() int {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	go func() { <-sigs; os.Exit(0) }()
	node, ctrl, err := dialNodeAndTest()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	id := os.Getenv("DONKEYLABS_PROCESS_ID")
	e := &emitterConn{node: node, id: id, acks: bufio.NewReaderSize(node, 64<<10)}
	cmds := bufio.NewScanner(ctrl)
	for cmds.Scan() {
		if err := e.run(strings.Fields(cmds.Text())); err != nil {
			fmt.Fprintf(ctrl, "error: %v\n", err)
			continue
		}
		fmt.Fprintln(ctrl, "done")
	}
	return 0
}

type emitterConn struct {
	node net.Conn
	id   string
	acks *bufio.Reader
}

func (e *emitterConn) run(cmd []string) error {
	if len(cmd) != 4 {
		return fmt.Errorf("bad command %q", cmd)
	}
	n, err1 := strconv.Atoi(cmd[1])
	arg, err2 := strconv.Atoi(cmd[3])
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	name := os.Getenv(EnvName)
	switch cmd[0] {
	case "flood":
		return e.flood(newEmitterLine(e.id, name, cmd[2], arg > 0), n, arg)
	case "paced":
		return e.paced(newEmitterLine(e.id, name, cmd[2], false), n, arg)
	}
	return fmt.Errorf("unknown command %q", cmd[0])
}

// EnvName is the process name the emitter's payloads are sized for
// (default "relay").
const EnvName = "CORRAL_TEST_NAME"

func (e *emitterConn) flood(l *emitterLine, n, window int) error {
	w := bufio.NewWriterSize(e.node, 64<<10)
	if window == 0 {
		for k := range n {
			if _, err := w.Write(l.next(k, 0)); err != nil {
				return err
			}
		}
		return w.Flush()
	}
	var acked atomic.Int64
	progress := make(chan struct{}, 1)
	readErr := make(chan error, 1)
	go func() {
		for k := 0; k < n; k++ {
			line, err := e.acks.ReadSlice('\n')
			if err == nil && !bytes.HasPrefix(line, []byte(`{"type":"ack"`)) {
				err = fmt.Errorf("answer %d: %s", k, line)
			}
			if err != nil {
				readErr <- err
				return
			}
			acked.Add(1)
			select {
			case progress <- struct{}{}:
			default:
			}
		}
		readErr <- nil
	}()
	for k := range n {
		for int64(k)-acked.Load() >= int64(window) {
			if err := w.Flush(); err != nil {
				return err
			}
			select {
			case <-progress:
			case err := <-readErr:
				if err == nil {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
		}
		if _, err := w.Write(l.next(k, 0)); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return <-readErr
}

func (e *emitterConn) paced(l *emitterLine, n, rate int) error {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for k := 0; k < n; {
		<-tick.C
		for j := 0; j < max(rate/1000, 1) && k < n; j, k = j+1, k+1 {
			if _, err := e.node.Write(l.next(k, time.Now().UnixNano())); err != nil {
				return err
			}
		}
	}
	return nil
}

// emitterLine is an event line with its counter (8 digits), send time (19
// digits) and id written in place.
type emitterLine struct {
	line       []byte
	k, t, idAt int // where the digits go; idAt -1 without an id
}

func newEmitterLine(processID, name, event string, withID bool) *emitterLine {
	if name == "" {
		name = "relay"
	}
	prefix := fmt.Sprintf(`{"processId":%q,"name":%q`, processID, name)
	members := `,"k":"00000000","t":"0000000000000000000","pad":""}`
	pad := strings.Repeat("x", max(0, EmitterPayload-len(prefix)-len(members)))
	data := `{"k":"00000000","t":"0000000000000000000","pad":"` + pad + `"}`
	line := fmt.Sprintf(`{"type":"event","event":%q,"processId":%q,"timestamp":1738712345801,"data":%s`, event, processID, data)
	l := &emitterLine{k: strings.Index(line, `"k":"`) + 5, t: strings.Index(line, `"t":"`) + 5, idAt: -1}
	if withID {
		line += `,"id":"`
		l.idAt = len(line)
		line += `00000000"`
	}
	l.line = []byte(line + "}\n")
	return l
}

// next returns the line for counter k and send time t; it is valid until
// the next call.
func (l *emitterLine) next(k int, t int64) []byte {
	putDigits(l.line[l.k:l.k+8], uint64(k))
	putDigits(l.line[l.t:l.t+19], uint64(t))
	if l.idAt >= 0 {
		putDigits(l.line[l.idAt:l.idAt+8], uint64(k))
	}
	return l.line
}

func putDigits(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
}
