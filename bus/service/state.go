package service

import "github.com/corral-run/corral/api"

// What the node's HTTP gateway and metrics read of the service.

// Serving reports whether the control service is registered and
// answering: from Serve until Close.
func (s *Service) Serving() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.svc != nil && !s.closed
}

// Host is the node's host as last sampled (its CPU and memory), nil
// before the first heartbeat.
func (s *Service) Host() *api.HostStats { return s.presence.Host() }
