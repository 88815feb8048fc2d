package node_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/corral-run/corral/internal/testchild"
)

// Roles of the test binary as a child that only this package's tests
// need; TestMain plays them before testchild's.
const (
	// rolePrint writes envLines numbered lines of about 100 bytes to
	// stdout through a 4 KiB buffer (so writes end mid-line), a last line
	// to stderr, and exits 0.
	rolePrint = "node-print"
	// roleSquat opens envConns connections to its socket that never say
	// anything, then plays testchild's proxy role while holding them (its
	// connection comes after theirs). When
	// the node has closed every one of them, it writes "closed" to
	// testchild.EnvReadyFile.
	roleSquat = "node-squat"

	// roleConns opens envConns connections to its socket, one after the
	// other, each copied both ways to a connection of its own to the
	// test's control socket (as testchild's proxy does with one): the next
	// is opened once the node has answered something on the last, or
	// closed it.
	roleConns = "node-conns"

	// roleTicker writes "tick <n>" to stdout every 5 ms, n counting from
	// 0, until SIGTERM, then exits 0.
	roleTicker = "node-ticker"

	envLines = "CORRAL_TEST_LINES"
	envConns = "CORRAL_TEST_CONNS"
)

// printedLine is line i of rolePrint.
func printedLine(i int) string {
	return fmt.Sprintf("line %06d %s", i, strings.Repeat("x", 88))
}

// playNodeRole plays a role of this package's, if the environment asks
// for one, and exits.
func playNodeRole() {
	switch os.Getenv(testchild.EnvRole) {
	case rolePrint:
		n, _ := strconv.Atoi(os.Getenv(envLines))
		w := bufio.NewWriterSize(os.Stdout, 4096)
		for i := range n {
			fmt.Fprintln(w, printedLine(i))
		}
		_ = w.Flush()
		fmt.Fprintln(os.Stderr, "done, on stderr")
		os.Exit(0)
	case roleTicker:
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		tick := time.NewTicker(5 * time.Millisecond)
		for i := 0; ; i++ {
			select {
			case <-sigs:
				os.Exit(0)
			case <-tick.C:
				fmt.Printf("tick %06d\n", i)
			}
		}
	case roleConns:
		n, _ := strconv.Atoi(os.Getenv(envConns))
		for range n {
			nc, err := dialNode()
			if err != nil {
				fmt.Fprintln(os.Stderr, "conns:", err)
				os.Exit(1)
			}
			ctrl, err := net.Dial("unix", os.Getenv(testchild.EnvCtrl))
			if err != nil {
				fmt.Fprintln(os.Stderr, "conns:", err)
				os.Exit(1)
			}
			fmt.Fprintf(ctrl, "%s\t%s\t%s\t\n", os.Getenv("DONKEYLABS_PROCESS_ID"), os.Getenv("DONKEYLABS_METADATA"), os.Getenv("DONKEYLABS_SOCKET_PATH"))
			answered := make(chan struct{})
			go func() { _, _ = io.Copy(nc, ctrl) }()
			go func() {
				defer ctrl.Close()
				defer close(answered)
				var b [4096]byte
				for first := true; ; first = false {
					k, err := nc.Read(b[:])
					if k > 0 {
						if _, werr := ctrl.Write(b[:k]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
					if first {
						answered <- struct{}{}
					}
				}
			}()
			<-answered
		}
		select {}
	case roleSquat:
		n, _ := strconv.Atoi(os.Getenv(envConns))
		closed := make(chan struct{}, n)
		for range n {
			c, err := dialNode()
			if err != nil {
				fmt.Fprintln(os.Stderr, "squat:", err)
				os.Exit(1)
			}
			go func() {
				var b [64]byte
				for {
					if _, err := c.Read(b[:]); err != nil {
						closed <- struct{}{}
						return
					}
				}
			}()
		}
		go func() {
			for range n {
				<-closed
			}
			_ = os.WriteFile(os.Getenv(testchild.EnvReadyFile), []byte("closed"), 0o600)
		}()
		os.Setenv(testchild.EnvRole, testchild.RoleProxy)
		testchild.Main()
		os.Exit(0)
	}
}

// dialNode connects to the node as the environment says.
func dialNode() (net.Conn, error) {
	if path := os.Getenv("DONKEYLABS_SOCKET_PATH"); path != "" {
		return net.Dial("unix", path)
	}
	return net.Dial("tcp", "127.0.0.1:"+os.Getenv("DONKEYLABS_TCP_PORT"))
}
