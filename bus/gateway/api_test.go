package gateway_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/bus/gateway"
	"github.com/corral-run/corral/internal/testcert"
	"github.com/corral-run/corral/internal/testnode"
)

// The whole API, as an operator of an open gateway on loopback: the same
// shapes as the NATS replies.
func TestAPI(t *testing.T) {
	s := startSite(t, false, gateway.Config{})

	var health gateway.Health
	s.ok(t, 200, "GET", "/healthz", nil, &health)
	if health.Status != "ok" || health.Node != "n1" {
		t.Errorf("healthz = %+v", health)
	}
	var sess gateway.Session
	s.ok(t, 200, "GET", "/api/v1/session", nil, &sess)
	if sess.Role != "operator" || sess.Tokens || sess.Node != "n1" {
		t.Errorf("session of an open gateway = %+v", sess)
	}
	var nodes []api.NodeInfo
	s.ok(t, 200, "GET", "/api/v1/nodes", nil, &nodes)
	if len(nodes) != 1 || nodes[0].ID != "n1" || len(nodes[0].Definitions) != 2 {
		t.Errorf("nodes = %+v", nodes)
	}
	var defs []api.DefinitionsReply
	s.ok(t, 200, "GET", "/api/v1/definitions", nil, &defs)
	if len(defs) != 1 || len(defs[0].Definitions) != 2 || defs[0].Definitions[0].Name != "printer" {
		t.Errorf("definitions = %+v", defs)
	}

	// Spawn, on any node, on a node, by labels.
	var mp api.ManagedProcess
	a := s.request(t, "POST", "/api/v1/processes", map[string]any{"name": "sleeper", "metadata": map[string]any{"job": 7}})
	if a.code != 201 || a.header.Get("Location") == "" {
		t.Fatalf("spawn: %v", a)
	}
	a.decode(t, &mp)
	if mp.Name != "sleeper" || mp.Node != "n1" || mp.Status != api.StatusRunning || string(mp.Metadata) != `{"job":7}` {
		t.Errorf("spawned %+v", mp)
	}
	if a.header.Get("Location") != "/api/v1/processes/"+mp.ID {
		t.Errorf("Location %q", a.header.Get("Location"))
	}
	var other api.ManagedProcess
	s.ok(t, 201, "POST", "/api/v1/processes", gateway.SpawnRequest{Name: "sleeper", Node: "n1"}, &other)
	var e gateway.ErrorBody
	s.ok(t, 404, "POST", "/api/v1/processes", gateway.SpawnRequest{Name: "sleeper", Labels: map[string]string{"gpu": "yes"}}, &e)
	if e.Code != 404 || !strings.Contains(e.Error, "no node has labels gpu=yes") {
		t.Errorf("spawn by labels nobody has: %+v", e)
	}
	s.ok(t, 404, "POST", "/api/v1/processes", gateway.SpawnRequest{Name: "nobody"}, &e)
	if !strings.Contains(e.Error, `cannot spawn "nobody": no node defines it`) {
		t.Errorf("spawn of an unknown name: %+v", e)
	}
	s.ok(t, 502, "POST", "/api/v1/processes", gateway.SpawnRequest{Name: "sleeper", Node: "elsewhere"}, &e)
	if !strings.Contains(e.Error, `node "elsewhere" is unreachable`) || e.Code != 502 {
		t.Errorf("spawn on a node that does not answer: %+v", e)
	}

	// List, with the filters of ps.
	var list control.ListResult
	s.ok(t, 200, "GET", "/api/v1/processes", nil, &list)
	if len(list.Processes) != 2 || len(list.Nodes) != 1 {
		t.Errorf("list = %+v", list)
	}
	s.ok(t, 200, "GET", "/api/v1/processes?node=n2", nil, &list)
	if len(list.Processes) != 0 {
		t.Errorf("list of node n2 = %+v", list.Processes)
	}
	s.ok(t, 200, "GET", "/api/v1/processes?name=sleeper&status=running", nil, &list)
	if len(list.Processes) != 2 {
		t.Errorf("list of running sleepers = %+v", list.Processes)
	}

	// One process, send, logs, stop, restart.
	var got api.ManagedProcess
	s.ok(t, 200, "GET", "/api/v1/processes/"+mp.ID, nil, &got)
	if got.ID != mp.ID || got.PID != mp.PID {
		t.Errorf("get = %+v", got)
	}
	s.ok(t, 409, "POST", "/api/v1/processes/"+mp.ID+"/send", `{"type":"pause"}`, &e) // sleep never connects
	if !strings.Contains(e.Error, "no open connection") {
		t.Errorf("send to a process without connection: %+v", e)
	}
	var logs api.LogsReply
	s.ok(t, 200, "GET", "/api/v1/processes/"+mp.ID+"/logs?lines=5", nil, &logs)
	if logs.ProcessID != mp.ID {
		t.Errorf("logs = %+v", logs)
	}
	var restarted api.ManagedProcess
	s.ok(t, 200, "POST", "/api/v1/processes/"+other.ID+"/restart", nil, &restarted)
	if restarted.ID == other.ID || restarted.Restarts != 1 {
		t.Errorf("restart = %+v", restarted)
	}
	var stopped api.ManagedProcess
	s.ok(t, 200, "POST", "/api/v1/processes/"+mp.ID+"/stop", api.StopRequest{Signal: "SIGKILL"}, &stopped)
	if stopped.Status != api.StatusStopped && stopped.Status != api.StatusCrashed {
		t.Errorf("stopped = %+v", stopped)
	}
	s.ok(t, 409, "POST", "/api/v1/processes/"+mp.ID+"/stop", nil, &e)
	s.ok(t, 404, "GET", "/api/v1/processes/proc_0000000000000000", nil, &e)
	if e.Code != 404 || !strings.Contains(e.Error, "no such process") {
		t.Errorf("get of nobody: %+v", e)
	}
	s.ok(t, 200, "GET", "/api/v1/processes?status=stopped", nil, &list)
	if len(list.Processes) != 2 { // mp, and the process the restart replaced
		t.Errorf("list of stopped = %+v", list.Processes)
	}
}

