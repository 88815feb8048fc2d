package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/registry"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Discovery: what Control knows of the cluster's nodes. The live view is
// who answers now (the micro service's $SRV.PING.corral, heartbeats seen
// during the call); the node registry (package bus/registry), when there is
// one, adds the nodes that are gone and what ran on them, and tells a
// scatter-gather how many answers to wait for.

// registryView is the node registry as read at the start of a call: from
// a node's view (corral.registry), or from the bucket itself when no node
// answers for it.
type registryView struct {
	records map[string]registry.Record // nil: no registry (live-only discovery)
	// procs are the process lists that came with a node's view; nil when
	// the view was read from the bucket, where they are read on demand.
	procs map[string][]api.ProcessSummary
	// allProcs: procs holds every node's list.
	allProcs bool
	kv       jetstream.KeyValue // set when read from the bucket
}

// known reports whether there is a registry.
func (v registryView) known() bool { return v.records != nil }

// fresh reports whether the registry says the node is alive at now.
func (v registryView) fresh(id string, now time.Time) bool {
	r, ok := v.records[id]
	return ok && !r.Gone(now)
}

// gone lists the nodes the registry says are gone at now that are not in
// alive, sorted.
func (v registryView) gone(alive map[string]bool, now time.Time) []string {
	var out []string
	for id, r := range v.records {
		if !alive[id] && r.Gone(now) {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// registryTries is how many nodes readRegistry asks for their view when
// those it asks have just started.
const registryTries = 3

// isNotReady: a node answered corral.registry with a 500 (it has just
// started and not heard every node yet).
func isNotReady(err error) bool {
	se, ok := errors.AsType[*ServiceError](err)
	return ok && se.Code == 500
}

// registryTimeout bounds a read of the registry: it normally takes
// milliseconds, and a registry that does not answer (a JetStream cluster
// electing a leader) leaves discovery live only rather than holding a
// command up.
const registryTimeout = 2 * time.Second

// registry returns the node registry's bucket, or an error wrapping
// errNoRegistry when there is none.
func (c *Control) registry(ctx context.Context) (jetstream.KeyValue, error) {
	c.mu.Lock()
	kv := c.kv
	c.mu.Unlock()
	if kv != nil {
		return kv, nil
	}
	kv, err := registry.Open(ctx, c.js)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.kv = kv
	c.mu.Unlock()
	return kv, nil
}

// readRegistry reads every node's record, with the process lists
// processes asks for (see RegistryRequest). It asks a node first: its view
// is kept from the registry and the heartbeats, so it answers even while
// the registry's JetStream stream does not. A registry that cannot be read
// gives an empty view: discovery is then live only.
func (c *Control) readRegistry(ctx context.Context, processes string) registryView {
	req := api.RegistryRequest{Processes: processes}
	if c.localView != nil {
		if rv, ok := c.localView(req); ok {
			return viewOf(rv, processes)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, registryTimeout)
	defer cancel()
	if rv, err := c.askRegistry(ctx, req); err == nil {
		return viewOf(rv, processes)
	}
	kv, err := c.registry(ctx)
	if err != nil {
		return registryView{}
	}
	records, err := registry.ReadRecords(ctx, kv)
	if err != nil {
		return registryView{}
	}
	return registryView{records: records, kv: kv}
}

// registryResend is how long askRegistry waits for an answer before it
// asks again. The queue group picks among every node whose interest the
// servers hold, and a node cut off by a partition keeps its interest until
// its server's route to it is closed (10 s): a node answers in
// milliseconds, so the next one is asked soon.
const registryResend = 300 * time.Millisecond

// askRegistry asks corral.registry for a node's view: again, to the same
// inbox, after registryResend without an answer, and at once after an
// answer that the node has not heard everyone yet (another node of the
// queue group may have), registryTries times in all; the first view that
// comes is taken. It gives up after half of ctx's time at most, leaving
// the rest for a read of the bucket.
func (c *Control) askRegistry(ctx context.Context, req api.RegistryRequest) (api.RegistryView, error) {
	data, err := encodeRequest(req)
	if err != nil {
		return api.RegistryView{}, err
	}
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, time.Now().Add(time.Until(deadline)/2))
		defer cancel()
	}
	ctx, stopGuard := c.permits.guard(ctx, bus.SubjectRegistry)
	defer stopGuard()
	answers, again, stop, err := c.scatter(bus.SubjectRegistry, data)
	if err != nil {
		return api.RegistryView{}, err
	}
	defer stop()
	resend := time.NewTimer(registryResend)
	defer resend.Stop()
	last := api.Errorf(ErrTimeout, "no answer on %s in time", bus.SubjectRegistry)
	for asked, refused := 1, 0; ; {
		select {
		case m := <-answers:
			if noResponders(m) {
				return api.RegistryView{}, nats.ErrNoResponders
			}
			var rv api.RegistryView
			err := decodeReply(m, &rv)
			if err == nil {
				return rv, nil
			}
			last = err
			if refused++; !isNotReady(err) || refused >= registryTries {
				return api.RegistryView{}, err
			}
		case <-resend.C:
			resend.Reset(registryResend)
		case <-ctx.Done():
			if refusedIn(ctx) {
				return api.RegistryView{}, &refusal{subject: bus.SubjectRegistry}
			}
			return api.RegistryView{}, last
		}
		// No answer in time, or one not ready: ask again (the queue
		// group may pick another node).
		if asked < registryTries {
			asked++
			if err := again(); err != nil {
				return api.RegistryView{}, err
			}
		}
	}
}

// viewOf is the registryView of a node's answer to corral.registry.
func viewOf(rv api.RegistryView, processes string) registryView {
	now := time.Now()
	v := registryView{records: map[string]registry.Record{}, procs: map[string][]api.ProcessSummary{}, allProcs: processes == api.ProcessesAll}
	for _, e := range rv.Nodes {
		id := e.Info.ID
		v.records[id] = registry.Record{Info: e.Info, At: now.Add(-time.Duration(e.AgeMs) * time.Millisecond)}
		if e.Processes != nil || v.allProcs {
			v.procs[id] = e.Processes
		}
	}
	return v
}

// startRegistryRead reads the registry in a goroutine of its own; the
// channel gets the view, then closes.
func (c *Control) startRegistryRead(ctx context.Context, processes string) <-chan registryView {
	ch := make(chan registryView, 1)
	go func() {
		defer close(ch)
		ch <- c.readRegistry(ctx, processes)
	}()
	return ch
}

// procsOf returns the last known processes of the nodes given.
func (c *Control) procsOf(ctx context.Context, v registryView, nodes []string) map[string][]api.ProcessSummary {
	out := make(map[string][]api.ProcessSummary, len(nodes))
	var missing []string
	for _, id := range nodes {
		if ps, ok := v.procs[id]; ok {
			out[id] = ps
		} else {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 || !v.known() {
		return out
	}
	// The processes of a node that died before anyone learned its list:
	// the registry may have them, but right after a node loss its stream
	// may be electing a leader: ask it briefly.
	ctx, cancel := context.WithTimeout(ctx, min(registryTimeout, 500*time.Millisecond))
	defer cancel()
	kv := v.kv
	if kv == nil {
		var err error
		if kv, err = c.registry(ctx); err != nil {
			return out
		}
	}
	more, _ := registry.ReadProcs(ctx, kv, missing)
	maps.Copy(out, more)
	return out
}

// ownerOf returns the node that last announced process id.
func (c *Control) ownerOf(ctx context.Context, v registryView, id string) (string, bool) {
	if v.allProcs {
		for node, ps := range v.procs {
			for _, p := range ps {
				if p.ID == id {
					return node, true
				}
			}
		}
		return "", false
	}
	if !v.known() {
		return "", false
	}
	ctx, cancel := context.WithTimeout(ctx, registryTimeout)
	defer cancel()
	kv := v.kv
	if kv == nil {
		var err error
		if kv, err = c.registry(ctx); err != nil {
			return "", false
		}
	}
	owner, ok, err := registry.FindOwner(ctx, kv, id)
	return owner, ok && err == nil
}

// Nodes returns every node, sorted by id: those that answer now, with
// what they say of themselves, and, from the node registry, those that do
// not: a node that missed MissedHeartbeats heartbeats comes with Gone set
// and its last record. Without a registry (no JetStream) only the nodes
// that answer, or whose heartbeat arrives during the call, are returned.
//
// It waits for the answers of every node the registry knows as alive,
// or, without a registry, until none has come for a short while.
func (c *Control) Nodes(ctx context.Context) ([]api.NodeInfo, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	// The heartbeats that arrive meanwhile describe nodes too.
	var mu sync.Mutex
	beating := map[string]api.NodeInfo{}
	hbSub, err := c.nc.Subscribe(bus.SubjectNodeHeartbeats, func(m *nats.Msg) {
		var info api.NodeInfo
		if json.Unmarshal(m.Data, &info) == nil && info.ID != "" {
			mu.Lock()
			beating[info.ID] = info
			mu.Unlock()
		}
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list nodes: %w", err)
	}
	defer hbSub.Unsubscribe()
	answered := map[string]servicePing{}
	g, err := c.gather(ctx, gatherRequest{subject: bus.SubjectPing, answer: func(m *nats.Msg) (string, error) {
		id, ping := pingNode(m)
		if id != "" {
			answered[id] = ping
		}
		return id, nil
	}})
	if err != nil {
		return nil, explain(err, "cannot list nodes")
	}
	_ = hbSub.Unsubscribe()
	mu.Lock()
	defer mu.Unlock()
	reg := g.reg
	if g.timedOut && len(answered) == 0 && len(beating) == 0 && len(reg.records) == 0 {
		return nil, api.Errorf(ErrTimeout, "cannot list nodes: no answer on %s in time", bus.SubjectPing)
	}

	// What a node says of itself comes with its heartbeat, which the view
	// read alongside holds (at most an interval old). Only a node that
	// answered but is not in it (it has just started) is asked, all at
	// once.
	now := time.Now()
	infos := make(map[string]api.NodeInfo, len(answered))
	var imu sync.Mutex
	var wg sync.WaitGroup
	for id := range answered {
		if r, ok := reg.records[id]; ok && !r.Info.Lost && r.Info.ID == id && now.Sub(r.At) < registry.GoneAfter(r.Info.IntervalMs) {
			info := r.Info
			info.LastSeen = r.At
			imu.Lock() // the requests started below write infos meanwhile
			infos[id] = info
			imu.Unlock()
			continue
		}
		wg.Go(func() {
			var info api.NodeInfo
			if err := c.request(ctx, bus.NodeSubject(id, bus.VerbInfo), nil, &info); err != nil {
				return // gone in the meantime: what else is known of it follows
			}
			imu.Lock()
			infos[id] = info
			imu.Unlock()
		})
	}
	wg.Wait()

	out := make([]api.NodeInfo, 0, len(answered)+len(reg.records))
	seen := map[string]bool{}
	add := func(info api.NodeInfo) {
		if !seen[info.ID] {
			seen[info.ID] = true
			out = append(out, info)
		}
	}
	for id := range infos {
		add(infos[id])
	}
	for id, info := range beating {
		if _, ok := answered[id]; ok {
			if _, described := infos[id]; !described {
				add(info)
			}
		} else {
			add(info)
		}
	}
	now = time.Now()
	for id, r := range reg.records {
		if seen[id] {
			continue
		}
		info := r.Info
		_, alive := answered[id]
		info.Gone = !alive && r.Gone(now)
		if info.Gone && !info.Lost {
			info.LastSeen = r.At
		}
		add(info)
	}
	for id, ping := range answered {
		if !seen[id] { // answered the ping, then nothing: what the ping said
			add(api.NodeInfo{ID: id, Version: ping.Version, Labels: pingLabels(ping.Metadata), Definitions: []string{}})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// candidates lists the live nodes, from a node's view of the cluster
// alone (one request, not a gathering): what placement needs. ok is false
// when no view could be read; the caller then gathers (Nodes).
func (c *Control) candidates(ctx context.Context) (nodes []api.NodeInfo, ok bool) {
	reg := c.readRegistry(ctx, "")
	if !reg.known() || reg.kv != nil { // no view, or read from the bucket: not live enough
		return nil, false
	}
	now := time.Now()
	for id, r := range reg.records {
		if r.Info.ID == id && !r.Gone(now) {
			nodes = append(nodes, r.Info)
		}
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].ID < nodes[j].ID })
	return nodes, true
}

// pingLabels reads the labels a node puts in its service metadata.
func pingLabels(meta map[string]string) map[string]string {
	var labels map[string]string
	for k, v := range meta {
		if name, ok := strings.CutPrefix(k, "label."); ok && name != "" {
			if labels == nil {
				labels = map[string]string{}
			}
			labels[name] = v
		}
	}
	return labels
}

// ListResult gathers the answers of every node.
type ListResult struct {
	// Processes are those of the nodes that answered and, with status
	// unknown, those last announced by the nodes that are gone.
	Processes []api.ManagedProcess `json:"processes"`
	// Nodes are the nodes that answered, sorted.
	Nodes []string `json:"nodes"`
	// Missing are the known nodes that did not answer in time, sorted:
	// those alive (they answer pings, or the registry has a recent
	// heartbeat of theirs), whose processes are not listed, and those
	// that are gone (in Gone too).
	Missing []string `json:"missing,omitempty"`
	// Gone are the nodes the registry says are gone (they missed their
	// heartbeats and do not answer), sorted: their last known processes
	// are listed with status unknown.
	Gone []string `json:"gone,omitempty"`
}

// List returns the processes of every node, sorted by node then start
// time. It asks every node at once (corral.list) and returns as soon as
// every node it knows of has answered: the nodes alive in the registry and
// those that answer a ping sent alongside. Without a registry it also
// waits until no answer has come for a short while. A known node that has
// not answered when ctx ends (default: the Control's timeout) is listed in
// Missing, and so are the gone nodes, whose processes come from the
// registry with status unknown.
func (c *Control) List(ctx context.Context, req api.ListRequest) (ListResult, error) {
	data, err := encodeRequest(req)
	if err != nil {
		return ListResult{}, err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	res := ListResult{Processes: []api.ManagedProcess{}, Nodes: []string{}}
	// The rest of a list longer than a reply is asked of its node at
	// once: the gather may wait for a silent node until ctx ends.
	var (
		pages   sync.WaitGroup
		pagesMu sync.Mutex
		rest    []api.ManagedProcess
		partial []string // nodes listed in part
	)
	pagesCtx, stopPages := context.WithCancel(ctx) // no more pages once the list failed
	defer stopPages()
	g, err := c.gather(ctx, gatherRequest{subject: bus.SubjectList, data: data, processes: api.ProcessesGone,
		ping: true, waitForKnown: true, answer: func(m *nats.Msg) (string, error) {
			var lr api.ListReply
			if err := decodeReply(m, &lr); err != nil {
				return "", err
			}
			if !slices.Contains(res.Nodes, lr.Node) {
				res.Nodes = append(res.Nodes, lr.Node)
				res.Processes = append(res.Processes, lr.Processes...)
				if lr.Next != "" {
					next := req
					next.After = lr.Next
					pages.Go(func() {
						procs, err := c.listPages(pagesCtx, lr.Node, next)
						pagesMu.Lock()
						defer pagesMu.Unlock()
						rest = append(rest, procs...)
						if err != nil {
							partial = append(partial, lr.Node)
						}
					})
				}
			}
			return lr.Node, nil
		}})
	if err != nil {
		stopPages()
		pages.Wait()
		return ListResult{}, explain(err, "cannot list processes")
	}
	pages.Wait()
	res.Processes = append(res.Processes, rest...)
	res.Missing = append(g.waiting, partial...)
	reg := g.reg
	alive := maps.Clone(g.answered)
	for id := range g.pinged {
		alive[id] = true
	}
	res.Gone = reg.gone(alive, time.Now())
	res.Missing = append(res.Missing, res.Gone...)
	sort.Strings(res.Missing)
	if len(res.Gone) > 0 {
		// What is left of ctx may be nothing: reading a few keys is quick.
		procs := c.procsOf(context.WithoutCancel(ctx), reg, res.Gone)
		for _, id := range res.Gone {
			for _, p := range procs[id] {
				if req.Name == "" || p.Name == req.Name {
					res.Processes = append(res.Processes, unknownProcess(p))
				}
			}
		}
	}
	if g.timedOut && len(g.answered) == 0 && len(res.Missing) == 0 && len(res.Gone) == 0 {
		return ListResult{}, api.Errorf(ErrTimeout, "cannot list processes: no answer on %s in time", bus.SubjectList)
	}
	sort.Strings(res.Nodes)
	sort.SliceStable(res.Processes, func(i, j int) bool {
		a, b := res.Processes[i], res.Processes[j]
		if a.Node != b.Node {
			return a.Node < b.Node
		}
		return a.StartedAt.Before(b.StartedAt)
	})
	return res, nil
}

// ownerGone reports the node that last announced process id, when the
// registry has it and that node does not answer: a request to the process
// then fails with ErrUnreachable naming the node, rather than "no such
// process".
func (c *Control) ownerGone(ctx context.Context, id string) (string, bool) {
	owner, ok := c.ownerOf(ctx, c.readRegistry(ctx, api.ProcessesAll), id)
	if !ok {
		return "", false
	}
	err := c.request(ctx, bus.NodeSubject(owner, bus.VerbInfo), nil, nil)
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, ErrTimeout) {
		return owner, true
	}
	return "", false
}

// HasLabels reports whether labels include every label of want.
func HasLabels(labels, want map[string]string) bool {
	for k, v := range want {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// unknownProcess is the summary as a ManagedProcess of unknown status:
// what is known of a process whose node is gone.
func unknownProcess(p api.ProcessSummary) api.ManagedProcess {
	mp := summaryProcess(p)
	mp.Status = api.StatusUnknown
	return mp
}

// summaryProcess is the summary as a ManagedProcess.
func summaryProcess(p api.ProcessSummary) api.ManagedProcess {
	return api.ManagedProcess{ID: p.ID, Name: p.Name, Node: p.Node, Status: p.Status, PID: p.PID, StartedAt: p.StartedAt,
		Instance: p.Instance, Service: p.Service}
}
