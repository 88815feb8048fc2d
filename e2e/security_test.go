package e2e_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"

	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/internal/await"
	"github.com/corral-run/corral/internal/natstest"
	"github.com/corral-run/corral/internal/testcert"
)

// secureNode starts a node with an operator and a viewer, its client
// listener on TLS with a CA made by the test. corralctl signs in as the
// operator unless told otherwise.
func secureNode(t testing.TB, ca *testcert.CA, verifyClients bool) *node {
	t.Helper()
	return secureNodeWith(t, ca, verifyClients, "")
}

// secureNodeWith is secureNode with more TOML appended to the config.
func secureNodeWith(t testing.TB, ca *testcert.CA, verifyClients bool, extraTOML string) *node {
	t.Helper()
	cert, key := ca.Issue(t, "e2e")
	hash, err := bcrypt.GenerateFromPassword([]byte("ops-secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	extra := fmt.Sprintf(`
[[nats.users]]
user = "ops"
password = %q
role = "operator"
[[nats.users]]
user = "eve"
password = "eve-secret"
role = "viewer"
[nats.tls]
cert = %q
key = %q
ca = %q
verify = %t
`, hash, cert, key, ca.Cert, verifyClients) + extraTOML
	args := []string{"--user", "ops", "--password", "ops-secret", "--tlsca", ca.Cert}
	if verifyClients {
		c, k := ca.Issue(t, "client")
		args = append(args, "--tlscert", c, "--tlskey", k)
	}
	return startNodeWith(t, extra, args...)
}

// as runs corralctl against n as another user (ctlArgs replaced).
func (n *node) as(args []string, cmd ...string) (string, error) {
	m := &node{url: n.url, ctlArgs: args}
	return m.runCtl(cmd...)
}

func TestRolesEndToEnd(t *testing.T) {
	ca := testcert.New(t)
	n := secureNode(t, ca, false)
	viewer := []string{"--user", "eve", "--password", "eve-secret", "--tlsca", ca.Cert}

	// The operator drives: spawn, get, send, stop.
	p := n.spawn(t, "ticker", "{}")
	// The viewer watches: ps, get, logs, events.
	if out, err := n.as(viewer, "ps"); err != nil || !strings.Contains(out, p.ID) {
		t.Errorf("viewer ps: %v %s", err, out)
	}
	for _, cmd := range [][]string{{"get", p.ID}, {"logs", p.ID}, {"nodes"}} {
		if _, err := n.as(viewer, cmd...); err != nil {
			t.Errorf("viewer %s: %v", cmd[0], err)
		}
	}
	// events follows until stopped: it replays the spawn first.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	events := exec.CommandContext(ctx, bin("corralctl"), append(append([]string{"--server", n.url}, viewer...), "events", "--since", "1m")...)
	events.Env = programEnv()
	out, _ := events.Output()
	if !strings.Contains(string(out), "process.spawned") || !strings.Contains(string(out), p.ID) {
		t.Errorf("viewer events showed:\n%s", out)
	}
	// And may do nothing else, told so at once.
	for _, cmd := range [][]string{
		{"spawn", "ticker"}, {"stop", p.ID}, {"send", p.ID, `{"type":"pause"}`}, {"restart", p.ID},
	} {
		start := time.Now()
		out, err := n.as(viewer, cmd...)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(err.Error(), "corralctl: not permitted: ") {
			t.Errorf("viewer %s: %v %s, want exit 1 and not permitted", cmd[0], err, out)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("viewer %s refused after %v, not at once", cmd[0], d)
		}
	}
	n.ctl(t, "stop", p.ID)

	// The operator may not speak for a child nor answer for a node.
	errs := make(chan error, 8)
	nc, err := nats.Connect(n.url, nats.UserInfo("ops", "ops-secret"), nats.RootCAs(ca.Cert),
		nats.CustomInboxPrefix(bus.InboxPrefix("ops")),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.Publish("process.ticker.tick", []byte(`{"n":1}`))
	_ = nc.Publish(bus.LogSubject(p.ID), []byte("a line in the child's name\n"))
	_, _ = nc.QueueSubscribe(bus.SpawnSubject("ticker"), "spawn", func(*nats.Msg) {})
	_ = nc.Flush()
	refused := map[string]bool{}
	for len(refused) < 3 {
		select {
		case err := <-errs:
			for _, s := range []string{"process.ticker.tick", bus.LogSubject(p.ID), bus.SpawnSubject("ticker")} {
				if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), s) {
					refused[s] = true
				}
			}
		case <-time.After(waitEvent):
			t.Fatalf("the server refused only %v", refused)
		}
	}

	// Nobody else gets in: no user, a wrong password, no CA.
	for what, opts := range map[string][]nats.Option{
		"no user":        {nats.RootCAs(ca.Cert)},
		"wrong password": {nats.UserInfo("ops", "guess"), nats.RootCAs(ca.Cert)},
		"unknown CA":     {nats.UserInfo("ops", "ops-secret")},
	} {
		if c, err := nats.Connect(n.url, append(opts, nats.Timeout(5*time.Second))...); err == nil {
			c.Close()
			t.Errorf("%s: connected", what)
		}
	}
}

// A viewer may follow a process's output (with users and TLS on): it
// sees a line printed after it started, and the end.
func TestViewerFollowsLogs(t *testing.T) {
	t.Parallel()
	ca := testcert.New(t)
	toml, fifo := echoTOML(t, "echo")
	n := secureNodeWith(t, ca, false, toml)
	viewer := []string{"--user", "eve", "--password", "eve-secret", "--tlsca", ca.Cert}
	p := n.spawn(t, "echo", "{}")
	w := openFIFO(t, fifo)
	n.waitLog(t, p.ID, "ready")
	f := n.followAs(t, viewer, "--tail", "1", p.ID)
	f.waitFor(t, "the tail", func(out string) bool { return out == "ready\n" })
	if _, err := w.WriteString("for the viewer\n"); err != nil {
		t.Fatal(err)
	}
	f.waitFor(t, "the line printed after", func(out string) bool { return strings.HasSuffix(out, "for the viewer\n") })
	w.Close()
	if code := f.wait(t); code != 0 || f.output() != "ready\nfor the viewer\nbye\n" {
		t.Errorf("the viewer's logs -f exited %d having printed %q; stderr: %s", code, f.output(), f.stderr.String())
	}
	// And as any user, an unknown process is an error that says so.
	if out, err := n.as(viewer, "logs", "-f", "proc_n0suchpr0cess000"); err == nil || !strings.Contains(err.Error(), "no such process") {
		t.Errorf("the viewer following an unknown process: %v %q", err, out)
	}
}

func TestClientCertificateRequired(t *testing.T) {
	ca := testcert.New(t)
	n := secureNode(t, ca, true) // corralctl presents a client certificate
	n.ctl(t, "nodes")
	out, err := n.as([]string{"--user", "ops", "--password", "ops-secret", "--tlsca", ca.Cert}, "nodes")
	if err == nil {
		t.Errorf("a client without a certificate connected: %s", out)
	}
}

// A server that is not given the route credentials and a certificate
// from the cluster's CA cannot join it; one that is can.
func TestRogueServerCannotJoinTheCluster(t *testing.T) {
	ca := testcert.New(t)
	cert, key := ca.Issue(t, "a")
	ports := freePorts(t, 2)
	clusterPort := ports[1]
	n := clusterNode(t, "a", nil, fmt.Sprintf(`
[nats]
listen = "127.0.0.1:%d"
jetstream = false
[nats.cluster]
listen = "127.0.0.1:%d"
user = "route"
password = "route-secret"
[nats.cluster.tls]
cert = %q
key = %q
ca = %q
verify = true
`, ports[0], clusterPort, cert, key, ca.Cert))
	n.start(t)
	routeURL := fmt.Sprintf("nats://127.0.0.1:%d", clusterPort)
	await.Until(t, waitReady, "the route listener", func() bool {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(routeURL, "nats://"), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	join := func(t testing.TB, name, user, password string, withCert bool) *server.Server {
		opts := &server.Options{ServerName: name, Host: "127.0.0.1", Port: -1, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "corral", Host: "127.0.0.1", Port: -1}}
		u := routeURL
		if user != "" {
			u = fmt.Sprintf("nats://%s:%s@127.0.0.1:%d", user, password, clusterPort)
		}
		opts.Routes = server.RoutesFromStr(u)
		if user != "" && withCert {
			// The legitimate server guards its own route listener as the
			// nodes do: a rogue that learned its address from the
			// cluster's gossip must not get in there either.
			opts.Cluster.Username, opts.Cluster.Password = user, password
		}
		if withCert {
			c, k := ca.Issue(t, name)
			tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: c, KeyFile: k, CaFile: ca.Cert, Verify: true})
			if err != nil {
				t.Fatal(err)
			}
			tc.RootCAs = tc.ClientCAs
			opts.Cluster.TLSConfig = tc
		}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		s.Start()
		t.Cleanup(s.Shutdown)
		return s
	}
	legit := join(t, "legit", "route", "route-secret", true)
	await.Until(t, waitEvent, "a server with the credentials and a certificate to join", func() bool { return legit.NumRoutes() > 0 })
	for _, rogue := range []struct {
		name, user, password string
		cert                 bool
	}{
		{"no-credentials", "", "", false},
		{"password-no-cert", "route", "route-secret", false},
		{"cert-no-password", "", "", true},
	} {
		s := join(t, rogue.name, rogue.user, rogue.password, rogue.cert)
		// It keeps trying: give it the time the legitimate one needed
		// several times over, then check that it never got in. A
		// soliciting server lists its route for a moment before the node
		// refuses it: in is a route that stays.
		if rid, in := holdsRoute(s, 3*time.Second); in {
			t.Errorf("%s joined the cluster (route %d stayed)", rogue.name, rid)
		}
	}
}

func TestExposedListenerWithoutUsersRefusesToStart(t *testing.T) {
	port := freePort(t)
	n := clusterNode(t, "open", nil, fmt.Sprintf("[nats]\nlisten = \"0.0.0.0:%d\"\njetstream = false\n", port))
	n.start(t)
	select {
	case <-n.exited:
	case <-time.After(waitReady):
		t.Fatal("corrald started with an open listener")
	}
	n.stopOnce.Do(func() {}) // it has exited: nothing to stop
	b, _ := os.ReadFile(n.logPath)
	if n.cmd.ProcessState.ExitCode() == 0 || !strings.Contains(string(b), fmt.Sprintf("the client listener 0.0.0.0:%d (nats.listen) is reachable from other hosts and has no authentication", port)) ||
		!strings.Contains(string(b), "[[nats.users]]") || !strings.Contains(string(b), "insecure = true") {
		t.Errorf("exit %v, output:\n%s", n.cmd.ProcessState, b)
	}

	m := clusterNode(t, "open", nil, fmt.Sprintf("[nats]\nlisten = \"0.0.0.0:%d\"\njetstream = false\ninsecure = true\n", port))
	m.port, m.url = port, fmt.Sprintf("nats://127.0.0.1:%d", port)
	m.start(t)
	m.waitReady(t)
	b, _ = os.ReadFile(m.logPath)
	if !strings.Contains(string(b), "level=WARN") || !strings.Contains(string(b), "insecure: anyone who reaches this listener may run commands") {
		t.Errorf("insecure = true started without the warning:\n%s", b)
	}
}

// deploy/tls/make-certs.sh makes what the deploy configurations name: a
// CA, a certificate per host for its listeners and routes, and a client
// certificate, each signed by the CA.
func TestMakeCertsScript(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(filepath.Join(repoDir, "deploy", "tls", "make-certs.sh"), dir, "a=10.0.0.1", "b=host-b.example.com")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make-certs.sh: %v\n%s", err, out)
	}
	roots := x509.NewCertPool()
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil || !roots.AppendCertsFromPEM(caPEM) {
		t.Fatalf("ca.pem: %v", err)
	}
	for name, hostnames := range map[string][]string{"a": {"a", "10.0.0.1", "127.0.0.1", "localhost"}, "b": {"host-b.example.com", "127.0.0.1"}, "client": nil} {
		b, err := os.ReadFile(filepath.Join(dir, name+".pem"))
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(b)
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		usages := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		if name != "client" {
			usages = append(usages, x509.ExtKeyUsageServerAuth)
		}
		for _, u := range usages {
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
				t.Errorf("%s.pem for usage %v: %v", name, u, err)
			}
		}
		for _, h := range hostnames {
			if err := cert.VerifyHostname(h); err != nil {
				t.Errorf("%s.pem: %v", name, err)
			}
		}
		if fi, err := os.Stat(filepath.Join(dir, name+"-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s-key.pem: %v, mode %v, want 0600", name, err, fi.Mode())
		}
	}
}

// A password in nats.url (here from the environment, as an operator's
// unit file would set it) is in no log line of the node and in no child's
// environment.
func TestNatsURLPasswordDoesNotLeak(t *testing.T) {
	const secret = "s3cret-p4ssword"
	ns := natstest.StartWith(t, "corral", secret)
	url := strings.Replace(ns.URL(), "nats://", "nats://corral:"+secret+"@", 1)
	n := clusterNode(t, "leaky", nil, `
[processes.envdump]
command = "sh"
args = ["-c", "env; exec sleep 30"]
stop_timeout = "2s"
`)
	n.url = url
	n.run(t, programEnv("CORRAL_NATS_URL="+url, "CORRAL_NODE_LOG_LEVEL=debug"))
	n.waitReady(t)
	p := process{}
	decode(t, n.ctl(t, "spawn", "envdump", "--json"), &p)
	n.waitLog(t, p.ID, "DONKEYLABS_PROCESS_ID")
	childEnv := n.ctl(t, "logs", p.ID)
	if strings.Contains(childEnv, secret) || strings.Contains(childEnv, "CORRAL_NATS_URL") {
		t.Errorf("the child's environment has the NATS credentials:\n%s", childEnv)
	}
	n.stop(t)
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), secret) {
		t.Errorf("the node's log has the password:\n%s", b)
	}
	if !strings.Contains(string(b), "corral:xxxxx@") {
		t.Errorf("the node's log does not name its server, redacted:\n%s", b)
	}
}

// Over the wire, as an operator without the nats CLI would: define is
// refused unless the node allows remote definitions, and a spawn that
// sets an environment variable its definition does not allow is a 403.
func TestControlPlanePolicyEndToEnd(t *testing.T) {
	n := startNode(t)
	nc, err := nats.Connect(n.url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, req := range []struct{ subject, body, code, want string }{
		{bus.NodeSubject(n.id, bus.VerbDefine), `{"name":"x","command":"/bin/sh","args":["-c","id > /tmp/p"]}`, "403", "remote_definitions = true"},
		{bus.SpawnSubject("encoder"), `{"env":{"LD_PRELOAD":"/tmp/evil.so"}}`, "403", "LD_PRELOAD"},
		{bus.SpawnSubject("encoder"), `{"env":{"PATH":"/tmp"}}`, "403", "does not let a spawn set PATH"},
		{bus.SpawnSubject("encoder"), `{"cwd":"/tmp"}`, "403", "working directory"},
	} {
		m, err := nc.Request(req.subject, []byte(req.body), waitEvent)
		if err != nil {
			t.Fatal(err)
		}
		if code, desc := m.Header.Get("Nats-Service-Error-Code"), m.Header.Get("Nats-Service-Error"); code != req.code || !strings.Contains(desc, req.want) {
			t.Errorf("%s %s: %s %q, want %s naming %q", req.subject, req.body, code, desc, req.code, req.want)
		}
	}
}

// holdsRoute reports whether s keeps a route (the same one, for a second)
// within the time given.
func holdsRoute(s *server.Server, within time.Duration) (uint64, bool) {
	since := map[uint64]time.Time{}
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		rz, err := s.Routez(nil)
		if err == nil {
			now := time.Now()
			for _, r := range rz.Routes {
				if _, ok := since[r.Rid]; !ok {
					since[r.Rid] = now
				} else if now.Sub(since[r.Rid]) >= time.Second {
					return r.Rid, true
				}
			}
		}
		time.Sleep(50 * time.Millisecond) // polling a server's state: nothing to wait on
	}
	return 0, false
}
