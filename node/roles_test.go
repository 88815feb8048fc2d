package node_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

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
	case roleSquat:
		n, _ := strconv.Atoi(os.Getenv(envConns))
		path, port := os.Getenv("DONKEYLABS_SOCKET_PATH"), os.Getenv("DONKEYLABS_TCP_PORT")
		closed := make(chan struct{}, n)
		for range n {
			var c net.Conn
			var err error
			if path != "" {
				c, err = net.Dial("unix", path)
			} else {
				c, err = net.Dial("tcp", "127.0.0.1:"+port)
			}
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
