package bus_test

import (
	"strings"
	"testing"

	"github.com/corral-run/corral/bus"
)

func TestCheckEventFilter(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"process.>", "process.encoder.>", "process.*.complete", "process.spawned", "process.a-b_c.x"} {
		if err := bus.CheckEventFilter(ok); err != nil {
			t.Errorf("CheckEventFilter(%q): %v", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"":                                    "empty subject",
		">":                                   "not within process.>",
		"corral.>":                            "not within process.>",
		"process":                             "not within process.>",
		"process..x":                          "empty token",
		"process.>.x":                         "before its last token",
		"process.enc*":                        "whole token",
		"process.a b":                         "space",
		"process.a\nb":                        "control character",
		"process." + strings.Repeat("x", 300): "more than 256",
	} {
		if err := bus.CheckEventFilter(bad); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckEventFilter(%q) = %v, want %q", bad, err, want)
		}
	}
}

func TestSubjectMatches(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, subject string
		want             bool
	}{
		{"process.>", "process.spawned", true},
		{"process.>", "process.enc.progress", true},
		{"process.>", "process", false},
		{"process.*", "process.spawned", true},
		{"process.*", "process.enc.progress", false},
		{"process.*.progress", "process.enc.progress", true},
		{"process.*.progress", "process.enc.complete", false},
		{"process.spawned", "process.spawned", true},
		{"process.spawned", "process.spawned.x", false},
		{"process.spawned.x", "process.spawned", false},
		{">", "anything.at.all", true},
	} {
		if got := bus.SubjectMatches(tc.pattern, tc.subject); got != tc.want {
			t.Errorf("SubjectMatches(%q, %q) = %v", tc.pattern, tc.subject, got)
		}
	}
}

func TestFilterWithin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		filter, pattern string
		want            bool
	}{
		{"process.>", "process.>", true},
		{"process.enc.>", "process.>", true},
		{"process.>", "process.*.*", false},
		{"process.*.progress", "process.*.*", true},
		{"process.*.progress", "process.enc.progress", false},
		{"process.enc.progress", "process.*.progress", true},
		{"process.spawned", "process.*", true},
		{"process.enc.>", "process.*.*", false},
		{"process.a", "process.a.b", false},
	} {
		if got := bus.FilterWithin(tc.filter, tc.pattern); got != tc.want {
			t.Errorf("FilterWithin(%q, %q) = %v", tc.filter, tc.pattern, got)
		}
	}
}

func TestSubjectsOverlap(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"process.>", "process.spawned", true},
		{"process.*.x", "process.a.*", true},
		{"process.a.x", "process.b.x", false},
		{"process.stats", "process.*.stats", false},
		{"process.*", "process.stats", true},
		{"process.a", "process.a.b", false},
		{"process.a.>", "process.a", false},
	} {
		if got := bus.SubjectsOverlap(tc.a, tc.b); got != tc.want {
			t.Errorf("SubjectsOverlap(%q, %q) = %v", tc.a, tc.b, got)
		}
		if got := bus.SubjectsOverlap(tc.b, tc.a); got != tc.want {
			t.Errorf("SubjectsOverlap(%q, %q) = %v", tc.b, tc.a, got)
		}
	}
}

func FuzzCheckEventFilter(f *testing.F) {
	for _, s := range []string{"process.>", "process.*.x", "process..", "x"} {
		f.Add(s, "process.a.b")
	}
	f.Fuzz(func(t *testing.T, filter, subject string) {
		if bus.CheckEventFilter(filter) != nil {
			return
		}
		// A filter within process.> matches only process subjects.
		if bus.SubjectMatches(filter, subject) && !strings.HasPrefix(subject, "process.") {
			t.Errorf("%q matches %q", filter, subject)
		}
		if !bus.FilterWithin(filter, bus.SubjectAll) {
			t.Errorf("%q is not within %s", filter, bus.SubjectAll)
		}
	})
}
