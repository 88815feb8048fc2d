package node_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/internal/testchild"
	"github.com/corral-run/corral/node"
)

// environ reads a running process's environment.
func environ(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
}

func hasPrefix(env []string, prefix string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, prefix) {
			return true
		}
	}
	return false
}

// A spawn may set only the environment variables its definition allows,
// never the loader's, and the working directory only when allowed; the
// refusal is ErrNotPermitted and names what was refused.
func TestSpawnOverridesAreOptIn(t *testing.T) {
	h := newHarness(t, "unix")
	h.define(t, "closed", role(testchild.RoleSleep), nil)
	h.define(t, "open", role(testchild.RoleSleep), func(d *node.Definition) {
		d.SpawnEnv, d.SpawnCwd = []string{"INPUT_*", "QUALITY", "*"}, true
	})
	h.define(t, "some", role(testchild.RoleSleep), func(d *node.Definition) { d.SpawnEnv = []string{"INPUT_*", "QUALITY"} })
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		opts node.SpawnOptions
		kind error
		want string
	}{
		{"closed", node.SpawnOptions{Env: map[string]string{"QUALITY": "high"}}, api.ErrNotPermitted, `cannot spawn "closed": the definition does not let a spawn set QUALITY (spawn_env: it lets a spawn set none)`},
		{"some", node.SpawnOptions{Env: map[string]string{"OTHER": "x"}}, api.ErrNotPermitted, "does not let a spawn set OTHER (spawn_env: it allows INPUT_*, QUALITY)"},
		{"open", node.SpawnOptions{Env: map[string]string{"LD_PRELOAD": "/tmp/evil.so"}}, api.ErrNotPermitted, "no spawn may set LD_PRELOAD"},
		{"open", node.SpawnOptions{Env: map[string]string{"DYLD_INSERT_LIBRARIES": "x"}}, api.ErrNotPermitted, "no spawn may set DYLD_INSERT_LIBRARIES"},
		{"closed", node.SpawnOptions{Cwd: "/"}, api.ErrNotPermitted, "does not let a spawn choose the working directory"},
		{"open", node.SpawnOptions{Env: map[string]string{"": "x"}}, api.ErrInvalid, "empty name"},
		{"open", node.SpawnOptions{Env: map[string]string{"A=B": "x"}}, api.ErrInvalid, `"A=B" contains =`},
	} {
		_, err := h.sup.Spawn(ctx, tc.name, tc.opts)
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.want) || api.Code(err) != api.Code(tc.kind) {
			t.Errorf("spawn %s %+v: %v, want %v %q", tc.name, tc.opts, err, tc.kind, tc.want)
		}
	}
	mp := h.spawn(t, "some", node.SpawnOptions{Env: map[string]string{"INPUT_PATH": "in.mp4", "QUALITY": "high"}})
	env := environ(t, mp.PID)
	if !hasPrefix(env, "INPUT_PATH=in.mp4") || !hasPrefix(env, "QUALITY=high") {
		t.Errorf("allowed overrides missing from %v", env)
	}
}

// Children inherit the node's environment without its own settings and
// NATS credentials, or nothing of it with EmptyEnv.
func TestChildEnvironment(t *testing.T) {
	t.Setenv("CORRAL_NATS_URL", "nats://u:s3cret@127.0.0.1:4222")
	t.Setenv("NATS_PASSWORD", "s3cret")
	t.Setenv("CORRAL_TEST_INHERITED", "yes-it-is") // a CORRAL_ name all the same
	t.Setenv("PLAIN_INHERITED", "yes")
	h := newHarness(t, "unix") // reads the environment now
	h.define(t, "inherit", role(testchild.RoleSleep), nil)
	if err := h.sup.Define(node.Definition{Name: "empty", Command: "/bin/sleep", Args: []string{"30"}, StopTimeout: time.Second,
		EmptyEnv: true, Env: map[string]string{"OWN": "1"}}); err != nil {
		t.Fatal(err)
	}

	env := environ(t, h.spawn(t, "inherit", node.SpawnOptions{}).PID)
	if !hasPrefix(env, "PLAIN_INHERITED=yes") || hasPrefix(env, "CORRAL_NATS_URL=") || hasPrefix(env, "NATS_PASSWORD=") ||
		hasPrefix(env, "CORRAL_TEST_INHERITED=") || !hasPrefix(env, "DONKEYLABS_PROCESS_ID=") {
		t.Errorf("inherited environment: %v", env)
	}
	for _, kv := range env {
		if strings.Contains(kv, "s3cret") {
			t.Errorf("a secret reached the child: %s", kv)
		}
	}
	env = environ(t, h.spawn(t, "empty", node.SpawnOptions{}).PID)
	if hasPrefix(env, "PLAIN_INHERITED=") || hasPrefix(env, "PATH=") || !hasPrefix(env, "OWN=1") || !hasPrefix(env, "DONKEYLABS_SOCKET_PATH=") {
		t.Errorf("inherit_env = false: %v", env)
	}
}

// A definition sent over the control plane may not replace one the node
// was configured with; it may replace another remote one.
func TestRemoteDefinitionCannotReplaceConfigured(t *testing.T) {
	h := newHarness(t, "unix")
	h.define(t, "configured", role(testchild.RoleSleep), nil)
	err := h.sup.DefineRemote(node.Definition{Name: "configured", Command: "/bin/true"})
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), `cannot define "configured": the node's configuration defines it`) {
		t.Errorf("remote over configured: %v", err)
	}
	for _, cmd := range []string{"/bin/true", "/bin/false"} {
		if err := h.sup.DefineRemote(node.Definition{Name: "remote", Command: cmd}); err != nil {
			t.Errorf("remote %s: %v", cmd, err)
		}
	}
	if defs := h.sup.Definitions(); defs[0].Name != "configured" || defs[0].Command == "/bin/true" || defs[1].Command != "/bin/false" {
		t.Errorf("definitions %+v", defs)
	}
}

// A definition with user runs its child as that user, when the node is
// root; a node that is not root refuses the definition.
func TestChildRunsAsItsUser(t *testing.T) {
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("this host has no user nobody: %v", err)
	}
	h := newHarness(t, "unix")
	err = h.sup.Define(node.Definition{Name: "as-nobody", Command: "sleep", Args: []string{"30"}, User: "nobody", StopTimeout: time.Second})
	if os.Geteuid() != 0 {
		if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "need corrald to run as root") {
			t.Errorf("define with user as uid %d: %v, want a refusal", os.Geteuid(), err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	mp := h.spawn(t, "as-nobody", node.SpawnOptions{})
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", mp.PID))
	if err != nil {
		t.Fatal(err)
	}
	var uid string
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
			uid = f[1]
		}
	}
	if uid != nobody.Uid {
		t.Errorf("child runs as uid %s, want nobody's %s", uid, nobody.Uid)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(mp.SocketPath, &st); err != nil || fmt.Sprint(st.Uid) != nobody.Uid || st.Mode&0o777 != 0o600 {
		t.Errorf("socket %s: uid %d mode %o, %v; want nobody's, 0600", mp.SocketPath, st.Uid, st.Mode&0o777, err)
	}
	if _, err := h.sup.Stop(context.Background(), mp.ID, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.sup.Define(node.Definition{Name: "ghost", Command: "true", User: "no-such-user-here"}); !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), `no user "no-such-user-here"`) {
		t.Errorf("unknown user: %v", err)
	}
}
