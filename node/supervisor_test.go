package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/internal/testchild"
	"github.com/corral-run/corral/node"
	"github.com/corral-run/corral/node/nodetest"
)

func TestMain(m *testing.M) {
	playNodeRole()
	testchild.Main()
	os.Exit(m.Run())
}

type harness struct {
	sup  *node.Supervisor
	rec  *nodetest.Recorder
	ctrl *testchild.Ctrl
	dir  string
}

func newHarness(t testing.TB, transport string) *harness {
	return newHarnessWith(t, node.Config{Transport: transport})
}

// newHarnessWith starts a supervisor with cfg's non-zero settings.
func newHarnessWith(t testing.TB, cfg node.Config) *harness {
	t.Helper()
	dir := testchild.ShortTempDir(t)
	rec := nodetest.NewRecorder()
	cfg.NodeID, cfg.SocketDir, cfg.LogDir = "n1", filepath.Join(dir, "sock"), filepath.Join(dir, "logs")
	cfg.MaxLineBytes, cfg.Reporter = 4096, rec
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	sup, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := sup.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return &harness{sup: sup, rec: rec, ctrl: testchild.NewCtrl(t), dir: dir}
}

// define adds a definition that runs the test binary in a role.
func (h *harness) define(t testing.TB, name string, env map[string]string, mod func(*node.Definition)) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	d := node.Definition{Name: name, Command: exe, Env: env, StopTimeout: 2 * time.Second}
	if mod != nil {
		mod(&d)
	}
	if err := h.sup.Define(d); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) spawn(t testing.TB, name string, opts node.SpawnOptions) api.ManagedProcess {
	t.Helper()
	mp, err := h.sup.Spawn(context.Background(), name, opts)
	if err != nil {
		t.Fatal(err)
	}
	return mp
}

func role(r string) map[string]string { return map[string]string{testchild.EnvRole: r} }

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func TestSpawnGivesTheChildItsEnvironment(t *testing.T) {
	h := newHarness(t, "unix")
	env := h.ctrl.Env()
	env["CORRAL_TEST_EXTRA"] = "from-definition"
	h.define(t, "worker", env, func(d *node.Definition) { d.SpawnEnv, d.SpawnCwd = []string{"CORRAL_TEST_*"}, true })
	mp := h.spawn(t, "worker", node.SpawnOptions{Metadata: json.RawMessage(`{"input":"a.mp4"}`)})

	if !strings.HasPrefix(mp.ID, "proc_") || len(mp.ID) != node.IDLength {
		t.Errorf("id %q does not look like proc_<16 chars>", mp.ID)
	}
	if mp.Status != api.StatusRunning || mp.PID <= 0 || mp.Node != "n1" || mp.Name != "worker" {
		t.Errorf("unexpected record %+v", mp)
	}
	peer := h.ctrl.Accept()
	if peer.ProcessID != mp.ID || peer.Metadata != `{"input":"a.mp4"}` || peer.Extra != "from-definition" {
		t.Errorf("child saw id=%q metadata=%q extra=%q", peer.ProcessID, peer.Metadata, peer.Extra)
	}
	if peer.Address != filepath.Join(h.dir, "sock", mp.ID+".sock") {
		t.Errorf("socket path %q", peer.Address)
	}
	fi, err := os.Stat(peer.Address)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode: %v %v", fi, err)
	}
	fi, err = os.Stat(filepath.Join(h.dir, "sock"))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("socket dir mode: %v %v", fi, err)
	}
	sp := h.rec.Wait(t, node.KindSpawned, mp.ID).Payload.(api.Spawned)
	if sp != (api.Spawned{ProcessID: mp.ID, Name: "worker", PID: mp.PID, Node: "n1"}) {
		t.Errorf("spawned payload %+v", sp)
	}
}

