package embedded_test

import (
	"testing"

	"github.com/corral-run/corral/bus/embedded"
)

func TestClusterMembers(t *testing.T) {
	t.Parallel()
	three := []string{"nats://10.0.0.1:6222", "nats://10.0.0.2:6222", "nats://10.0.0.3:6222"}
	tests := []struct {
		name string
		cfg  embedded.ClusterConfig
		want int
	}{
		{"not clustered", embedded.ClusterConfig{Routes: three}, 1},
		{"seed member", embedded.ClusterConfig{Listen: "0.0.0.0:6222"}, 1},
		{"lists itself", embedded.ClusterConfig{Listen: "10.0.0.1:6222", Routes: three}, 3},
		{"lists the others only", embedded.ClusterConfig{Listen: "10.0.0.1:6222", Routes: three[1:]}, 3},
		{"duplicates", embedded.ClusterConfig{Listen: "10.0.0.1:6222", Routes: append(three[1:], "nats://10.0.0.2:6222", "nats-route://10.0.0.3:6222")}, 3},
		{"one other", embedded.ClusterConfig{Listen: "10.0.0.1:6222", Routes: three[1:2]}, 2},
		{"loopback, one machine", embedded.ClusterConfig{Listen: "127.0.0.1:6222",
			Routes: []string{"nats://127.0.0.1:6222", "nats://127.0.0.1:6223", "nats://127.0.0.1:6224"}}, 3},
		{"every interface, itself on loopback", embedded.ClusterConfig{Listen: "0.0.0.0:6222",
			Routes: []string{"nats://127.0.0.1:6222", "nats://10.9.9.9:6222"}}, 2},
		{"every interface, itself as localhost", embedded.ClusterConfig{Listen: ":6222",
			Routes: []string{"nats://localhost:6222", "nats://10.9.9.9:6222", "nats://10.9.9.8:6222"}}, 3},
		{"same port elsewhere", embedded.ClusterConfig{Listen: "10.0.0.1:6222", Routes: []string{"nats://127.0.0.1:6222"}}, 2},
	}
	for _, tt := range tests {
		if got := tt.cfg.Members(); got != tt.want {
			t.Errorf("%s: Members() = %d, want %d", tt.name, got, tt.want)
		}
	}
}
