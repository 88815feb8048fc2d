//go:build !linux

package node

import (
	"errors"
	"net"
)

// peerPID needs Linux (SO_PEERCRED, /proc/net/tcp): elsewhere no
// connection can be told to be a child's, and all are refused.
func (s *Supervisor) peerPID(net.Conn, *process) (int, error) {
	return 0, errors.New("cannot tell which process connected: the node needs Linux for that")
}
