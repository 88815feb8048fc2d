package bus

import (
	"fmt"
	"strings"
)

// MaxFilterLength bounds an event filter given by a stranger (an HTTP
// client): NATS subjects are short, and the server keeps each one.
const MaxFilterLength = 256

// CheckEventFilter checks a subject filter a client asks to follow: a
// subject or wildcard within process.> ("process.encoder.>",
// "process.*.complete"). Tokens are non-empty and printable, without
// spaces; "*" stands for one token and ">", last, for the rest. The error
// says what is wrong and what is expected.
func CheckEventFilter(filter string) error {
	switch {
	case filter == "":
		return fmt.Errorf("empty subject (expected %s or a subject within it, e.g. process.encoder.>)", SubjectAll)
	case len(filter) > MaxFilterLength:
		return fmt.Errorf("subject is %d bytes, more than %d", len(filter), MaxFilterLength)
	}
	tokens := strings.Split(filter, ".")
	if tokens[0] != "process" || len(tokens) < 2 {
		return fmt.Errorf("subject %q is not within %s (events are published on process.<...>)", filter, SubjectAll)
	}
	for i, tok := range tokens {
		switch {
		case tok == "":
			return fmt.Errorf("subject %q has an empty token", filter)
		case tok == ">" && i != len(tokens)-1:
			return fmt.Errorf("subject %q has \">\" before its last token", filter)
		case tok != "*" && tok != ">" && strings.ContainsAny(tok, "*>"):
			return fmt.Errorf("subject %q: a wildcard must be a whole token (%q)", filter, tok)
		}
		for _, c := range tok {
			if c <= ' ' || c == 0x7f {
				return fmt.Errorf("subject %q has a space or control character", filter)
			}
		}
	}
	return nil
}

// SubjectMatches reports whether subject (no wildcards) matches pattern,
// a subject with the NATS wildcards "*" (one token) and ">" (the rest, at
// least one token).
func SubjectMatches(pattern, subject string) bool {
	for {
		p, prest, pmore := strings.Cut(pattern, ".")
		s, srest, smore := strings.Cut(subject, ".")
		switch {
		case p == ">":
			return s != ""
		case p != "*" && p != s:
			return false
		case !pmore || !smore:
			return pmore == smore
		}
		pattern, subject = prest, srest
	}
}

// FilterWithin reports whether every subject that filter matches is
// matched by pattern too (both may have wildcards): a consumer of the
// event stream, whose subjects are patterns, gets every message of the
// filter.
func FilterWithin(filter, pattern string) bool {
	for {
		f, frest, fmore := strings.Cut(filter, ".")
		p, prest, pmore := strings.Cut(pattern, ".")
		switch {
		case p == ">":
			return true
		case f == ">":
			return false
		case p != "*" && (f == "*" || f != p):
			return false
		case !fmore || !pmore:
			return fmore == pmore
		}
		filter, pattern = frest, prest
	}
}

// SubjectsOverlap reports whether some subject matches both a and b
// (each may have wildcards).
func SubjectsOverlap(a, b string) bool {
	for {
		x, arest, amore := strings.Cut(a, ".")
		y, brest, bmore := strings.Cut(b, ".")
		switch {
		case x == ">" || y == ">":
			return true
		case x != "*" && y != "*" && x != y:
			return false
		case !amore || !bmore:
			return amore == bmore
		}
		a, b = arest, brest
	}
}