// A hostile or mistaken request gets a 4xx that says what is wrong, as
// JSON, and never reaches a node.
func TestHostileInput(t *testing.T) {
	s := startSite(t, false, gateway.Config{})
	id := "proc_0000000000000000"
	huge := `{"name":"sleeper","metadata":{"x":"` + strings.Repeat("a", 2<<20) + `"}}`
	for _, tc := range []struct {
		method, path string
		body         any
		headers      []string
		code         int
		want         string
	}{
		{"GET", "/api/v1/processes/not-an-id", nil, nil, 400, `"not-an-id" is not a process id`},
		{"GET", "/api/v1/processes?colour=red", nil, nil, 400, `unknown query parameter "colour" (expected: node, name, status, all)`},
		{"GET", "/api/v1/processes?status=happy", nil, nil, 400, `status "happy" is not one of`},
		{"GET", "/api/v1/processes?all=perhaps", nil, nil, 400, `all="perhaps" is not a boolean`},
		{"GET", "/api/v1/processes?name=a.b", nil, nil, 400, `name "a.b" is not a name`},
		{"GET", "/api/v1/processes?name=a&name=b", nil, nil, 400, `"name" is given 2 times`},
		{"GET", "/api/v1/processes?%zz", nil, nil, 400, "cannot read the query"},
		{"GET", "/api/v1/nodes?x=1", nil, nil, 400, `unknown query parameter "x" (expected: none)`},
		{"POST", "/api/v1/processes", huge, nil, 413, "larger than 1048576 bytes"},
		{"POST", "/api/v1/processes", `{"name":"sleeper"`, nil, 400, "bad request body"},
		{"POST", "/api/v1/processes", `[1,2]`, nil, 400, "expected a JSON object, got an array"},
		{"POST", "/api/v1/processes", `{"name":"sleeper","colour":"red"}`, nil, 400, `unknown field "colour"`},
		{"POST", "/api/v1/processes", `{"name":"sleeper"} {}`, nil, 400, "more after the JSON object"},
		{"POST", "/api/v1/processes", `{}`, nil, 400, "no name given"},
		{"POST", "/api/v1/processes", `{"name":"../etc"}`, nil, 400, "not a definition name"},
		{"POST", "/api/v1/processes", `{"name":"sleeper","metadata":[1]}`, nil, 400, "metadata must be a JSON object"},
		{"POST", "/api/v1/processes", `{"name":"sleeper","node":"n1","labels":{"a":"b"}}`, nil, 400, "give a node or labels, not both"},
		{"POST", "/api/v1/processes", `{"name":"sleeper"}`, []string{"Content-Type", "text/plain"}, 415, "needs Content-Type: application/json"},
		{"POST", "/api/v1/processes", `name=sleeper`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "needs Content-Type: application/json"},
		{"POST", "/api/v1/processes/" + id + "/stop", `{"signal":"SIGNOPE"}`, nil, 400, `unknown signal "SIGNOPE"`},
		{"POST", "/api/v1/processes/" + id + "/restart", `{"now":true}`, nil, 400, `unknown field "now"`},
		{"POST", "/api/v1/processes/" + id + "/send", `{not json`, nil, 400, "the body is not valid JSON"},
		{"GET", "/api/v1/processes/" + id + "/logs?lines=0", nil, nil, 400, `lines="0" is out of range`},
		{"GET", "/api/v1/processes/" + id + "/logs?lines=99999999", nil, nil, 400, "out of range (expected 1 to 10000)"},
		{"GET", "/api/v1/events?subject=corral.>", nil, nil, 400, `subject "corral.>" is not within process.>`},
		{"GET", "/api/v1/events?subject=process.a%20b", nil, nil, 400, "space or control character"},
		{"GET", "/api/v1/events?subject=process.>&subject=process.spawned", nil, nil, 400, "overlap"},
		{"GET", "/api/v1/events?" + strings.Repeat("subject=process.a&", 9), nil, nil, 400, "9 subjects: give at most 8"},
		{"GET", "/api/v1/events?since=-5m", nil, nil, 400, `since="-5m" is out of range`},
		{"GET", "/api/v1/events?since=yesterday", nil, nil, 400, "neither a duration (10m) nor a time"},
		{"GET", "/api/v1/events", nil, []string{"Last-Event-ID", "seven"}, 400, `Last-Event-ID "seven" is not an event id`},
		{"DELETE", "/api/v1/processes", nil, nil, 405, "DELETE /api/v1/processes is not an endpoint (allowed: GET, POST)"},
		{"GET", "/api/v1/nope", nil, nil, 404, "no such endpoint: /api/v1/nope"},
		{"GET", "/secret.txt", nil, nil, 404, "no such page"},
		{"POST", "/", "{}", nil, 405, "read with GET"},
		{"GET", "/api/v1/nodes", nil, []string{"Host", "evil.example.com"}, 421, `host "evil.example.com" is not this gateway's`},
	} {
		a := s.request(t, tc.method, tc.path, tc.body, tc.headers...)
		var e gateway.ErrorBody
		if a.code != tc.code || json.Unmarshal(a.body, &e) != nil || e.Code != tc.code || !strings.Contains(e.Error, tc.want) {
			t.Errorf("%s %s: %v, want %d saying %q", tc.method, tc.path, a, tc.code, tc.want)
		}
		if ct := a.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", tc.method, tc.path, ct)
		}
	}
	// Nothing was spawned by all that.
	if ps := s.node.Sup.GetAll(); len(ps) != 0 {
		t.Errorf("hostile requests spawned %v", ps)
	}
}

