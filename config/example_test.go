package config_test

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/corral-run/corral/config"
)

// The repository's example configuration, used by `make run`, loads.
func TestExampleConfig(t *testing.T) {
	t.Parallel()
	f, err := os.Open("../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := config.Parse(f, nil)
	if err != nil {
		t.Fatal(err)
	}

	var names []string
	for _, d := range c.Processes {
		names = append(names, d.Name)
	}
	if want := []string{"encoder", "ticker"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("processes = %v, want %v", names, want)
	}
	enc := c.Processes[0]
	if enc.Command != "./bin/encoder-demo" || enc.HeartbeatTimeout != 30*time.Second || enc.AutoRestart {
		t.Errorf("encoder = %+v", enc)
	}

	// Both event schemas, as JSON, with their properties and required
	// fields in the case they were written in.
	wantSchemas := map[string]struct {
		properties []string
		required   []string
	}{
		"progress": {[]string{"currentFrame", "fps", "percent"}, []string{"percent"}},
		"complete": {[]string{"duration", "outputPath"}, []string{"outputPath", "duration"}},
	}
	if len(enc.Events) != len(wantSchemas) {
		t.Errorf("encoder events = %v, want progress and complete", enc.Events)
	}
	for ev, want := range wantSchemas {
		var schema struct {
			Type       string                     `json:"type"`
			Properties map[string]json.RawMessage `json:"properties"`
			Required   []string                   `json:"required"`
		}
		if err := json.Unmarshal(enc.Events[ev], &schema); err != nil {
			t.Errorf("%s schema %q: %v", ev, enc.Events[ev], err)
			continue
		}
		var props []string
		for p := range schema.Properties {
			props = append(props, p)
		}
		if schema.Type != "object" || !sameSet(props, want.properties) || !reflect.DeepEqual(schema.Required, want.required) {
			t.Errorf("%s schema = %s\nwant properties %v, required %v", ev, enc.Events[ev], want.properties, want.required)
		}
	}

	tick := c.Processes[1]
	if tick.Command != enc.Command || !reflect.DeepEqual(tick.Args, []string{"--mode", "tick"}) {
		t.Errorf("ticker = %+v", tick)
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]bool{}
	for _, s := range a {
		seen[s] = true
	}
	for _, s := range b {
		if !seen[s] {
			return false
		}
	}
	return true
}

func ExampleParse() {
	const doc = `
[node]
id = "edge-1"
transport = "tcp"

[processes.encoder]
command = "./bin/encoder-demo"
heartbeat_timeout = "0s"   # monitoring off

[processes.encoder.events.complete]
type = "object"
required = ["outputPath"]
properties.outputPath.type = "string"
`
	env := map[string]string{"CORRAL_NATS_URL": "nats://10.0.0.1:4222"}
	c, err := config.Parse(strings.NewReader(doc), func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	enc := c.Processes[0]
	fmt.Println(c.Node.ID, c.Node.Transport, c.NATS.URL, c.NATS.Embedded())
	fmt.Println(enc.Name, enc.HeartbeatTimeout, string(enc.Events["complete"]))

	_, err = config.Parse(strings.NewReader("[processes.encoder]\ncommand = \"enc\"\nstop_timeout = \"5 seconds\""), nil)
	fmt.Println(err)
	// Output:
	// edge-1 tcp nats://10.0.0.1:4222 false
	// encoder -1ns {"properties":{"outputPath":{"type":"string"}},"required":["outputPath"],"type":"object"}
	// cannot load config: processes.encoder.stop_timeout: invalid duration "5 seconds" (expected e.g. "30s", "1m30s")
}
