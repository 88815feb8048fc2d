// Package testchild turns a test binary into a child process for
// supervisor tests. A test's TestMain calls Main first; when the
// environment asks for a child role, Main plays it and exits.
//
// The roles speak the wire protocol over a raw socket, without the Go
// client library, so they also prove the protocol is language-neutral.
package testchild

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/corral-run/corral/client"
)

// Env selects the role; the other variables tune it.
const (
	EnvRole = "CORRAL_TEST_CHILD"
	// EnvCtrl is a Unix socket the proxy role dials to reach the test.
	EnvCtrl = "CORRAL_TEST_CTRL"
	// EnvExitCode is the code the exit role exits with.
	EnvExitCode = "CORRAL_TEST_EXIT_CODE"
	// EnvPidFile is where the tree role writes its grandchild's pid.
	EnvPidFile = "CORRAL_TEST_PID_FILE"
	// EnvReadyFile, when set, is created by the sleep and stubborn roles
	// once their signal handling is in place.
	EnvReadyFile = "CORRAL_TEST_READY_FILE"
	// EnvSleep is how long the sleep-exit role sleeps (a Go duration).
	EnvSleep = "CORRAL_TEST_SLEEP"
	// EnvAllocMB is how much memory the alloc role allocates and touches.
	EnvAllocMB = "CORRAL_TEST_ALLOC_MB"
	// EnvInnerRole is the role the wrapper role starts as its grandchild.
	EnvInnerRole = "CORRAL_TEST_INNER_ROLE"
	// EnvHeartbeat is the client role's heartbeat interval (a Go duration).
	EnvHeartbeat = "CORRAL_TEST_HEARTBEAT"
)

// Roles.
const (
	// RoleProxy dials the node's socket and the test's control socket and
	// copies bytes both ways, so a test can speak raw lines through a real
	// child. SIGTERM makes it exit 0.
	RoleProxy = "proxy"
	// RoleExit exits at once with EnvExitCode.
	RoleExit = "exit"
	// RoleSleep waits for SIGTERM and exits 0.
	RoleSleep = "sleep"
	// RoleStubborn ignores SIGTERM and sleeps until killed.
	RoleStubborn = "stubborn"
	// RoleTree starts a grandchild (sleep 300) in its group, writes the
	// grandchild's pid to EnvPidFile, then sleeps until signalled.
	RoleTree = "tree"
	// RoleSleepExit sleeps EnvSleep, then exits with EnvExitCode.
	RoleSleepExit = "sleep-exit"
	// RoleAlloc allocates and touches EnvAllocMB megabytes, then sleeps.
	RoleAlloc = "alloc"
	// RoleBusy spins on one core until killed.
	RoleBusy = "busy"
	// RoleClient connects with the Go client library (heartbeats every
	// EnvHeartbeat, reconnecting every 50 ms for up to 10 s), so it rides
	// out a node restart; on SIGTERM it disconnects and exits 0.
	RoleClient = "client"
	// RoleWrapper starts this binary again in EnvInnerRole as its own child
	// (the grandchild of the node), writes the grandchild's pid to
	// EnvPidFile and waits, like a shell script wrapping FFmpeg.
	RoleWrapper = "wrapper"
)

// Main plays the role named by the environment and exits; without one it
// returns and the tests run.
func Main() {
	role := os.Getenv(EnvRole)
	if role == "" {
		return
	}
	os.Exit(run(role))
}

func run(role string) int {
	switch role {
	case RoleExit:
		code, _ := strconv.Atoi(os.Getenv(EnvExitCode))
		return code
	case RoleSleep:
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
		ready()
		<-ch
		return 0
	case RoleStubborn:
		signal.Ignore(syscall.SIGTERM)
		ready()
		time.Sleep(time.Hour)
		return 0
	case RoleTree:
		cmd := exec.Command("sleep", "300")
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := os.WriteFile(os.Getenv(EnvPidFile), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		waitSignal(syscall.SIGTERM)
		return 0
	case RoleProxy:
		return proxy()
	case RoleEmitter:
		return emitter()
	case RoleClient:
		return clientRole()
	case RoleSleepExit:
		d, _ := time.ParseDuration(os.Getenv(EnvSleep))
		time.Sleep(d)
		code, _ := strconv.Atoi(os.Getenv(EnvExitCode))
		return code
	case RoleAlloc:
		mb, _ := strconv.Atoi(os.Getenv(EnvAllocMB))
		buf := make([]byte, mb<<20)
		for i := 0; i < len(buf); i += 4096 {
			buf[i] = 1
		}
		ready()
		time.Sleep(time.Hour)
		return int(buf[0]) - 1
	case RoleBusy:
		ready()
		for x := 0; ; x++ {
			_ = x * x
		}
	case RoleWrapper:
		exe, err := os.Executable()
		if err != nil {
			return 1
		}
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), EnvRole+"="+os.Getenv(EnvInnerRole))
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := os.WriteFile(os.Getenv(EnvPidFile), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600); err != nil {
			return 1
		}
		_ = cmd.Wait()
		return 0
	}
	fmt.Fprintf(os.Stderr, "unknown test child role %q\n", role)
	return 2
}

func ready() {
	if f := os.Getenv(EnvReadyFile); f != "" {
		_ = os.WriteFile(f, []byte("ready"), 0o600)
	}
}

func waitSignal(sigs ...os.Signal) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	<-ch
}

func proxy() int {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM)
	node, ctrl, err := dialNodeAndTest()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(node, bufio.NewReader(ctrl)); done <- struct{}{} }()
	go func() { _, _ = io.Copy(ctrl, node); done <- struct{}{} }()
	select {
	case <-ch:
		return 0
	case <-done:
		return 0
	}
}

// dialNodeAndTest connects to the node's socket (unix or tcp, as the
// environment says) and to the test's control socket, and tells the test
// the child's view of its environment (its first line, see Ctrl.Accept).
func dialNodeAndTest() (node, ctrl net.Conn, err error) {
	if path := os.Getenv("DONKEYLABS_SOCKET_PATH"); path != "" {
		node, err = net.Dial("unix", path)
	} else {
		node, err = net.Dial("tcp", "127.0.0.1:"+os.Getenv("DONKEYLABS_TCP_PORT"))
	}
	if err != nil {
		return nil, nil, fmt.Errorf("cannot dial node: %w", err)
	}
	ctrl, err = net.Dial("unix", os.Getenv(EnvCtrl))
	if err != nil {
		node.Close()
		return nil, nil, fmt.Errorf("cannot dial test: %w", err)
	}
	_, err = fmt.Fprintf(ctrl, "%s\t%s\t%s\t%s\n", os.Getenv("DONKEYLABS_PROCESS_ID"), os.Getenv("DONKEYLABS_METADATA"),
		os.Getenv("DONKEYLABS_SOCKET_PATH")+os.Getenv("DONKEYLABS_TCP_PORT"), os.Getenv("CORRAL_TEST_EXTRA"))
	return node, ctrl, err
}

func clientRole() int {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	hb, err := time.ParseDuration(os.Getenv(EnvHeartbeat))
	if err != nil {
		hb = 100 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, client.WithHeartbeatInterval(hb),
		client.WithReconnectInterval(50*time.Millisecond), client.WithMaxReconnectAttempts(200))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ready()
	select {
	case <-sigs:
		_ = c.Disconnect()
		return 0
	case <-c.Done():
		return 3
	}
}
