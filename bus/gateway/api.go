package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus/control"
)

// The JSON endpoints: each calls the control client, as corralctl does,
// and answers in the shape of the NATS reply.

// Health is the answer of /healthz.
type Health struct {
	Status string `json:"status"`
	Node   string `json:"node"`
}

// Readiness is the answer of /readyz.
type Readiness struct {
	Ready  bool    `json:"ready"`
	Node   string  `json:"node"`
	Checks []Check `json:"checks"`
	// NotReady names what is not ready, with why.
	NotReady []string `json:"notReady,omitempty"`
}

// Session says who the caller is.
type Session struct {
	// Role is viewer or operator, or empty for a caller that has not
	// signed in.
	Role string `json:"role" jsonschema:"enum=,enum=viewer,enum=operator"`
	// Tokens says whether the gateway asks for a token (without tokens
	// everyone is an operator).
	Tokens bool   `json:"tokens"`
	Node   string `json:"node"`
}

// LoginRequest signs in with a token.
type LoginRequest struct {
	Token string `json:"token"`
}

// SpawnRequest is the body of POST /api/v1/processes: what corralctl
// spawn takes. Node and Labels choose where (not both); neither: any node
// that defines Name.
type SpawnRequest struct {
	Name     string            `json:"name"`
	Metadata json.RawMessage   `json:"metadata,omitempty" jsonschema:"type=object"`
	Env      map[string]string `json:"env,omitempty"`
	Cwd      string            `json:"cwd,omitempty"`
	Node     string            `json:"node,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
}

// exitWait bounds a request that waits for a process to exit (stop,
// restart): its definition's stop timeout, and the node's own limit of
// 30 s.
const exitWait = 40 * time.Second

func (g *Gateway) healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, r, http.StatusOK, Health{Status: "ok", Node: g.cfg.NodeID})
	return nil
}

func (g *Gateway) readyz(w http.ResponseWriter, r *http.Request) error {
	rd := Readiness{Ready: true, Node: g.cfg.NodeID, Checks: []Check{}}
	if g.cfg.Ready != nil {
		rd.Checks = g.cfg.Ready()
	}
	for _, c := range rd.Checks {
		if !c.OK {
			rd.Ready = false
			rd.NotReady = append(rd.NotReady, c.Name+": "+c.Detail)
		}
	}
	code := http.StatusOK
	if !rd.Ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, r, code, rd)
	return nil
}

func (g *Gateway) metrics(w http.ResponseWriter, r *http.Request) error {
	if g.cfg.Metrics == nil {
		return errorf(http.StatusNotFound, "this gateway serves no metrics")
	}
	g.cfg.Metrics.ServeHTTP(w, r)
	return nil
}

func (g *Gateway) session(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, r, http.StatusOK, Session{Role: g.auth.check(r).role.String(), Tokens: !g.auth.open, Node: g.cfg.NodeID})
	return nil
}

func (g *Gateway) login(w http.ResponseWriter, r *http.Request) error {
	var req LoginRequest
	if err := decodeBody(w, r, "cannot sign in", &req); err != nil {
		return err
	}
	if g.auth.open {
		writeJSON(w, r, http.StatusOK, Session{Role: roleOperator.String(), Node: g.cfg.NodeID})
		return nil
	}
	cookie, role, res := g.auth.login(r, req.Token)
	switch {
	case res.limited:
		w.Header().Set("Retry-After", "60")
		return errorf(http.StatusTooManyRequests, "too many failed sign-ins from %s: try again in a minute", remoteHost(r))
	case res.failed:
		return errorf(http.StatusUnauthorized, "cannot sign in: the token is not valid")
	}
	http.SetCookie(w, cookie)
	writeJSON(w, r, http.StatusOK, Session{Role: role.String(), Tokens: true, Node: g.cfg.NodeID})
	return nil
}

func (g *Gateway) logout(w http.ResponseWriter, r *http.Request) error {
	http.SetCookie(w, g.auth.logout(r))
	role := ""
	if g.auth.open {
		role = roleOperator.String()
	}
	writeJSON(w, r, http.StatusOK, Session{Role: role, Tokens: !g.auth.open, Node: g.cfg.NodeID})
	return nil
}

func (g *Gateway) nodes(w http.ResponseWriter, r *http.Request) error {
	if _, err := query(r); err != nil {
		return err
	}
	nodes, err := g.ctl.Nodes(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, nodes)
	return nil
}

func (g *Gateway) definitions(w http.ResponseWriter, r *http.Request) error {
	if _, err := query(r); err != nil {
		return err
	}
	defs, err := g.ctl.Definitions(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, defs)
	return nil
}

// statuses are what the status filter takes (corralctl ps --status).
var statuses = []api.Status{api.StatusRunning, api.StatusStopping, api.StatusStopped, api.StatusCrashed, api.StatusUnknown}

func (g *Gateway) processes(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "node", "name", "status", "all")
	if err != nil {
		return err
	}
	req := api.ListRequest{Name: q.Get("name")}
	if req.All, err = boolParam(q, "all"); err != nil {
		return err
	}
	node, status := q.Get("node"), api.Status(q.Get("status"))
	for _, tok := range []struct{ what, v string }{{"node", node}, {"name", req.Name}} {
		if tok.v != "" && !api.ValidToken(tok.v) {
			return errorf(http.StatusBadRequest, "%s %q is not a name (1 to 64 characters of A-Z a-z 0-9 _ -)", tok.what, tok.v)
		}
	}
	if status != "" {
		if !slices.Contains(statuses, status) {
			return errorf(http.StatusBadRequest, "status %q is not one of running, stopping, stopped, crashed, unknown", status)
		}
		if status.Finished() {
			req.All = true
		}
	}
	res, err := g.ctl.List(r.Context(), req)
	if err != nil {
		return err
	}
	kept := res.Processes[:0]
	for _, p := range res.Processes {
		if (node == "" || p.Node == node) && (status == "" || p.Status == status) {
			kept = append(kept, p)
		}
	}
	res.Processes = kept
	writeJSON(w, r, http.StatusOK, res)
	return nil
}

func (g *Gateway) spawn(w http.ResponseWriter, r *http.Request) error {
	var req SpawnRequest
	if err := decodeBody(w, r, "cannot spawn", &req); err != nil {
		return err
	}
	switch {
	case req.Name == "":
		return errorf(http.StatusBadRequest, "cannot spawn: no name given (the definition to spawn)")
	case !api.ValidToken(req.Name):
		return errorf(http.StatusBadRequest, "cannot spawn %q: not a definition name (1 to 64 characters of A-Z a-z 0-9 _ -)", req.Name)
	case req.Node != "" && !api.ValidToken(req.Node):
		return errorf(http.StatusBadRequest, "cannot spawn %q: node %q is not a node id", req.Name, req.Node)
	}
	mp, err := g.ctl.SpawnAt(r.Context(), req.Name, control.Placement{Node: req.Node, Labels: req.Labels},
		api.SpawnRequest{Metadata: req.Metadata, Env: req.Env, Cwd: req.Cwd})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/processes/"+mp.ID)
	writeJSON(w, r, http.StatusCreated, mp)
	return nil
}

// processID reads the {id} of the path: a process id, or a 400.
func processID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !api.IsID(id) {
		return "", errorf(http.StatusBadRequest, "%q is not a process id (proc_ and 16 characters of a-z 0-9)", id)
	}
	return id, nil
}

func (g *Gateway) process(w http.ResponseWriter, r *http.Request) error {
	id, err := processID(r)
	if err != nil {
		return err
	}
	if _, err := query(r); err != nil {
		return err
	}
	mp, err := g.ctl.Get(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, mp)
	return nil
}

func (g *Gateway) stop(w http.ResponseWriter, r *http.Request) error {
	id, err := processID(r)
	if err != nil {
		return err
	}
	var req api.StopRequest
	if err := decodeBody(w, r, "cannot stop "+strconv.Quote(id), &req); err != nil {
		return err
	}
	if req.Signal != "" {
		if _, err := api.ParseSignal(req.Signal); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), exitWait)
	defer cancel()
	mp, err := g.ctl.Stop(ctx, id, req.Signal)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, mp)
	return nil
}

func (g *Gateway) restart(w http.ResponseWriter, r *http.Request) error {
	id, err := processID(r)
	if err != nil {
		return err
	}
	if err := decodeBody(w, r, "cannot restart "+strconv.Quote(id), &struct{}{}); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), exitWait)
	defer cancel()
	mp, err := g.ctl.Restart(ctx, id)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, mp)
	return nil
}

func (g *Gateway) send(w http.ResponseWriter, r *http.Request) error {
	id, err := processID(r)
	if err != nil {
		return err
	}
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	if !json.Valid(body) {
		return errorf(http.StatusBadRequest, "cannot send to %q: the body is not valid JSON", id)
	}
	if err := g.ctl.Send(r.Context(), id, body); err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, api.OK{OK: true})
	return nil
}

// query returns the request's query parameters, refusing any not in
// allowed and any given twice (multi lists those that may repeat).
func query(r *http.Request, allowed ...string) (url.Values, error) {
	return queryMulti(r, nil, allowed...)
}

func queryMulti(r *http.Request, multi []string, allowed ...string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "cannot read the query: %v", err)
	}
	var unknown []string
	for k, vs := range q {
		switch {
		case !slices.Contains(allowed, k):
			unknown = append(unknown, k)
		case len(vs) > 1 && !slices.Contains(multi, k):
			return nil, errorf(http.StatusBadRequest, "query parameter %q is given %d times (give it once)", k, len(vs))
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		expected := "none"
		if len(allowed) > 0 {
			expected = strings.Join(allowed, ", ")
		}
		return nil, errorf(http.StatusBadRequest, "unknown query parameter %s (expected: %s)", strings.Join(quoteAll(unknown), ", "), expected)
	}
	return q, nil
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strconv.Quote(s)
	}
	return out
}

// boolParam reads a boolean parameter: absent is false; 1, true, 0,
// false (strconv.ParseBool) otherwise.
func boolParam(q url.Values, name string) (bool, error) {
	v := q.Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errorf(http.StatusBadRequest, "%s=%q is not a boolean (expected 1, true, 0 or false)", name, v)
	}
	return b, nil
}
