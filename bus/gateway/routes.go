package gateway

import (
	"net/http"
	"slices"
	"strings"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus/control"
)

// route is one endpoint: what serves it, who may call it, and what the
// OpenAPI description says of it. The same table registers the handlers
// and writes the description, so they cannot drift apart.
type route struct {
	method, path string // path as net/http patterns write it: /api/v1/processes/{id}
	role         role   // the least role that may call it; roleNone: anyone
	summary      string
	query        []param
	body         any // the request body's type; nil: none
	bodyDesc     string
	reply        any // the answer's type (a JSON body); nil: see replyDesc
	replyDesc    string
	status       int  // on success
	stream       bool // answers text/event-stream
	handle       func(w http.ResponseWriter, r *http.Request) error
}

// param is a query parameter.
type param struct {
	name, typ, desc string
}

// routeTable is every endpoint of the gateway.
func (g *Gateway) routeTable() []route {
	id := param{"id", "path", "the process id (proc_ and 16 characters)"}
	return []route{
		{method: "GET", path: "/healthz", summary: "The process is up.", reply: Health{}, status: 200, handle: g.healthz},
		{method: "GET", path: "/readyz", summary: "The node is ready: NATS connected, control service registered, state recovered (503 and what is not, otherwise).",
			reply: Readiness{}, status: 200, handle: g.readyz},
		{method: "GET", path: "/metrics", role: roleViewer, summary: "Prometheus metrics of this node (text exposition format).",
			replyDesc: "text/plain; version=0.0.4", status: 200, handle: g.metrics},
		{method: "GET", path: "/api/v1/openapi.json", summary: "This description.", replyDesc: "application/json (OpenAPI 3.1)", status: 200, handle: g.openAPI},
		{method: "GET", path: "/api/v1/session", summary: "Who the caller is: its role, whether the gateway asks for a token, the node.",
			reply: Session{}, status: 200, handle: g.session},
		{method: "POST", path: "/api/v1/session", summary: "Sign in with a token: sets the session cookie the dashboard and EventSource use.",
			body: LoginRequest{}, reply: Session{}, status: 200, handle: g.login},
		{method: "DELETE", path: "/api/v1/session", summary: "Sign out: forgets the session.", reply: Session{}, status: 200, handle: g.logout},
		{method: "GET", path: "/api/v1/nodes", role: roleViewer, summary: "Every node of the cluster: those that answer, and those that are gone.",
			reply: []api.NodeInfo{}, status: 200, handle: g.nodes},
		{method: "GET", path: "/api/v1/definitions", role: roleViewer, summary: "Every node's definitions (what a spawn may name).",
			reply: []api.DefinitionsReply{}, status: 200, handle: g.definitions},
		{method: "GET", path: "/api/v1/processes", role: roleViewer, summary: "The processes of every node (the filters of corralctl ps).",
			query: []param{
				{"node", "string", "only the processes of this node"},
				{"name", "string", "only the processes of this definition"},
				{"status", "string", "only the processes in this status: running, stopping, stopped, crashed or unknown (a finished status implies all)"},
				{"all", "boolean", "include the processes that have ended (1 or true)"},
			}, reply: control.ListResult{}, status: 200, handle: g.processes},
		{method: "POST", path: "/api/v1/processes", role: roleOperator, summary: "Spawn a process: on a node, on a node with labels, or on any node that defines the name.",
			body: SpawnRequest{}, reply: api.ManagedProcess{}, status: 201, handle: g.spawn},
		{method: "GET", path: "/api/v1/processes/{id}", role: roleViewer, summary: "One process, from the node that owns it.",
			query: []param{id}, reply: api.ManagedProcess{}, status: 200, handle: g.process},
		{method: "POST", path: "/api/v1/processes/{id}/stop", role: roleOperator, summary: "Stop a process (its definition's signal, or the one given) and answer once it has exited.",
			query: []param{id}, body: api.StopRequest{}, reply: api.ManagedProcess{}, status: 200, handle: g.stop},
		{method: "POST", path: "/api/v1/processes/{id}/restart", role: roleOperator, summary: "Restart a process: the answer is the new one.",
			query: []param{id}, reply: api.ManagedProcess{}, status: 200, handle: g.restart},
		{method: "POST", path: "/api/v1/processes/{id}/send", role: roleOperator, summary: "Send a JSON value to a process: its client's OnMessage gets it.",
			query: []param{id}, bodyDesc: "any JSON value", reply: api.OK{}, status: 200, handle: g.send},
		{method: "GET", path: "/api/v1/processes/{id}/logs", role: roleViewer,
			summary: "The last lines of a process's output, or with follow=1 the lines as it writes them (text/event-stream: event log, data the lines; event end when it has ended).",
			query:   []param{id, {"lines", "integer", "how many lines (1 to 10000, default 100)"}, {"follow", "boolean", "follow as SSE (1 or true)"}},
			reply:   api.LogsReply{}, status: 200, handle: g.logs},
		{method: "GET", path: "/api/v1/events", role: roleViewer, stream: true,
			summary: "Events as server-sent events: event the subject, data the payload, id the stream sequence of a stored event. " +
				"Resumes after the Last-Event-ID header (what EventSource sends when it reconnects) without gap or duplicate.",
			query: []param{
				{"subject", "string", "a subject filter within process.> (default process.>); up to 8, which may not overlap"},
				{"since", "string", "replay what was stored since then first: a duration (10m) or a time (RFC 3339)"},
			}, replyDesc: "text/event-stream", status: 200, handle: g.events},
	}
}

