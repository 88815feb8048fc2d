package config

import (
	"fmt"
	"strings"

	"github.com/corral-run/corral/api"
)

// labelsKey is the [node.labels] table: the node's labels, which spawn
// placement (corralctl spawn --label k=v) matches. It is a table of its
// own, so it is read here rather than as one of the settings.
const labelsKey = "node.labels"

// parseLabels reads [node.labels] from the file, or CORRAL_NODE_LABELS
// ("k=v,k2=v2"), which replaces the file's labels as a whole. Keys and
// values must be subject tokens ([A-Za-z0-9_-]{1,64}), so that they can
// travel in subjects, KV keys and service metadata unchanged. No labels
// gives nil.
func parseLabels(table any, lookupEnv func(string) (string, bool)) (map[string]string, error) {
	if val, ok := lookupEnv(EnvName(labelsKey)); ok && strings.TrimSpace(val) != "" {
		labels, err := parseLabelList(val)
		if err != nil {
			return nil, &KeyError{Key: labelsKey, Env: EnvName(labelsKey), Err: err}
		}
		return labels, nil
	}
	return labelTable(labelsKey, table)
}

// labelTable reads a table of labels at key (nil when absent or empty).
func labelTable(key string, table any) (map[string]string, error) {
	if table == nil {
		return nil, nil
	}
	t, ok := table.(map[string]any)
	if !ok {
		return nil, &KeyError{Key: key, Err: fmt.Errorf("must be a table of strings, got %s", tomlType(table))}
	}
	if len(t) == 0 {
		return nil, nil
	}
	labels := make(map[string]string, len(t))
	for _, k := range sortedKeys(t) {
		v, ok := t[k].(string)
		if !ok {
			return nil, &KeyError{Key: key + "." + k, Err: fmt.Errorf("must be a string, got %s", tomlType(t[k]))}
		}
		if err := checkLabel(k, v); err != nil {
			return nil, &KeyError{Key: key + "." + k, Err: err}
		}
		labels[k] = v
	}
	return labels, nil
}

// parseLabelList reads labels written as "k=v,k2=v2" (the form of
// CORRAL_NODE_LABELS), each key and value a subject token. Spaces around
// the pairs are ignored; a key given twice is refused.
func parseLabelList(s string) (map[string]string, error) {
	labels := map[string]string{}
	for pair := range strings.SplitSeq(s, ",") {
		pair = strings.TrimSpace(pair)
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			return nil, fmt.Errorf("invalid label %q (expected key=value)", pair)
		}
		if err := checkLabel(k, v); err != nil {
			return nil, err
		}
		if _, dup := labels[k]; dup {
			return nil, fmt.Errorf("label %q given twice", k)
		}
		labels[k] = v
	}
	return labels, nil
}

// checkLabel refuses a label key or value that is not a subject token.
func checkLabel(k, v string) error {
	if !api.ValidToken(k) {
		return fmt.Errorf("invalid label key %q: must be 1 to 64 characters of A-Z a-z 0-9 _ -", k)
	}
	if !api.ValidToken(v) {
		return fmt.Errorf("invalid value %q of label %q: must be 1 to 64 characters of A-Z a-z 0-9 _ -", v, k)
	}
	return nil
}
