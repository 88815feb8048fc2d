package gateway_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/gateway"
	"github.com/corral-run/corral/internal/testnode"
	"github.com/corral-run/corral/node"
)

// The dashboard, tested in a real browser: Debian's chromium, driven by
// chromedp. CI installs it (.ci/run); a machine without it fails here,
// naming what to install.

// browserPaths are where chromium may be.
var browserPaths = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// browser starts a headless chromium with a fresh profile, stopped when
// the test ends, and returns a context to drive a tab with.
func browser(tb testing.TB) context.Context {
	tb.Helper()
	path := os.Getenv("CORRAL_CHROMIUM")
	for _, name := range browserPaths {
		if path != "" {
			break
		}
		path, _ = exec.LookPath(name)
	}
	if path == "" {
		tb.Fatal("no chromium to test the dashboard in: install it (apt-get install -y chromium) or set CORRAL_CHROMIUM to its path")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(tb.TempDir()), chromedp.WindowSize(1400, 1000),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	tb.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		tb.Fatalf("cannot start %s: %v", path, err)
	}
	return ctx
}

// run runs chromedp steps within d, failing the test with what otherwise.
func run(tb testing.TB, ctx context.Context, d time.Duration, what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}

// value runs one chromedp action within d and returns its value.
func value[T any](tb testing.TB, ctx context.Context, d time.Duration, what string, a chromedp.Action[T]) T {
	tb.Helper()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
	return v
}

// liveStreamOpen waits until the page's live event stream is open (it
// is subscribed then).
func liveStreamOpen(tb testing.TB, ctx context.Context) {
	tb.Helper()
	value(tb, ctx, 10*time.Second, "the page's live stream",
		chromedp.Poll[bool](`state.live !== null && state.live.readyState === 1`, chromedp.WithPollingInterval(20*time.Millisecond)))
}

// artifactDir is where the tests leave what a person may want to look at
// (the dashboard's screenshot): $CORRAL_ARTIFACTS, or corral-artifacts in
// the temporary directory.
func artifactDir(tb testing.TB) string {
	dir := os.Getenv("CORRAL_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "corral-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// An operator's dashboard: the node, a process spawned by the test within
// 2 s, and a stop button that stops it.
func TestDashboardOperator(t *testing.T) {
	s := startSite(t, true, gateway.Config{})
	ctx := browser(t)
	run(t, ctx, 20*time.Second, "load the dashboard",
		chromedp.Navigate(s.url+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#nodes tr[data-node="n1"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#spawn-form`)))
	liveStreamOpen(t, ctx)

	mp, err := s.node.Ctl.Spawn(testnode.Context(t), "", "sleeper", api.SpawnRequest{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	row := fmt.Sprintf(`#processes tr[data-id=%q]`, mp.ID)
	run(t, ctx, 2*time.Second, "the spawned process on the page within 2 s", chromedp.WaitVisible(chromedp.CSS(row)))
	t.Logf("the spawned process was on the page %v after the spawn", time.Since(start).Round(time.Millisecond))

	// One process's logs, following, and its charts.
	printer, err := s.node.Ctl.Spawn(testnode.Context(t), "", "printer", api.SpawnRequest{})
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, 10*time.Second, "show the printer's logs and charts",
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`button.show[data-id=%q]`, printer.ID))),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`button.show[data-id=%q]`, printer.ID))),
		chromedp.WaitVisible(chromedp.CSS(`#detail`)))
	value(t, ctx, 10*time.Second, "the printer's lines in the logs",
		chromedp.Poll[bool](`document.querySelector("#logs").textContent.includes("line 3")`, chromedp.WithPollingInterval(20*time.Millisecond)))
	value(t, ctx, 10*time.Second, "stats samples for the charts",
		chromedp.Poll[bool](fmt.Sprintf(`(state.series.get(%q) || {cpu: []}).cpu.length >= 3`, printer.ID), chromedp.WithPollingInterval(20*time.Millisecond)))

	png := value(t, ctx, 10*time.Second, "screenshot", chromedp.FullScreenshot(100))
	shot := filepath.Join(artifactDir(t), "dashboard.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)

	run(t, ctx, 10*time.Second, "click stop", chromedp.Click(chromedp.CSS(fmt.Sprintf(`button.stop[data-id=%q]`, mp.ID))))
	if !pollStatus(t, s, mp.ID, func(st api.Status) bool { return st.Finished() }) {
		t.Fatal("the stop button did not stop the process")
	}
	run(t, ctx, 10*time.Second, "the row without its stop button",
		chromedp.WaitNotPresent(chromedp.CSS(fmt.Sprintf(`button.stop[data-id=%q]`, mp.ID))))

	// The spawn form, built from the definitions.
	run(t, ctx, 10*time.Second, "spawn a sleeper from the form",
		chromedp.SetValue(chromedp.CSS(`#spawn-name`), "sleeper"),
		chromedp.SendKeys(chromedp.CSS(`#spawn-meta`), `{"from":"the form"}`),
		chromedp.Click(chromedp.CSS(`#spawn-form button[type=submit]`)))
	result := value(t, ctx, 10*time.Second, "the form's answer", chromedp.Poll[string](
		`document.querySelector("#spawn-result").textContent`, chromedp.WithPollingInterval(20*time.Millisecond)))
	var fromForm api.ManagedProcess
	for _, p := range s.node.Sup.GetAll() {
		if string(p.Metadata) == `{"from":"the form"}` {
			fromForm = p
		}
	}
	if fromForm.ID == "" || result != "spawned "+fromForm.ID+" on n1" {
		t.Errorf("the spawn form said %q; spawned %+v", result, fromForm)
	}

	// A node that dies (its process left running) stands out.
	n2 := testnode.Start(t, s.node.Srv, testnode.Spec{ID: "n2", JetStream: true})
	if _, err := n2.Sup.Spawn(testnode.Context(t), "sleeper", node.SpawnOptions{}); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, 10*time.Second, "node n2 on the page", chromedp.WaitVisible(chromedp.CSS(`#nodes tr[data-node="n2"]`)))
	n2.Die(t)
	run(t, ctx, 15*time.Second, "node n2 shown gone", chromedp.WaitVisible(chromedp.CSS(`#nodes tr.gone[data-node="n2"]`)))
}

