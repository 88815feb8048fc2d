package schema

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
)

// Limits on the JSON numbers Validate and Compile accept. The validator
// compares numbers exactly, as big.Rat, and that costs more the longer the
// number and the larger its exponent: 1e999999 takes tens of milliseconds,
// a million-digit integer over a second, and 1e1000001 makes the validator
// panic. These limits keep every comparison in the microseconds; no float64,
// and so no number a JavaScript client sends, comes near them.
const (
	maxNumberLen      = 100
	maxNumberExponent = 400
)

// findBadNumber looks for a json.Number in v that is not a JSON number or
// is beyond the limits above, and returns its location as JSON Pointer
// tokens and why it is refused. Maps are searched in no particular order.
func findBadNumber(v any) (loc []string, reason string, found bool) {
	loc, reason, found = badNumber(v)
	slices.Reverse(loc)
	return loc, reason, found
}

// badNumber is findBadNumber with the location reversed, so that only the
// failure path appends.
func badNumber(v any) ([]string, string, bool) {
	switch v := v.(type) {
	case json.Number:
		if reason := checkNumber(string(v)); reason != "" {
			return nil, reason, true
		}
	case map[string]any:
		for k, e := range v {
			if loc, reason, ok := badNumber(e); ok {
				return append(loc, k), reason, true
			}
		}
	case []any:
		for i, e := range v {
			if loc, reason, ok := badNumber(e); ok {
				return append(loc, strconv.Itoa(i)), reason, true
			}
		}
	}
	return nil, "", false
}

// checkNumber returns why n is refused, or "" if it is not. n must follow
// the JSON grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func checkNumber(n string) string {
	if len(n) > maxNumberLen {
		return fmt.Sprintf("number %s is out of range: longer than %d characters", abbreviate(n), maxNumberLen)
	}
	i := 0
	digits := func() int {
		start := i
		for i < len(n) && n[i] >= '0' && n[i] <= '9' {
			i++
		}
		return i - start
	}
	if i < len(n) && n[i] == '-' {
		i++
	}
	if d := digits(); d == 0 || (d > 1 && n[i-d] == '0') {
		return fmt.Sprintf("%q is not a JSON number", n)
	}
	if i < len(n) && n[i] == '.' {
		i++
		if digits() == 0 {
			return fmt.Sprintf("%q is not a JSON number", n)
		}
	}
	if i < len(n) && (n[i] == 'e' || n[i] == 'E') {
		i++
		start := i
		if i < len(n) && (n[i] == '+' || n[i] == '-') {
			i++
		}
		if digits() == 0 {
			return fmt.Sprintf("%q is not a JSON number", n)
		}
		// An exponent too long for an int64 comes back as ±MaxInt64:
		// refused as well.
		if e, _ := strconv.ParseInt(n[start:i], 10, 64); e < -maxNumberExponent || e > maxNumberExponent {
			return fmt.Sprintf("number %s is out of range: exponent beyond ±%d", n, maxNumberExponent)
		}
	}
	if i != len(n) {
		return fmt.Sprintf("%q is not a JSON number", n)
	}
	return ""
}

// abbreviate shortens a long number for a message.
func abbreviate(n string) string {
	const keep = 20
	if len(n) <= keep {
		return n
	}
	return n[:keep] + "…"
}
