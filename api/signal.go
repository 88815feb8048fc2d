package api

import (
	"strconv"
	"strings"
	"syscall"
)

var signalNames = map[string]syscall.Signal{
	"SIGTERM": syscall.SIGTERM, "SIGINT": syscall.SIGINT, "SIGKILL": syscall.SIGKILL,
	"SIGHUP": syscall.SIGHUP, "SIGQUIT": syscall.SIGQUIT, "SIGUSR1": syscall.SIGUSR1,
	"SIGUSR2": syscall.SIGUSR2, "SIGSTOP": syscall.SIGSTOP, "SIGCONT": syscall.SIGCONT,
}

// ParseSignal accepts "SIGTERM", "TERM", "term" or a number from 1 to 64.
// Anything else is an ErrInvalid error that says what was expected.
func ParseSignal(s string) (syscall.Signal, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	if !strings.HasPrefix(u, "SIG") {
		u = "SIG" + u
	}
	if sig, ok := signalNames[u]; ok {
		return sig, nil
	}
	if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), nil
	}
	return 0, Errorf(ErrInvalid, "unknown signal %q (expected a name such as SIGTERM, or a number from 1 to 64)", s)
}

// SignalName is the inverse of ParseSignal for the signals it knows by
// name, and the number for the others.
func SignalName(sig syscall.Signal) string {
	for name, s := range signalNames {
		if s == sig {
			return name
		}
	}
	return strconv.Itoa(int(sig))
}
