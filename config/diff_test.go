package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestNeedsRestartNamesRealKeys(t *testing.T) {
	keys := allKeys()
	isKey := func(k string) bool {
		i := strings.LastIndexByte(k, '.')
		table, name := k[:i], k[i+1:]
		if slices.Contains(keys[table], name) {
			return true
		}
		_, isTable := keys[k] // [nats.cluster], [nats.tls], [node.labels]…
		return isTable || k == "node.labels" || k == usersKey
	}
	for _, table := range []struct {
		name string
		typ  reflect.Type
	}{{"node", reflect.TypeFor[NodeConfig]()}, {"nats", reflect.TypeFor[NATSConfig]()}, {"http", reflect.TypeFor[HTTPConfig]()}} {
		for i := range table.typ.NumField() {
			f := table.typ.Field(i)
			key, ok := fieldKeys[f.Name]
			if !ok {
				key = snakeCase(f.Name)
			}
			if key == "" || strings.Contains(key, ",") {
				continue
			}
			if !isKey(table.name + "." + key) {
				t.Errorf("field %s.%s would be reported as %s.%s, which is no key", table.name, f.Name, table.name, key)
			}
		}
	}
}

func TestNeedsRestartListsChangedSettingsOnly(t *testing.T) {
	old, err := Parse(strings.NewReader("[node]\nheartbeat_interval = \"2s\"\n[processes.a]\ncommand = \"/bin/true\"\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	new, err := Parse(strings.NewReader("[node]\nheartbeat_interval = \"3s\"\nlabels = { zone = \"eu\" }\n[nats]\nlisten = \"127.0.0.1:4333\"\n[processes.b]\ncommand = \"/bin/true\"\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := NeedsRestart(old, new)
	want := []string{"node.heartbeat_interval", "node.labels", "nats.listen"}
	if !slices.Equal(got, want) {
		t.Errorf("NeedsRestart = %v, want %v", got, want)
	}
	if got := NeedsRestart(old, old); len(got) != 0 {
		t.Errorf("NeedsRestart of the same config = %v", got)
	}
}