// Tokens: a viewer may look and not change; an operator may both; a
// stranger nothing; guessing is cut short.
func TestRoles(t *testing.T) {
	const viewer, operator = "viewer-token-0123456789", "operator-token-0123456789"
	s := startSite(t, false, gateway.Config{Tokens: []gateway.Token{
		{Token: viewer, Role: bus.RoleViewer}, {Token: operator, Role: bus.RoleOperator}}})
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	var e gateway.ErrorBody

	// Public: health, the dashboard, the description, who am I.
	s.ok(t, 200, "GET", "/healthz", nil, nil)
	s.ok(t, 200, "GET", "/", nil, nil)
	s.ok(t, 200, "GET", "/api/v1/openapi.json", nil, nil)
	var sess gateway.Session
	s.ok(t, 200, "GET", "/api/v1/session", nil, &sess)
	if sess.Role != "" || !sess.Tokens {
		t.Errorf("session without a token = %+v", sess)
	}
	// Everything else needs a token.
	for _, p := range []string{"/api/v1/nodes", "/api/v1/processes", "/metrics", "/api/v1/events"} {
		a := s.request(t, "GET", p, nil)
		if a.code != 401 || a.header.Get("WWW-Authenticate") == "" {
			t.Errorf("GET %s without a token: %v", p, a)
		}
	}
	// A viewer looks.
	s.ok(t, 200, "GET", "/api/v1/processes", nil, nil, bearer(viewer)...)
	s.ok(t, 200, "GET", "/api/v1/session", nil, &sess, bearer(viewer)...)
	if sess.Role != "viewer" {
		t.Errorf("viewer's session = %+v", sess)
	}
	// and may not change anything.
	s.ok(t, 403, "POST", "/api/v1/processes", gateway.SpawnRequest{Name: "sleeper"}, &e, bearer(viewer)...)
	if !strings.Contains(e.Error, "not permitted: a viewer may not POST /api/v1/processes (it needs the operator role)") {
		t.Errorf("viewer's spawn: %+v", e)
	}
	var mp api.ManagedProcess
	s.ok(t, 201, "POST", "/api/v1/processes", gateway.SpawnRequest{Name: "sleeper"}, &mp, bearer(operator)...)
	for _, verb := range []string{"stop", "restart", "send"} {
		s.ok(t, 403, "POST", "/api/v1/processes/"+mp.ID+"/"+verb, "{}", &e, bearer(viewer)...)
	}
	if p, ok := s.node.Sup.Get(mp.ID); !ok || p.Status != api.StatusRunning {
		t.Errorf("after a viewer's stop: %+v", p)
	}

	// The dashboard's login: a cookie, for EventSource.
	a := s.request(t, "POST", "/api/v1/session", gateway.LoginRequest{Token: viewer})
	if a.code != 200 {
		t.Fatalf("login: %v", a)
	}
	cookie := a.header.Get("Set-Cookie")
	if !strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "SameSite=Strict") {
		t.Errorf("session cookie %q", cookie)
	}
	value := strings.SplitN(cookie, ";", 2)[0]
	s.ok(t, 200, "GET", "/api/v1/processes/"+mp.ID, nil, nil, "Cookie", value)
	s.ok(t, 403, "POST", "/api/v1/processes/"+mp.ID+"/stop", nil, nil, "Cookie", value)
	s.ok(t, 200, "DELETE", "/api/v1/session", nil, nil, "Cookie", value)
	s.ok(t, 401, "GET", "/api/v1/processes/"+mp.ID, nil, nil, "Cookie", value)

	// Guessing: a wrong token is a 401, and after ten a 429 for a while,
	// even with the right one.
	for range 10 {
		s.ok(t, 401, "GET", "/api/v1/nodes", nil, &e, bearer("wrong-token-0123456789")...)
	}
	a = s.request(t, "GET", "/api/v1/nodes", nil, bearer(operator)...)
	if a.code != 429 || a.header.Get("Retry-After") == "" {
		t.Errorf("after ten wrong tokens: %v", a)
	}
	s.ok(t, 429, "POST", "/api/v1/session", gateway.LoginRequest{Token: operator}, &e)
}

