package config

import (
	"reflect"
	"strings"
	"unicode"
)

// Reload (corralctl reload, SIGHUP) applies the [processes] tables of a
// re-read configuration and nothing else: every other key is read once, at
// start.

// NeedsRestart lists the keys of [node] and [nats] whose values differ
// between old and new ("node.heartbeat_interval", "nats.cluster"): a
// reload cannot apply them, the node must restart for them.
func NeedsRestart(old, new *Config) []string {
	var out []string
	out = append(out, changedFields("node", reflect.ValueOf(old.Node), reflect.ValueOf(new.Node))...)
	out = append(out, changedFields("nats", reflect.ValueOf(old.NATS), reflect.ValueOf(new.NATS))...)
	out = append(out, changedFields("http", reflect.ValueOf(old.HTTP), reflect.ValueOf(new.HTTP))...)
	return out
}

// fieldKeys names the fields whose key is not their name in snake case;
// "" marks a field that is derived from others, not a key.
var fieldKeys = map[string]string{
	"JetStreamDir": "",
	"JetStream":    "jetstream",
	"WebSocket":    "websocket",
	"Client":       "creds, nkey, user, password, token",
}

func changedFields(table string, a, b reflect.Value) []string {
	var out []string
	for i := range a.NumField() {
		f := a.Type().Field(i)
		key, ok := fieldKeys[f.Name]
		if !ok {
			key = snakeCase(f.Name)
		}
		if key == "" || reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			continue
		}
		out = append(out, table+"."+key)
	}
	return out
}

// snakeCase turns a Go field name into its key: HeartbeatInterval →
// heartbeat_interval, ID → id, TLS → tls, URL → url.
func snakeCase(name string) string {
	var b strings.Builder
	runes := []rune(name)
	for i, r := range runes {
		if unicode.IsUpper(r) && i > 0 && (unicode.IsLower(runes[i-1]) || i+1 < len(runes) && unicode.IsLower(runes[i+1])) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}
