package node

import (
	"fmt"
	"os"
	"os/user"
	"path"
	"strconv"
	"strings"
	"syscall"

	"github.com/corral-run/corral/api"
)

// What a spawn may change of its definition, and as whom a child runs:
// Corral runs commands on behalf of whoever may spawn, so a definition
// says exactly what they may choose.

// neverEnv are the prefixes of environment variables no spawn may set,
// whatever the definition allows: they change what the command runs (the
// dynamic loader's preloads and paths).
var neverEnv = []string{"LD_", "DYLD_"}

// checkSpawn refuses what the definition does not let a spawn choose: an
// environment variable outside its SpawnEnv globs (never LD_* or DYLD_*),
// a working directory without SpawnCwd. Malformed names are invalid (400);
// refusals by policy are not permitted (403).
func (d *definition) checkSpawn(opts SpawnOptions) error {
	for _, k := range sortedNames(opts.Env) {
		if err := validEnvName(k); err != nil {
			return api.Errorf(ErrInvalid, "cannot spawn %q: %w", d.Name, err)
		}
		for _, p := range neverEnv {
			if strings.HasPrefix(k, p) {
				return api.Errorf(api.ErrNotPermitted, "cannot spawn %q: no spawn may set %s (%s* changes what the command runs)", d.Name, k, p)
			}
		}
		if !d.allowsEnv(k) {
			allowed := "it lets a spawn set none"
			if len(d.SpawnEnv) > 0 {
				allowed = "it allows " + strings.Join(d.SpawnEnv, ", ")
			}
			return api.Errorf(api.ErrNotPermitted, "cannot spawn %q: the definition does not let a spawn set %s (spawn_env: %s)", d.Name, k, allowed)
		}
	}
	if opts.Cwd != "" && !d.SpawnCwd {
		return api.Errorf(api.ErrNotPermitted, "cannot spawn %q: the definition does not let a spawn choose the working directory (spawn_cwd = false)", d.Name)
	}
	if strings.ContainsRune(opts.Cwd, 0) {
		return api.Errorf(ErrInvalid, "cannot spawn %q: the working directory contains a NUL byte", d.Name)
	}
	cwd, what := opts.Cwd, "the spawn's working directory"
	if cwd == "" {
		cwd, what = d.Cwd, "the definition's working directory"
	}
	if cwd != "" {
		switch fi, err := os.Stat(cwd); {
		case err != nil:
			return api.Errorf(ErrInvalid, "cannot spawn %q: %s %s does not exist or cannot be reached", d.Name, what, cwd)
		case !fi.IsDir():
			return api.Errorf(ErrInvalid, "cannot spawn %q: %s %s is not a directory", d.Name, what, cwd)
		}
	}
	return nil
}

// allowsEnv reports whether one of SpawnEnv's globs matches key.
func (d *definition) allowsEnv(key string) bool {
	for _, g := range d.SpawnEnv {
		if ok, _ := path.Match(g, key); ok {
			return true
		}
	}
	return false
}

// validEnvName checks an environment variable's name: not empty, no "="
// and no NUL (either would corrupt the environment block).
func validEnvName(k string) error {
	switch {
	case k == "":
		return fmt.Errorf("an environment variable has an empty name")
	case strings.ContainsAny(k, "=\x00"):
		return fmt.Errorf("environment variable name %q contains = or a NUL byte", k)
	}
	return nil
}

// credential resolves User and Group into the credential the child runs
// with, or nil to run it as the node's own user. Running a child as
// someone else needs the node to run as root.
func (d Definition) credential() (*syscall.Credential, error) {
	if d.User == "" && d.Group == "" {
		return nil, nil
	}
	if os.Geteuid() != 0 {
		return nil, api.Errorf(ErrInvalid, "user and group need corrald to run as root (it runs as uid %d)", os.Geteuid())
	}
	var c syscall.Credential
	gid := -1
	if d.User != "" {
		u, err := lookupUser(d.User)
		if err != nil {
			return nil, api.Errorf(ErrInvalid, "no user %q on this host", d.User)
		}
		uid, _ := strconv.Atoi(u.Uid)
		c.Uid = uint32(uid)
		gid, _ = strconv.Atoi(u.Gid)
	} else {
		c.Uid = uint32(os.Getuid())
	}
	if d.Group != "" {
		g, err := lookupGroup(d.Group)
		if err != nil {
			return nil, api.Errorf(ErrInvalid, "no group %q on this host", d.Group)
		}
		gid, _ = strconv.Atoi(g.Gid)
	}
	if gid < 0 {
		gid = os.Getgid()
	}
	c.Gid = uint32(gid)
	c.Groups = []uint32{} // none of the node's supplementary groups
	return &c, nil
}

// lookupUser finds a user by name or numeric id.
func lookupUser(s string) (*user.User, error) {
	if _, err := strconv.Atoi(s); err == nil {
		return user.LookupId(s)
	}
	return user.Lookup(s)
}

// lookupGroup finds a group by name or numeric id.
func lookupGroup(s string) (*user.Group, error) {
	if _, err := strconv.Atoi(s); err == nil {
		return user.LookupGroupId(s)
	}
	return user.LookupGroup(s)
}

// childEnviron is what every child inherits of the node's environment:
// all of it but the node's own settings and NATS credentials (CORRAL_*,
// NATS_*), which are none of the child's business.
func childEnviron() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CORRAL_") && !strings.HasPrefix(kv, "NATS_") {
			env = append(env, kv)
		}
	}
	return env
}
