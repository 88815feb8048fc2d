package e2e_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// failedStart runs corrald on cfg and returns what it printed, failing
// the test unless it exits non-zero within 2 s, saying what is wrong in
// one line and without a panic or a stack trace.
func failedStart(t testing.TB, cfg string, want ...string) string {
	t.Helper()
	cfgPath := filepath.Join(t.TempDir(), "corral.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin("corrald"), "--config", cfgPath)
	cmd.Dir = workDir
	cmd.Env = programEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("corrald still running after 10s:\n%s", out.String())
	}
	took := time.Since(start)
	text := out.String()
	lines := strings.Split(strings.TrimSpace(text), "\n")
	last := lines[len(lines)-1]
	switch {
	case cmd.ProcessState.ExitCode() == 0:
		t.Errorf("corrald exited 0:\n%s", text)
	case took > 2*time.Second:
		t.Errorf("corrald took %v to give up, want at most 2s:\n%s", took, text)
	case strings.Contains(text, "panic:") || strings.Contains(text, "goroutine "):
		t.Errorf("corrald panicked:\n%s", text)
	case !strings.HasPrefix(last, "corrald: "):
		t.Errorf("the last line does not say what is wrong: %q\n%s", last, text)
	}
	for _, w := range want {
		if !strings.Contains(last, w) {
			t.Errorf("the error line does not say %q: %s", w, last)
		}
	}
	return last
}

// nodeTOML is a minimal node: id, data_dir, client listener, no JetStream.
func nodeTOML(dataDir, listen, extra string) string {
	return fmt.Sprintf("[node]\nid = \"s\"\ndata_dir = %q\n[nats]\nlisten = %q\njetstream = false\n%s", dataDir, listen, extra)
}

func TestStartFailsClearlyWhenThePortIsTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()
	failedStart(t, nodeTOML(t.TempDir(), addr, ""), "cannot listen for clients on "+addr, "nats.listen", "address already in use")
}

func TestStartFailsClearlyWhenDataDirIsUnusable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	failedStart(t, nodeTOML(file, "127.0.0.1:0", ""), "cannot use data_dir "+file, "not a directory")
}

// A data_dir on a file system with no space left: a tmpfs the test mounts
// and fills (the tests run as root).
func TestStartFailsClearlyWhenTheDiskIsFull(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatalf("cannot mount a small tmpfs (the tests run as root): %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	dataDir := filepath.Join(dir, "data")
	if err := os.Mkdir(dataDir, 0o750); err != nil {
		t.Fatal(err)
	}
	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := filler.Write(make([]byte, 4096)); err != nil {
			break
		}
	}
	filler.Close()
	failedStart(t, nodeTOML(dataDir, "127.0.0.1:0", ""), "cannot use data_dir "+dataDir, "no space left on device", "disk is full")
}

func TestStartFailsClearlyOnBadTLSFiles(t *testing.T) {
	failedStart(t, nodeTOML(t.TempDir(), "127.0.0.1:0", "[nats.tls]\ncert = \"/nonexistent/node.pem\"\nkey = \"/nonexistent/node-key.pem\"\n"),
		"cannot load TLS certificate /nonexistent/node.pem")
}

func TestOneNodePerDataDir(t *testing.T) {
	n := startNode(t)
	last := failedStart(t, nodeTOML(n.dataDir, "127.0.0.1:0", ""),
		fmt.Sprintf("data_dir %s is in use by corrald pid %d", n.dataDir, n.cmd.Process.Pid))
	_ = last
	n.ctl(t, "nodes") // the first one is unharmed
}

func TestStartFailsClearlyOnASharedSocketDir(t *testing.T) {
	shared := filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777|os.ModeSticky); err != nil { // like /tmp
		t.Fatal(err)
	}
	cfg := strings.Replace(nodeTOML(t.TempDir(), "127.0.0.1:0", ""), "[nats]", fmt.Sprintf("socket_dir = %q\n[nats]", shared), 1)
	failedStart(t, cfg, "cannot use socket directory "+shared, "did not create it")
	if fi, err := os.Stat(shared); err != nil || fi.Mode().Perm() != 0o777 || fi.Mode()&os.ModeSticky == 0 {
		t.Errorf("the shared directory was changed: %v %v", fi.Mode(), err)
	}
}
