package gateway

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/corral-run/corral/bus"
)

// Who may do what: a request's role comes from its bearer token, or from
// the session cookie the dashboard's login sets, or, on a gateway without
// tokens, is operator for everyone. A route needs at least viewer (look)
// or operator (change); a few need nothing (health, the dashboard's files,
// the OpenAPI description, signing in).

// role is what a request may do, in increasing order.
type role int

const (
	roleNone role = iota
	roleViewer
	roleOperator
)

func (r role) String() string {
	switch r {
	case roleViewer:
		return string(bus.RoleViewer)
	case roleOperator:
		return string(bus.RoleOperator)
	}
	return ""
}

func roleOf(r bus.Role) role {
	switch r {
	case bus.RoleViewer:
		return roleViewer
	case bus.RoleOperator:
		return roleOperator
	}
	return roleNone
}

// sessionCookie names the dashboard's session cookie.
const sessionCookie = "corral_session"

// Bounds of the failed sign-ins an address may make (bearer tokens and
// the login form alike): failuresPerWindow per failureWindow, after which
// its attempts get 429 until the window passes. maxTrackedAddrs bounds
// the addresses followed: once that many failed recently, every new
// failure is refused until some window passes.
const (
	failuresPerWindow = 10
	failureWindow     = time.Minute
	maxTrackedAddrs   = 4096
)

// authenticator checks tokens and keeps sessions and failed attempts.
type authenticator struct {
	tokens [][sha256.Size]byte // hashes: compared in constant time, whatever the length
	roles  []role
	open   bool // no tokens: everyone is an operator
	secure bool // sessions' cookies are Secure (HTTPS)

	maxSessions int
	ttl         time.Duration

	mu       sync.Mutex
	sessions map[string]session
	failures map[string]*failures // by remote address (host)
}

type session struct {
	role    role
	expires time.Time
}

type failures struct {
	n     int
	since time.Time
}

func newAuthenticator(tokens []Token, maxSessions int, ttl time.Duration, secure bool) *authenticator {
	a := &authenticator{open: len(tokens) == 0, secure: secure, maxSessions: maxSessions, ttl: ttl,
		sessions: map[string]session{}, failures: map[string]*failures{}}
	for _, t := range tokens {
		a.tokens = append(a.tokens, sha256.Sum256([]byte(t.Token)))
		a.roles = append(a.roles, roleOf(t.Role))
	}
	return a
}

// tokenRole is the role of a token, roleNone for one nobody configured.
func (a *authenticator) tokenRole(token string) role {
	h := sha256.Sum256([]byte(token))
	found := roleNone
	for i, t := range a.tokens { // every one, so the time says nothing
		if subtle.ConstantTimeCompare(h[:], t[:]) == 1 {
			found = a.roles[i]
		}
	}
	return found
}

// authResult is what a request proved.
type authResult struct {
	role role
	// failed: it presented a token or a session that is wrong (as
	// opposed to none): 401, and counted against its address.
	failed bool
	// limited: its address failed too often lately: 429.
	limited bool
}

// check finds a request's role.
func (a *authenticator) check(r *http.Request) authResult {
	if a.open {
		return authResult{role: roleOperator}
	}
	if h := r.Header.Get("Authorization"); h != "" {
		if a.limited(r) {
			return authResult{limited: true}
		}
		token, ok := strings.CutPrefix(h, "Bearer ")
		if role := a.tokenRole(strings.TrimSpace(token)); ok && role != roleNone {
			return authResult{role: role}
		}
		a.fail(r)
		return authResult{failed: true}
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		a.mu.Lock()
		s, ok := a.sessions[c.Value]
		if ok && time.Now().After(s.expires) {
			delete(a.sessions, c.Value)
			ok = false
		}
		a.mu.Unlock()
		if ok {
			return authResult{role: s.role}
		}
		// An expired or forgotten session (a restarted node) is no
		// attack: it signs in again.
	}
	return authResult{}
}

// login checks a token from the login form and opens a session.
func (a *authenticator) login(r *http.Request, token string) (*http.Cookie, role, authResult) {
	if a.limited(r) {
		return nil, roleNone, authResult{limited: true}
	}
	role := a.tokenRole(token)
	if role == roleNone {
		a.fail(r)
		return nil, roleNone, authResult{failed: true}
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	id := base64.RawURLEncoding.EncodeToString(b[:])
	now := time.Now()
	a.mu.Lock()
	if len(a.sessions) >= a.maxSessions {
		a.pruneSessions(now)
	}
	a.sessions[id] = session{role: role, expires: now.Add(a.ttl)}
	a.mu.Unlock()
	return a.cookie(id, int(a.ttl/time.Second)), role, authResult{role: role}
}

// pruneSessions drops the expired sessions and, while there are still too
// many, the one that expires first; a.mu is held.
func (a *authenticator) pruneSessions(now time.Time) {
	for id, s := range a.sessions {
		if now.After(s.expires) {
			delete(a.sessions, id)
		}
	}
	for len(a.sessions) >= a.maxSessions {
		var oldest string
		var at time.Time
		for id, s := range a.sessions {
			if oldest == "" || s.expires.Before(at) {
				oldest, at = id, s.expires
			}
		}
		delete(a.sessions, oldest)
	}
}

// logout forgets the request's session and returns the cookie that
// clears it.
func (a *authenticator) logout(r *http.Request) *http.Cookie {
	if c, err := r.Cookie(sessionCookie); err == nil {
		a.mu.Lock()
		delete(a.sessions, c.Value)
		a.mu.Unlock()
	}
	return a.cookie("", -1)
}

func (a *authenticator) cookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: sessionCookie, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true,
		Secure: a.secure, SameSite: http.SameSiteStrictMode}
}

// remoteHost is the address a request came from, without its port.
func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// limited reports whether the request's address failed too often lately.
func (a *authenticator) limited(r *http.Request) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.failures[remoteHost(r)]
	if f == nil {
		// Addresses that failed recently fill the table: a stranger with
		// many addresses is refused as a whole until some windows pass.
		return len(a.failures) >= maxTrackedAddrs && a.pruneFailures(time.Now()) >= maxTrackedAddrs
	}
	if time.Since(f.since) > failureWindow {
		delete(a.failures, remoteHost(r))
		return false
	}
	return f.n >= failuresPerWindow
}

// fail counts a failed attempt of the request's address.
func (a *authenticator) fail(r *http.Request) {
	now := time.Now()
	host := remoteHost(r)
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.failures[host]
	if f == nil || now.Sub(f.since) > failureWindow {
		if f == nil && len(a.failures) >= maxTrackedAddrs && a.pruneFailures(now) >= maxTrackedAddrs {
			return // full: limited refuses every new address
		}
		f = &failures{since: now}
		a.failures[host] = f
	}
	f.n++
}

// pruneFailures forgets the addresses whose window passed and returns
// how many are left; a.mu is held.
func (a *authenticator) pruneFailures(now time.Time) int {
	for h, f := range a.failures {
		if now.Sub(f.since) > failureWindow {
			delete(a.failures, h)
		}
	}
	return len(a.failures)
}

// allowedHost reports whether a request to a loopback listener names a
// loopback host: a page elsewhere whose name resolves to 127.0.0.1 (DNS
// rebinding) is refused, since the browser would treat the gateway as
// that page's own origin.
func allowedHost(r *http.Request) bool {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
