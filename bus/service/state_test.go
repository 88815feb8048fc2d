package service_test

import (
	"testing"
	"time"

	"github.com/corral-run/corral/internal/await"
	"github.com/corral-run/corral/internal/testnode"
)

// A service serves from Serve until Close, and knows its host once it has
// sampled it.
func TestServingAndHost(t *testing.T) {
	n := testnode.StartOne(t)
	if !n.Svc.Serving() {
		t.Error("Serving = false after Serve")
	}
	await.Until(t, 10*time.Second, "a sample of the host", func() bool { return n.Svc.Host() != nil })
	if h := n.Svc.Host(); h.MemTotalBytes == 0 {
		t.Errorf("host = %+v", h)
	}
	if err := n.Svc.Close(); err != nil {
		t.Fatal(err)
	}
	if n.Svc.Serving() {
		t.Error("Serving = true after Close")
	}
}