// routes returns the gateway's handler: the route table, the dashboard
// at /, and JSON errors for everything else.
func (g *Gateway) routes() http.Handler {
	mux := http.NewServeMux()
	byPath := map[string][]route{}
	var paths []string
	for _, rt := range g.routeTable() {
		if byPath[rt.path] == nil {
			paths = append(paths, rt.path)
		}
		byPath[rt.path] = append(byPath[rt.path], rt)
	}
	for _, p := range paths {
		mux.Handle(p, g.endpoint(byPath[p]))
	}
	mux.Handle("/api/", g.endpoint(nil))
	mux.Handle("/", g.dashboard())
	return g.secure(mux)
}

// endpoint serves the routes of one path, by method.
func (g *Gateway) endpoint(rts []route) http.Handler {
	var allowed []string
	for _, rt := range rts {
		allowed = append(allowed, rt.method)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := slices.IndexFunc(rts, func(rt route) bool { return rt.method == r.Method })
		switch {
		case len(rts) == 0:
			writeError(w, r, errorf(http.StatusNotFound, "no such endpoint: %s (see /api/v1/openapi.json)", r.URL.Path))
			return
		case i < 0:
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			writeError(w, r, errorf(http.StatusMethodNotAllowed, "%s %s is not an endpoint (allowed: %s)", r.Method, r.URL.Path, strings.Join(allowed, ", ")))
			return
		}
		rt := rts[i]
		if err := g.authorize(w, r, rt); err != nil {
			writeError(w, r, err)
			return
		}
		if err := rt.handle(w, r); err != nil {
			writeError(w, r, err)
		}
	})
}

// authorize lets a request through to rt, or says why not.
func (g *Gateway) authorize(w http.ResponseWriter, r *http.Request, rt route) error {
	if r.Method != http.MethodGet && !jsonContent(r) {
		return errorf(http.StatusUnsupportedMediaType, "%s %s needs Content-Type: application/json", r.Method, r.URL.Path)
	}
	if rt.role == roleNone {
		return nil
	}
	res := g.auth.check(r)
	switch {
	case res.limited:
		w.Header().Set("Retry-After", "60")
		return errorf(http.StatusTooManyRequests, "too many failed sign-ins from %s: try again in a minute", remoteHost(r))
	case res.failed:
		w.Header().Set("WWW-Authenticate", `Bearer realm="corral"`)
		return errorf(http.StatusUnauthorized, "the token is not valid")
	case res.role == roleNone:
		w.Header().Set("WWW-Authenticate", `Bearer realm="corral"`)
		return errorf(http.StatusUnauthorized, "sign in: send Authorization: Bearer <token>, or sign in on the dashboard")
	case res.role < rt.role:
		return errorf(http.StatusForbidden, "not permitted: a %s may not %s %s (it needs the %s role)", res.role, r.Method, r.URL.Path, rt.role)
	}
	return nil
}

// secure adds the headers every answer carries and refuses a request to a
// loopback listener that names another host.
func (g *Gateway) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if g.loopback && !allowedHost(r) {
			writeError(w, r, errorf(http.StatusMisdirectedRequest, "host %q is not this gateway's: it listens on loopback (use localhost or 127.0.0.1)", r.Host))
			return
		}
		next.ServeHTTP(w, r)
	})
}
