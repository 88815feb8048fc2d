package config

import (
	"errors"
	"strings"
	"testing"
)

func TestParseApply(t *testing.T) {
	a, err := ParseApply([]byte(`
[services.encoders]
process = "encoder"
instances = 6
labels = { zone = "eu" }
max_per_node = 2
metadata = { quality = "high" }

[processes.encoder]
command = "ffmpeg"
nodes = { gpu = "yes" }
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Services) != 1 || len(a.Definitions) != 1 {
		t.Fatalf("parsed %+v", a)
	}
	s := a.Services[0]
	if s.Name != "encoders" || s.Process != "encoder" || s.Instances != 6 || s.Labels["zone"] != "eu" || s.MaxPerNode != 2 ||
		string(s.Metadata) != `{"quality":"high"}` {
		t.Errorf("service %+v", s)
	}
	d := a.Definitions[0]
	if d.Definition.Name != "encoder" || d.Definition.Command != "ffmpeg" || d.Nodes["gpu"] != "yes" {
		t.Errorf("definition %+v", d)
	}
}

func TestParseApplyRefusesWithTheKeyNamed(t *testing.T) {
	for doc, want := range map[string]string{
		``:                                "nothing to apply",
		"[services.x]\ninstances = 1\n":   "services.x.process is required",
		"[services.x]\nprocess = \"p\"\n": "services.x.instances is required",
		"[services.x]\nprocess = \"p\"\ninstances = -1\n":                              "services.x.instances: -1 is out of range",
		"[services.x]\nprocess = \"p\"\ninstances = 1\nmax_per_node = 0\n":             "services.x.max_per_node",
		"[services.x]\nprocess = \"p\"\ninstances = 1\nlabels = { \"a b\" = \"c\" }\n": "invalid label key",
		"[services.x]\nprocess = \"p\"\ninstances = 1\ncolour = \"red\"\n":             `unknown key "services.x.colour"`,
		"[services.x]\nprocess = \"a.b\"\ninstances = 1\n":                             "services.x.process",
		"[processes.p]\ncommand = \"c\"\nnodes = 3\n":                                  "processes.p.nodes: must be a table",
		"[processes.p]\ncommand = \"c\"\ninstances = 1\n":                              "processes.p.instances",
		"[node]\nid = \"x\"\n": `unknown key "node"`,
		"services = 3\n":       "services: must be a table",
		"[services.x\n":        "line 1",
	} {
		_, err := ParseApply([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseApply(%q) = %v, want an error containing %q", doc, err, want)
		}
	}
	if _, err := ParseApply([]byte("[services.x]\ninstances = 1\n")); !errors.Is(err, ErrRequired) {
		t.Errorf("a missing key does not wrap ErrRequired: %v", err)
	}
}

func FuzzParseApply(f *testing.F) {
	f.Add([]byte("[services.x]\nprocess = \"p\"\ninstances = 3\nmetadata = { a = 1 }\n"))
	f.Add([]byte("[processes.p]\ncommand = \"c\"\nnodes = { z = \"1\" }\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		a, err := ParseApply(doc)
		if err != nil {
			return
		}
		for _, s := range a.Services {
			if s.Instances < 0 || s.Instances > MaxServiceInstances || s.Name == "" || s.Process == "" {
				t.Fatalf("accepted a bad service %+v", s)
			}
		}
	})
}
