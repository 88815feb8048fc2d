package config

import (
	"bufio"
	"os"
	"regexp"
	"strings"
	"testing"
)

// allKeys is every configuration key, by table: the [node], [nats] and
// [http] settings, and the keys of a [processes.<name>] table and of its limits
// table ("processes.*" stands for any name).
func allKeys() map[string][]string {
	out := map[string][]string{}
	for _, s := range settings {
		i := strings.LastIndexByte(s.key, '.')
		out[s.key[:i]] = append(out[s.key[:i]], s.key[i+1:])
	}
	for k := range processKeys {
		if k != "limits" && k != "events" { // tables of their own
			out["processes.*"] = append(out["processes.*"], k)
		}
	}
	for k := range limitKeys {
		out["processes.*.limits"] = append(out["processes.*.limits"], k)
	}
	out[usersKey] = append(out[usersKey], userKeys...)
	out[tokensKey] = append(out[tokensKey], tokenKeys...)
	return out
}

var (
	tableLine = regexp.MustCompile(`^#?\s*\[\[?([a-z_.]+)\]\]?\s*$`)
	keyLine   = regexp.MustCompile(`^#?\s*([a-z_]+)\s*=`)
)

// exampleKeys reads the keys config.example.toml shows, set or commented
// out, by table; [processes.x] tables count as "processes.*".
func exampleKeys(t *testing.T) map[string]map[string]bool {
	f, err := os.Open("../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[string]bool{}
	table := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := tableLine.FindStringSubmatch(line); m != nil {
			parts := strings.Split(m[1], ".")
			if parts[0] == "processes" && len(parts) > 1 {
				parts[1] = "*"
			}
			table = strings.Join(parts, ".")
			continue
		}
		if m := keyLine.FindStringSubmatch(line); m != nil {
			if out[table] == nil {
				out[table] = map[string]bool{}
			}
			out[table][m[1]] = true
		}
	}
	return out
}

// Every key the package knows is shown in config.example.toml, in its
// table, so that the file documents every key with its default.
func TestExampleShowsEveryKey(t *testing.T) {
	t.Parallel()
	shown := exampleKeys(t)
	for table, keys := range allKeys() {
		for _, k := range keys {
			if !shown[table][k] {
				t.Errorf("config.example.toml does not show %s in [%s]", k, table)
			}
		}
	}
}

// Every key the package knows is listed in the package documentation.
func TestDocListsEveryKey(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	// The "# Keys" section: a line per table, "[table]  key, key, ...",
	// continued on indented lines.
	listed := map[string]map[string]bool{}
	table := ""
	header := regexp.MustCompile(`^//\t\[\[?([a-z_.<>]+)\]\]?\s+(.*)$`)
	more := regexp.MustCompile(`^//\t\s+([a-z_, ]+)$`)
	word := regexp.MustCompile(`[a-z_]+`)
	for _, line := range strings.Split(string(b), "\n") {
		text := ""
		if m := header.FindStringSubmatch(line); m != nil {
			table = strings.ReplaceAll(m[1], "<name>", "*")
			text = m[2]
		} else if m := more.FindStringSubmatch(line); m != nil && table != "" {
			text = m[1]
		} else {
			continue
		}
		if listed[table] == nil {
			listed[table] = map[string]bool{}
		}
		for _, w := range word.FindAllString(text, -1) {
			listed[table][w] = true
		}
	}
	for table, keys := range allKeys() {
		for _, k := range keys {
			if !listed[table][k] {
				t.Errorf("doc.go does not list %s under [%s]", k, table)
			}
		}
	}
}
