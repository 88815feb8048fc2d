package node

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/client/wire"
	"github.com/corral-run/corral/node/procstat"
)

// Children without records. A record can be lost (a disk that filled up,
// a file someone deleted or that was torn): its child must not then run on
// unsupervised and unreported. So every child carries, in its environment,
// the mark of the node that started it (EnvNodeMark), its id
// (DONKEYLABS_PROCESS_ID) and its definition's name (EnvProcessName), and
// at Recover the node looks through /proc for process-group leaders (every
// child leads its own group) with its mark whose id has no record. Such a
// child is re-adopted when the node has its definition (its start time
// read from /proc, as adopt compares it); otherwise the node cannot
// supervise it (no stop signal, no limits, no restart policy), so it kills
// its process group and reports process.crashed, with the reason, rather
// than leave it running unreported.

// Environment variables the node gives every child besides the wire
// protocol's (client/wire), set after the node's own CORRAL_* variables
// are taken out of what the child inherits, so a child cannot be given
// someone else's.
const (
	// EnvNodeMark is "<node id>:<hash>", the hash being of the absolute
	// path of the node's state directory: it tells this node's children
	// from those of another node on the host. Set when the node keeps
	// state (Config.StateDir).
	EnvNodeMark = "CORRAL_NODE_MARK"
	// EnvProcessName is the name of the child's definition.
	EnvProcessName = "CORRAL_PROCESS_NAME"
	// EnvInstance and EnvService name the instance a child is, and its
	// service (instances.go), when it is one.
	EnvInstance = "CORRAL_INSTANCE"
	EnvService  = "CORRAL_SERVICE"
	// EnvReplaces is the id of the process a child was auto-restarted in
	// place of: a node that finds the child without its record (killed
	// between the fork and the record) knows the restart happened.
	EnvReplaces = "CORRAL_REPLACES"
)

// nodeMark is the EnvNodeMark value of a node, "" without a state
// directory (such a node never recovers anything).
func nodeMark(nodeID, stateDir string) string {
	if stateDir == "" {
		return ""
	}
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		abs = stateDir
	}
	sum := sha256.Sum256([]byte(abs))
	return nodeID + ":" + hex.EncodeToString(sum[:8])
}

// marked is a process found in /proc with this node's mark.
type marked struct {
	pid      int
	start    uint64
	uid      int
	id, name string
	instance string
	service  string
	replaces string
	metadata []byte
	tcpPort  int
}

// adoptOrphans re-adopts, or kills and reports, the children of this node
// (found: findMarked) whose id has no record (recorded lists the ids that
// have one). The callbacks of those it kills go to later (lost).
func (s *Supervisor) adoptOrphans(found []marked, recorded map[string]bool, res *RecoverResult, later *callQueue) {
	for _, m := range found {
		if recorded[m.id] || s.lookup(m.id) != nil {
			continue // its record speaks for it
		}
		def := s.lookupDef(m.name)
		want := os.Geteuid()
		if def != nil && def.cred != nil {
			want = int(def.cred.Uid)
		}
		if m.uid != want {
			// Not a child this node started as it would have: someone
			// else's process carrying the mark. Not the node's to touch.
			s.log.Warn("ignoring a process that carries this node's mark but runs as another user", "process", m.id, "pid", m.pid, "uid", m.uid)
			continue
		}
		res.Orphans = append(res.Orphans, m.id)
		meta := json.RawMessage(m.metadata)
		if ValidMetadata(meta) != nil || len(meta) == 0 {
			meta = json.RawMessage("{}")
		}
		d := def
		if d == nil {
			d = s.bareDefinition(apiDefinitionName(m.name))
		}
		opts := SpawnOptions{Metadata: meta, Instance: m.instance, Service: m.service}
		if validInstanceOptions(opts) != nil {
			opts.Instance, opts.Service = "", ""
		}
		p := s.newProcess(d, m.id, opts, lineage{replaces: m.replaces})
		p.pid, p.startTicks, p.startedAt, p.tcpPort = m.pid, m.start, procstat.StartedAt(m.start), m.tcpPort
		if def == nil {
			s.giveUp(p, fmt.Sprintf("a child of this node with no record, of definition %q, which the node does not have; the node killed its process group", m.name), later)
			continue
		}
		s.log.Warn("re-adopting a child whose record was missing or unreadable", "process", m.id, "name", m.name, "pid", m.pid)
		if err := s.takeBack(p, false); err != nil {
			s.giveUp(p, fmt.Sprintf("a child of this node with no record, which cannot be re-adopted: %v; the node killed its process group", err), later)
			continue
		}
		res.Adopted = append(res.Adopted, m.id)
	}
}

// findMarked lists the process-group leaders of the host that carry this
// node's mark and a valid process id, one per id (of several, the oldest:
// a descendant that called setsid inherited the same environment).
func (s *Supervisor) findMarked() []marked {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	byID := map[string]marked{}
	markKV := []byte(EnvNodeMark + "=" + s.mark)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		info, err := procstat.Lookup(pid)
		if err != nil || info.PGID != pid {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !bytes.Contains(env, markKV) {
			continue
		}
		m := marked{pid: pid, start: info.Start, uid: -1}
		mine := false
		for kv := range bytes.SplitSeq(env, []byte{0}) {
			k, v, _ := bytes.Cut(kv, []byte{'='})
			switch string(k) {
			case EnvNodeMark:
				mine = string(v) == s.mark
			case wire.EnvProcessID:
				m.id = string(v)
			case EnvProcessName:
				m.name = string(v)
			case EnvInstance:
				m.instance = string(v)
			case EnvService:
				m.service = string(v)
			case EnvReplaces:
				m.replaces = string(v)
			case wire.EnvMetadata:
				m.metadata = v
			case wire.EnvTCPPort:
				m.tcpPort, _ = strconv.Atoi(string(v))
			}
		}
		if !mine || !validID(m.id) {
			continue
		}
		if fi, err := os.Stat("/proc/" + e.Name()); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				m.uid = int(st.Uid)
			}
		}
		if cur, ok := byID[m.id]; !ok || m.start < cur.start {
			byID[m.id] = m
		}
	}
	out := make([]marked, 0, len(byID))
	for _, m := range byID {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b marked) int { return compareStrings(a.id, b.id) })
	return out
}

// apiDefinitionName is the serialised form of a definition known by its
// name alone.
func apiDefinitionName(name string) api.DefinitionInfo { return api.DefinitionInfo{Name: name} }