func TestSpawnOverridesEnvAndCwd(t *testing.T) {
	h := newHarness(t, "unix")
	env := h.ctrl.Env()
	env["CORRAL_TEST_EXTRA"] = "from-definition"
	h.define(t, "worker", env, func(d *node.Definition) { d.SpawnEnv, d.SpawnCwd = []string{"CORRAL_TEST_*"}, true })
	cwd := t.TempDir()
	mp := h.spawn(t, "worker", node.SpawnOptions{Env: map[string]string{"CORRAL_TEST_EXTRA": "from-spawn"}, Cwd: cwd})
	peer := h.ctrl.Accept()
	if peer.Extra != "from-spawn" || peer.Metadata != "{}" {
		t.Errorf("extra %q metadata %q", peer.Extra, peer.Metadata)
	}
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", mp.PID))
	if err != nil || link != cwd {
		t.Errorf("cwd %q (%v), want %q", link, err, cwd)
	}
}

func TestStopEndsStoppedAndRemovesSocket(t *testing.T) {
	h := newHarness(t, "unix")
	ready := filepath.Join(h.dir, "ready")
	h.define(t, "sleeper", map[string]string{testchild.EnvRole: testchild.RoleSleep, testchild.EnvReadyFile: ready}, nil)
	mp := h.spawn(t, "sleeper", node.SpawnOptions{})
	testchild.WaitFile(t, ready)
	sock := filepath.Join(h.dir, "sock", mp.ID+".sock")
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("socket missing while running: %v", err)
	}
	got, err := h.sup.Stop(context.Background(), mp.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != api.StatusStopped || got.ExitCode == nil || *got.ExitCode != 0 || got.EndedAt == nil {
		t.Errorf("after stop: %+v", got)
	}
	if alive(mp.PID) {
		t.Errorf("pid %d still alive", mp.PID)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket file left behind: %v", err)
	}
	st := h.rec.Wait(t, node.KindStopped, mp.ID).Payload.(api.Stopped)
	if st.ProcessID != mp.ID || st.Name != "sleeper" || st.ExitCode == nil || *st.ExitCode != 0 {
		t.Errorf("stopped payload %+v", st)
	}
	if _, err := h.sup.Stop(context.Background(), mp.ID, 0); !errors.Is(err, node.ErrNotRunning) {
		t.Errorf("second stop: %v, want ErrNotRunning", err)
	}
}

