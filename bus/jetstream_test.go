package bus_test

import (
	"testing"

	"github.com/corral-run/corral/bus"
)

func TestAutoReplicas(t *testing.T) {
	t.Parallel()
	for servers, want := range map[int]int{0: 1, 1: 1, 2: 2, 3: 3, 4: 3, 7: 3} {
		if got := bus.AutoReplicas(servers); got != want {
			t.Errorf("AutoReplicas(%d) = %d, want %d", servers, got, want)
		}
	}
}
