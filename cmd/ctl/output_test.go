package main

import (
	"strings"
	"testing"
	"time"

	"github.com/corral-run/corral/api"
)

// The STATE column of nodes: gone wins over what a gone node's last
// record says; a node cut off by a partition says it is isolated.
func TestNodesState(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		info api.NodeInfo
		want string
	}{
		{api.NodeInfo{ID: "a", Version: "1", StartedAt: now}, "alive"},
		{api.NodeInfo{ID: "b", Version: "1", StartedAt: now, Isolated: true}, "isolated"},
		{api.NodeInfo{ID: "c", Version: "1", StartedAt: now, Gone: true}, "gone"},
		{api.NodeInfo{ID: "d", Version: "1", StartedAt: now, Gone: true, Isolated: true}, "gone"},
	} {
		var b strings.Builder
		if err := printNodes(&b, []api.NodeInfo{tc.info}, now); err != nil {
			t.Fatal(err)
		}
		rs := rows(t, b.String())
		if got := rs[1][column(t, rs[0], "STATE")]; got != tc.want {
			t.Errorf("%+v: STATE %q, want %q", tc.info, got, tc.want)
		}
	}
}