// A gateway that other hosts reach refuses to start without tokens and
// TLS, unless told it may.
func TestExposure(t *testing.T) {
	n := testnode.StartOne(t)
	ctl := control.New(n.Conn)
	_, err := gateway.New(ctl, gateway.Config{Listen: "0.0.0.0:0"})
	if !errors.Is(err, gateway.ErrInsecure) || !strings.Contains(err.Error(), "add [[http.tokens]] and [http.tls]") {
		t.Errorf("open on every interface: %v", err)
	}
	_, err = gateway.New(ctl, gateway.Config{Listen: "0.0.0.0:0", Tokens: []gateway.Token{{Token: "0123456789abcdef", Role: bus.RoleViewer}}})
	if !errors.Is(err, gateway.ErrInsecure) || !strings.Contains(err.Error(), "add [http.tls]") {
		t.Errorf("tokens without TLS on every interface: %v", err)
	}
	gw, err := gateway.New(ctl, gateway.Config{Listen: "0.0.0.0:0", Insecure: true})
	if err != nil || !gw.Insecure() {
		t.Errorf("insecure = true: %v, Insecure() = %v", err, gw != nil && gw.Insecure())
	}
	if _, err := gateway.New(ctl, gateway.Config{Listen: "127.0.0.1:0", TLS: &gateway.TLS{Cert: "/nonexistent.pem", Key: "/nonexistent-key.pem"}}); err == nil ||
		!strings.Contains(err.Error(), "cannot load [http.tls] certificate") {
		t.Errorf("a missing certificate: %v", err)
	}
	// A port taken: named.
	s := startGateway(t, n, gateway.Config{})
	taken, err := gateway.New(ctl, gateway.Config{Listen: s.gw.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	if err := taken.Start(); err == nil || !strings.Contains(err.Error(), "(http.listen)") {
		t.Errorf("a port taken: %v", err)
	}
}

// The OpenAPI description lists every endpoint with its method, and the
// schemas it refers to.
func TestOpenAPI(t *testing.T) {
	s := startSite(t, false, gateway.Config{})
	var doc struct {
		OpenAPI    string                               `json:"openapi"`
		Paths      map[string]map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	a := s.request(t, "GET", "/api/v1/openapi.json", nil)
	a.decode(t, &doc)
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	for _, ep := range []string{"get /healthz", "get /readyz", "get /metrics", "get /api/v1/nodes", "get /api/v1/definitions",
		"get /api/v1/processes", "post /api/v1/processes", "get /api/v1/processes/{id}", "post /api/v1/processes/{id}/stop",
		"post /api/v1/processes/{id}/restart", "post /api/v1/processes/{id}/send", "get /api/v1/processes/{id}/logs",
		"get /api/v1/events", "get /api/v1/openapi.json", "get /api/v1/session", "post /api/v1/session", "delete /api/v1/session"} {
		method, path, _ := strings.Cut(ep, " ")
		if doc.Paths[path][method] == nil {
			t.Errorf("no %s", ep)
		}
	}
	for _, name := range []string{"ManagedProcess", "NodeInfo", "ListResult", "SpawnRequest", "ErrorBody", "LogsReply"} {
		if doc.Components.Schemas[name]["type"] != "object" {
			t.Errorf("schema %s = %v", name, doc.Components.Schemas[name])
		}
	}
	if _, ok := doc.Components.Schemas["ManagedProcess"]["properties"].(map[string]any)["status"]; !ok {
		t.Error("ManagedProcess has no status")
	}
}

// The dashboard's files are embedded, small, gzipped and locked to their
// own origin.
func TestDashboardFiles(t *testing.T) {
	s := startSite(t, false, gateway.Config{})
	total := 0
	for _, p := range []string{"/", "/app.js", "/app.css"} {
		a := s.request(t, "GET", p, nil, "Accept-Encoding", "gzip")
		if a.code != 200 || a.header.Get("Content-Encoding") != "gzip" || !strings.Contains(a.header.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("GET %s: %d %v", p, a.code, a.header)
		}
		total += len(a.body)
		if etag := a.header.Get("ETag"); etag == "" || s.request(t, "GET", p, nil, "If-None-Match", etag).code != http.StatusNotModified {
			t.Errorf("GET %s: no revalidation with ETag %q", p, etag)
		}
	}
	t.Logf("dashboard: %d bytes transferred (gzip)", total)
	if total > 300<<10 {
		t.Errorf("the dashboard is %d bytes, more than 300 KB", total)
	}
	a := s.request(t, "GET", "/", nil)
	if !strings.Contains(string(a.body), `<script src="app.js"`) || strings.Contains(string(a.body), "http") && strings.Contains(string(a.body), "cdn") {
		t.Errorf("index.html: %.300s", a.body)
	}
}

// Readiness reports every check, and what is not ready.
func TestReadyz(t *testing.T) {
	ready := true
	s := startSite(t, false, gateway.Config{Ready: func() []gateway.Check {
		return []gateway.Check{{Name: "nats", OK: true, Detail: "connected"}, {Name: "recovered", OK: ready, Detail: "recovering"}}
	}})
	var rd gateway.Readiness
	s.ok(t, 200, "GET", "/readyz", nil, &rd)
	if !rd.Ready || len(rd.Checks) != 2 || len(rd.NotReady) != 0 {
		t.Errorf("ready: %+v", rd)
	}
	ready = false
	s.ok(t, 503, "GET", "/readyz", nil, &rd)
	if rd.Ready || len(rd.NotReady) != 1 || rd.NotReady[0] != "recovered: recovering" {
		t.Errorf("not ready: %+v", rd)
	}
}

// A list of many processes is gzipped when the client takes it.
func TestLargeAnswersAreCompressed(t *testing.T) {
	s := startSite(t, false, gateway.Config{})
	ctx := testnode.Context(t)
	for range 20 {
		if _, err := s.node.Ctl.Spawn(ctx, "", "sleeper", api.SpawnRequest{Metadata: json.RawMessage(`{"padding":"` + strings.Repeat("x", 500) + `"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url+"/api/v1/processes", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("20 processes: Content-Encoding %q", resp.Header.Get("Content-Encoding"))
	}
}

// Over HTTPS with tokens, on every interface: the gateway a fabric opens
// to its operators. The session cookie is Secure there.
func TestHTTPS(t *testing.T) {
	ca := testcert.New(t)
	cert, key := ca.Issue(t, "gateway")
	const token = "operator-token-0123456789"
	n := testnode.StartOne(t)
	s := startGateway(t, n, gateway.Config{Listen: "0.0.0.0:0", TLS: &gateway.TLS{Cert: cert, Key: key},
		Tokens: []gateway.Token{{Token: token, Role: bus.RoleOperator}}})
	if s.gw.Insecure() {
		t.Error("tokens and TLS on every interface count as insecure")
	}
	pem, err := os.ReadFile(ca.Cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	_, port, _ := net.SplitHostPort(s.gw.Addr())
	base := "https://127.0.0.1:" + port
	get := func(path string, headers ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := get("/api/v1/nodes"); r.StatusCode != 401 {
		t.Errorf("without a token over HTTPS: %d", r.StatusCode)
	}
	if r := get("/api/v1/nodes", "Authorization", "Bearer "+token); r.StatusCode != 200 {
		t.Errorf("with the token over HTTPS: %d", r.StatusCode)
	}
	resp, err := client.Post(base+"/api/v1/session", "application/json", strings.NewReader(`{"token":"`+token+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if c := resp.Header.Get("Set-Cookie"); resp.StatusCode != 200 || !strings.Contains(c, "Secure") {
		t.Errorf("login over HTTPS: %d, cookie %q", resp.StatusCode, c)
	}
}