func TestStopEscalatesToSIGKILL(t *testing.T) {
	h := newHarness(t, "unix")
	ready := filepath.Join(h.dir, "ready")
	h.define(t, "stubborn", map[string]string{testchild.EnvRole: testchild.RoleStubborn, testchild.EnvReadyFile: ready},
		func(d *node.Definition) { d.StopTimeout = 200 * time.Millisecond })
	mp := h.spawn(t, "stubborn", node.SpawnOptions{})
	testchild.WaitFile(t, ready)
	start := time.Now()
	got, err := h.sup.Stop(context.Background(), mp.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != api.StatusStopped || got.ExitCode != nil {
		t.Errorf("after escalation: %+v", got)
	}
	if time.Since(start) < 200*time.Millisecond {
		t.Errorf("stop returned before the stop timeout")
	}
}

func TestExitCodesDecideStoppedOrCrashed(t *testing.T) {
	h := newHarness(t, "unix")
	crashes := make(chan int, 1)
	h.define(t, "fail", map[string]string{testchild.EnvRole: testchild.RoleExit, testchild.EnvExitCode: "3"},
		func(d *node.Definition) { d.OnCrash = func(_ api.ManagedProcess, code int) { crashes <- code } })
	h.define(t, "ok", map[string]string{testchild.EnvRole: testchild.RoleExit, testchild.EnvExitCode: "0"}, nil)

	bad := h.spawn(t, "fail", node.SpawnOptions{})
	cr := h.rec.Wait(t, node.KindCrashed, bad.ID).Payload.(api.Crashed)
	if cr.ExitCode == nil || *cr.ExitCode != 3 || cr.Error != "exited with code 3" || cr.Name != "fail" {
		t.Errorf("crashed payload %+v", cr)
	}
	if got, _ := h.sup.Get(bad.ID); got.Status != api.StatusCrashed {
		t.Errorf("status %s, want crashed", got.Status)
	}
	select {
	case code := <-crashes:
		if code != 3 {
			t.Errorf("OnCrash code %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Error("OnCrash not called")
	}

	good := h.spawn(t, "ok", node.SpawnOptions{})
	st := h.rec.Wait(t, node.KindStopped, good.ID).Payload.(api.Stopped)
	if st.ExitCode == nil || *st.ExitCode != 0 {
		t.Errorf("stopped payload %+v", st)
	}
	if h.rec.Count(node.KindCrashed, good.ID) != 0 {
		t.Error("clean exit reported as a crash")
	}
}

func TestStopKillsTheWholeGroup(t *testing.T) {
	h := newHarness(t, "unix")
	pidFile := filepath.Join(h.dir, "grandchild.pid")
	h.define(t, "tree", map[string]string{testchild.EnvRole: testchild.RoleTree, testchild.EnvPidFile: pidFile}, nil)
	mp := h.spawn(t, "tree", node.SpawnOptions{})
	gpid, _ := strconv.Atoi(testchild.WaitFile(t, pidFile))
	if gpid == 0 || !alive(gpid) {
		t.Fatalf("grandchild not running (pid %d)", gpid)
	}
	if _, err := h.sup.Stop(context.Background(), mp.ID, 0); err != nil {
		t.Fatal(err)
	}
	// The grandchild got SIGTERM with its group; it is not our child, so
	// wait for it to disappear (it is reaped by init).
	waitGone(t, gpid)
}

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] == 'Z'
}

func TestBadRequestsGetClearErrors(t *testing.T) {
	h := newHarness(t, "unix")
	h.define(t, "sleeper", role(testchild.RoleSleep), nil)
	ctx := context.Background()

	_, err := h.sup.Spawn(ctx, "nope", node.SpawnOptions{})
	if !errors.Is(err, node.ErrNotFound) || !strings.Contains(err.Error(), `cannot spawn "nope"`) {
		t.Errorf("spawn undefined: %v", err)
	}
	_, err = h.sup.Spawn(ctx, "sleeper", node.SpawnOptions{Metadata: json.RawMessage(`[1,2]`)})
	if !errors.Is(err, node.ErrInvalid) || !strings.Contains(err.Error(), "metadata must be a JSON object, got an array") {
		t.Errorf("array metadata: %v", err)
	}
	_, err = h.sup.Stop(ctx, "proc_unknown", 0)
	if !errors.Is(err, node.ErrNotFound) {
		t.Errorf("stop unknown: %v", err)
	}
	if err := h.sup.Send("proc_unknown", json.RawMessage(`{}`)); !errors.Is(err, node.ErrNotFound) {
		t.Errorf("send unknown: %v", err)
	}
	for _, tc := range []struct {
		def  node.Definition
		want string
	}{
		{node.Definition{Name: "a.b", Command: "x"}, `process name "a.b" must be`},
		{node.Definition{Name: "", Command: "x"}, `process name "" must be`},
		{node.Definition{Name: "watchdog", Command: "x"}, `"watchdog" is reserved`},
		{node.Definition{Name: strings.Repeat("x", 65), Command: "x"}, "must be 1 to 64"},
		{node.Definition{Name: "ok", Command: ""}, `cannot define "ok": no command`},
		{node.Definition{Name: "ok", Command: "x", Events: map[string]json.RawMessage{"stats": nil}}, `event name "stats" is reserved`},
		{node.Definition{Name: "ok", Command: "x", Events: map[string]json.RawMessage{"a>b": nil}}, `event name "a>b" must be`},
		{node.Definition{Name: "ok", Command: "x", Events: map[string]json.RawMessage{"e": json.RawMessage(`{"type":12}`)}}, `cannot define "ok": schema of event "e": schema/type: got number`},
	} {
		err := h.sup.Define(tc.def)
		if !errors.Is(err, node.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("define %q: %v, want %q", tc.def.Name, err, tc.want)
		}
	}
}

func TestSpawnOfMissingCommandFailsCleanly(t *testing.T) {
	h := newHarness(t, "unix")
	if err := h.sup.Define(node.Definition{Name: "ghost", Command: "/nonexistent/corral-test"}); err != nil {
		t.Fatal(err)
	}
	_, err := h.sup.Spawn(context.Background(), "ghost", node.SpawnOptions{})
	if err == nil || !strings.Contains(err.Error(), `cannot spawn "ghost"`) {
		t.Errorf("spawn of missing command: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(h.dir, "sock"))
	if len(entries) != 1 || entries[0].Name() != "corrald.sock" { // the node's own
		t.Errorf("socket left behind after failed spawn: %v", entries)
	}
	if len(h.sup.GetAll()) != 0 {
		t.Errorf("failed spawn left a record")
	}
}

func TestGetAllAndGetByName(t *testing.T) {
	h := newHarness(t, "unix")
	h.define(t, "a", role(testchild.RoleSleep), nil)
	h.define(t, "b", role(testchild.RoleSleep), nil)
	a1 := h.spawn(t, "a", node.SpawnOptions{})
	a2 := h.spawn(t, "a", node.SpawnOptions{})
	b1 := h.spawn(t, "b", node.SpawnOptions{})
	if got := h.sup.GetByName("a"); len(got) != 2 || got[0].ID != a1.ID || got[1].ID != a2.ID {
		t.Errorf("GetByName(a) = %v", got)
	}
	if got := h.sup.GetAll(); len(got) != 3 || got[2].ID != b1.ID {
		t.Errorf("GetAll = %v", got)
	}
	stopped, err := h.sup.StopAll(context.Background(), 0, "a")
	if err != nil || len(stopped) != 2 {
		t.Fatalf("StopAll(a) = %v, %v", stopped, err)
	}
	if got, _ := h.sup.Get(b1.ID); got.Status != api.StatusRunning {
		t.Errorf("b stopped by StopAll(a): %s", got.Status)
	}
	// Summary: what GetAll lists, counted, and the unfinished described.
	total, unfinished := h.sup.Summary()
	want := api.ProcessSummary{ID: b1.ID, Name: "b", Node: "n1", Status: api.StatusRunning, PID: b1.PID, StartedAt: b1.StartedAt}
	if total != 3 || len(unfinished) != 1 || unfinished[0] != want {
		t.Errorf("Summary = %d, %+v; want 3, [%+v]", total, unfinished, want)
	}
}

func TestRestartKeepsMetadataWithNewID(t *testing.T) {
	h := newHarness(t, "unix")
	restarts := make(chan [2]string, 1)
	h.define(t, "sleeper", role(testchild.RoleSleep), func(d *node.Definition) {
		d.OnRestart = func(old, cur api.ManagedProcess, attempt int) { restarts <- [2]string{old.ID, cur.ID} }
	})
	mp := h.spawn(t, "sleeper", node.SpawnOptions{Metadata: json.RawMessage(`{"k":1}`)})
	np, err := h.sup.Restart(context.Background(), mp.ID)
	if err != nil {
		t.Fatal(err)
	}
	if np.ID == mp.ID || string(np.Metadata) != `{"k":1}` || np.Restarts != 1 || np.Status != api.StatusRunning {
		t.Errorf("restarted record %+v", np)
	}
	rs := h.rec.Wait(t, node.KindRestarted, np.ID).Payload.(api.Restarted)
	if rs != (api.Restarted{OldProcessID: mp.ID, NewProcessID: np.ID, Name: "sleeper", Attempt: 1}) {
		t.Errorf("restarted payload %+v", rs)
	}
	if got := <-restarts; got != [2]string{mp.ID, np.ID} {
		t.Errorf("OnRestart(%v)", got)
	}
}
