package bus

import (
	"testing"

	"github.com/nats-io/nats.go/micro"
)

// The history's subjects take in every lifecycle subject and every child
// event, and neither heartbeats nor the general stats subject; the
// per-process stats subject is within them (its header keeps it out), and
// IsLiveOnly says which filters are heartbeats and stats alone.
func TestHistorySubjects(t *testing.T) {
	kept := func(subject string) bool {
		for _, p := range HistorySubjects() {
			if SubjectMatches(p, subject) {
				return true
			}
		}
		return false
	}
	for _, s := range []string{SubjectSpawned, SubjectConnected, SubjectReconnected, SubjectStale, SubjectStopped,
		SubjectCrashed, SubjectRestarted, SubjectRestartLimit, SubjectLimitsExceeded, SubjectWatchdogStale,
		SubjectWatchdogKilled, SubjectNodeLost, ProcessEventSubject("encoder", "progress")} {
		if !kept(s) || IsLiveOnly(s) {
			t.Errorf("%s: kept %v, live only %v; want it kept", s, kept(s), IsLiveOnly(s))
		}
	}
	for _, s := range []string{SubjectHeartbeat, SubjectStats} {
		if kept(s) || !IsLiveOnly(s) {
			t.Errorf("%s: kept %v, live only %v; want it live only", s, kept(s), IsLiveOnly(s))
		}
	}
	if s := ProcessStatsSubject("encoder"); !IsLiveOnly(s) {
		t.Errorf("%s is not live only", s)
	}
	for filter, want := range map[string]bool{"process.*.stats": true, SubjectAll: false, "process.encoder.>": false,
		"process.*.progress": false, "process.>.stats": false, "corral.x.stats": false} {
		if got := IsLiveOnly(filter); got != want {
			t.Errorf("IsLiveOnly(%s) = %v, want %v", filter, got, want)
		}
	}
}

// The micro names that clients use without linking nats.go/micro are
// micro's.
func TestMicroNames(t *testing.T) {
	ping, err := micro.ControlSubject(micro.PingVerb, ServiceName, "")
	if err != nil || SubjectPing != ping {
		t.Errorf("SubjectPing = %q, micro says %q (%v)", SubjectPing, ping, err)
	}
	if HeaderServiceError != micro.ErrorHeader || HeaderServiceErrorCode != micro.ErrorCodeHeader {
		t.Errorf("error headers %q and %q, micro's are %q and %q", HeaderServiceError, HeaderServiceErrorCode, micro.ErrorHeader, micro.ErrorCodeHeader)
	}
}

func TestProcOf(t *testing.T) {
	for subject, want := range map[string]string{
		"corral.proc.proc_abc.get": "proc_abc",
		"corral.proc.p1.stop":      "p1",
		"corral.proc.p1":           "",
		"corral.proc..get":         "",
		"corral.proc.p1.":          "",
		"corral.proc.p1.get.more":  "",
		"corral.node.p1.get":       "",
		"process.proc.p1.get":      "",
		ProcSubject("x", "get"):    "x",
	} {
		if id, ok := ProcOf(subject); id != want || ok != (want != "") {
			t.Errorf("ProcOf(%q) = %q, %v; want %q", subject, id, ok, want)
		}
	}
}