func pollStatus(t *testing.T, s *site, id string, ok func(api.Status) bool) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if p, found := s.node.Sup.Get(id); found && ok(p.Status) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// A viewer signs in on the page and sees the processes, without stop or
// restart buttons and without the spawn form.
func TestDashboardViewer(t *testing.T) {
	const token = "viewer-token-0123456789"
	s := startSite(t, false, gateway.Config{Tokens: []gateway.Token{{Token: token, Role: bus.RoleViewer}}})
	mp, err := s.node.Ctl.Spawn(testnode.Context(t), "", "sleeper", api.SpawnRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := browser(t)
	row := fmt.Sprintf(`#processes tr[data-id=%q]`, mp.ID)
	run(t, ctx, 20*time.Second, "sign in as a viewer",
		chromedp.Navigate(s.url+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#login-form`)),
		chromedp.SendKeys(chromedp.CSS(`#token`), token),
		chromedp.Click(chromedp.CSS(`#login-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(row)),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`button.show[data-id=%q]`, mp.ID))))
	stops := value(t, ctx, 5*time.Second, "stop buttons", chromedp.Evaluate[int](`document.querySelectorAll("button.stop").length`))
	restarts := value(t, ctx, 5*time.Second, "restart buttons", chromedp.Evaluate[int](`document.querySelectorAll("button.restart").length`))
	spawnHidden := value(t, ctx, 5*time.Second, "the spawn form",
		chromedp.Evaluate[bool](`document.querySelector("#spawn-section").hidden && !document.querySelector("#spawn-form")`))
	who := value(t, ctx, 5*time.Second, "the role shown", chromedp.Text(chromedp.CSS(`#who`)))
	if stops != 0 || restarts != 0 || !spawnHidden || who != "viewer" {
		t.Errorf("a viewer's page: %d stop and %d restart buttons, spawn form hidden %v, role %q", stops, restarts, spawnHidden, who)
	}
}
