package gateway

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/schema/schemagen"
)

// OpenAPI is the description of the gateway's endpoints (OpenAPI 3.1),
// built from the route table: the schemas are generated from the Go types
// the handlers encode and decode (schemagen), so they are what is sent.
func (g *Gateway) OpenAPI() []byte {
	g.openAPIOnce.Do(func() { g.openAPIDoc = buildOpenAPI(g.routeTable()) })
	return g.openAPIDoc
}

func (g *Gateway) openAPI(w http.ResponseWriter, r *http.Request) error {
	if _, err := query(r); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(g.OpenAPI())
	return nil
}

type openAPIState struct {
	openAPIOnce sync.Once
	openAPIDoc  []byte
}

// pathParam finds the {name} parameters of a path.
var pathParam = regexp.MustCompile(`\{([a-z]+)\}`)

func buildOpenAPI(routes []route) []byte {
	schemas := map[string]any{}
	errorRef := refType(reflect.TypeOf(ErrorBody{}), schemas)
	ref := func(v any) map[string]any {
		t := reflect.TypeOf(v)
		if t.Kind() == reflect.Slice {
			return map[string]any{"type": "array", "items": refType(t.Elem(), schemas)}
		}
		return refType(t, schemas)
	}
	paths := map[string]map[string]any{}
	for _, rt := range routes {
		op := map[string]any{"summary": rt.summary, "operationId": operationID(rt)}
		var params []any
		for _, p := range rt.query {
			if p.typ == "path" {
				continue
			}
			params = append(params, map[string]any{"name": p.name, "in": "query", "description": p.desc, "schema": map[string]any{"type": p.typ}})
		}
		for _, m := range pathParam.FindAllStringSubmatch(rt.path, -1) {
			desc := ""
			for _, p := range rt.query {
				if p.name == m[1] {
					desc = p.desc
				}
			}
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "description": desc, "schema": map[string]any{"type": "string"}})
		}
		if rt.stream && rt.path == "/api/v1/events" {
			params = append(params, map[string]any{"name": "Last-Event-ID", "in": "header",
				"description": "the id of the last event seen: the stream resumes after it", "schema": map[string]any{"type": "string"}})
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		switch {
		case rt.body != nil:
			op["requestBody"] = map[string]any{"content": map[string]any{"application/json": map[string]any{"schema": ref(rt.body)}}}
		case rt.bodyDesc != "":
			op["requestBody"] = map[string]any{"description": rt.bodyDesc, "required": true, "content": map[string]any{"application/json": map[string]any{"schema": map[string]any{}}}}
		}
		ok := map[string]any{"description": rt.summary}
		switch {
		case rt.reply != nil:
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": ref(rt.reply)}}
		case rt.replyDesc != "":
			mt, _, _ := strings.Cut(rt.replyDesc, " ")
			ok["content"] = map[string]any{strings.TrimSuffix(mt, ";"): map[string]any{"schema": map[string]any{"type": "string"}}}
		}
		if rt.stream {
			ok["content"] = map[string]any{"text/event-stream": map[string]any{"schema": map[string]any{"type": "string"}}}
		}
		responses := map[string]any{strconv.Itoa(rt.status): ok}
		errResp := func(desc string) map[string]any {
			return map[string]any{"description": desc, "content": map[string]any{"application/json": map[string]any{"schema": errorRef}}}
		}
		responses["default"] = errResp("an error: 400 bad request, 401 not signed in, 403 not permitted, 404 not found, 409 conflict, 413 body too large, 415 not JSON, 429 too many failed sign-ins, 500 internal, 502 node unreachable, 503 no capacity or too many streams, 504 timeout")
		op["responses"] = responses
		if rt.role != roleNone {
			op["security"] = []any{map[string]any{"bearer": []any{}}, map[string]any{"session": []any{}}}
			op["x-corral-role"] = rt.role.String()
		} else {
			op["security"] = []any{}
		}
		if paths[rt.path] == nil {
			paths[rt.path] = map[string]any{}
		}
		paths[rt.path][strings.ToLower(rt.method)] = op
	}
	doc := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":   "Corral HTTP gateway",
			"version": bus.Version,
			"description": "Every node's gateway shows the whole cluster. Viewers may look, operators may also spawn, stop, restart and send. " +
				"Errors are {\"error\": ..., \"code\": N}, N the HTTP status.",
		},
		"paths": paths,
		"components": map[string]any{
			"schemas": schemas,
			"securitySchemes": map[string]any{
				"bearer":  map[string]any{"type": "http", "scheme": "bearer", "description": "a token of [[http.tokens]]"},
				"session": map[string]any{"type": "apiKey", "in": "cookie", "name": sessionCookie, "description": "set by POST /api/v1/session"},
			},
		},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic("cannot encode the OpenAPI description: " + err.Error()) // maps of strings and schemas
	}
	return b
}

// refType names t's schema in schemas (generating it once) and refers to
// it.
func refType(t reflect.Type, schemas map[string]any) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	name := t.Name()
	if _, ok := schemas[name]; !ok {
		var s map[string]any
		_ = json.Unmarshal(schemagen.ForValue(reflect.New(t).Elem().Interface()), &s)
		delete(s, "$schema")
		schemas[name] = s
	}
	return map[string]any{"$ref": "#/components/schemas/" + name}
}

// operationID names an operation: its method and path in words.
func operationID(rt route) string {
	words := []string{strings.ToLower(rt.method)}
	for _, part := range strings.Split(strings.TrimPrefix(rt.path, "/api/v1"), "/") {
		part = strings.Trim(part, "{}")
		if part != "" {
			words = append(words, strings.ToUpper(part[:1])+part[1:])
		}
	}
	return strings.Join(words, "")
}
