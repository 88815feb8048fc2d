package e2e_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/sys/unix"
)

// A fabric is a small network of its own, made with network namespaces:
// one namespace per node, each with a veth pair whose other end is a
// port of a bridge in a namespace of the fabric's own. Every address and
// link lives inside the fabric's namespaces: the host's network is never
// touched, and the tests reach the nodes only through those namespaces
// (ip netns exec, or a socket opened inside one: fabric.Dialer).
//
// Names carry a prefix and the test's pid, so that a run killed before
// its cleanup leaves namespaces the next run recognises and removes
// (their pid is dead), while a run going on beside it keeps its own.
type fabric struct {
	t      testing.TB
	prefix string            // <fabricPrefix><pid>-
	addrs  map[string]string // node → its address
}

const (
	fabricPrefix = "corral-pt-"
	fabricSubnet = "10.213.7." // /24, only ever inside the fabric
)

// needFabric skips the test unless CORRAL_PARTITION=1 (make
// test-partition), and fails it when the fabric cannot be made there
// (not root, no ip).
func needFabric(t *testing.T) {
	t.Helper()
	if os.Getenv("CORRAL_PARTITION") != "1" {
		t.Skip("network namespaces: run with CORRAL_PARTITION=1 as root (make test-partition)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("the partition tests make network namespaces: they run as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("the partition tests need ip (iproute2):", err)
	}
}

// newFabric makes the namespaces of the nodes, removed when the test ends
// (first those of an earlier run that was killed).
func newFabric(t testing.TB, nodes []string) *fabric {
	t.Helper()
	removeStaleFabrics(t)
	f := &fabric{t: t, prefix: fmt.Sprintf("%s%d-", fabricPrefix, os.Getpid()), addrs: map[string]string{}}
	t.Cleanup(f.remove)
	br := f.ns("br")
	f.ip("netns", "add", br)
	f.ip("-n", br, "link", "add", "br0", "type", "bridge")
	f.ip("-n", br, "link", "set", "br0", "up")
	for i, id := range nodes {
		ns := f.ns(id)
		addr := fabricSubnet + strconv.Itoa(i+1)
		f.ip("netns", "add", ns)
		f.ip("-n", ns, "link", "set", "lo", "up")
		// eth0 in the node's namespace; its peer, port-<id>, in the bridge's.
		f.ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "port-"+id, "netns", br)
		f.ip("-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
		f.ip("-n", ns, "link", "set", "eth0", "up")
		f.ip("-n", br, "link", "set", "port-"+id, "master", "br0")
		f.ip("-n", br, "link", "set", "port-"+id, "up")
		f.addrs[id] = addr
	}
	return f
}

// ns is the name of a namespace of the fabric.
func (f *fabric) ns(id string) string { return f.prefix + id }

// cut takes node id off the network: its bridge port goes down, so its
// packets go nowhere (its own address stays up inside its namespace).
func (f *fabric) cut(id string) { f.ip("-n", f.ns("br"), "link", "set", "port-"+id, "down") }

// heal puts node id back on the network.
func (f *fabric) heal(id string) { f.ip("-n", f.ns("br"), "link", "set", "port-"+id, "up") }

func (f *fabric) ip(args ...string) {
	f.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		f.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// remove deletes the fabric's namespaces (with them go their links), after
// killing what still runs in them.
func (f *fabric) remove() {
	removeNamespaces(f.t, func(name string) bool { return strings.HasPrefix(name, f.prefix) })
}

// removeStaleFabrics removes the namespaces of fabrics whose test process
// is gone.
func removeStaleFabrics(t testing.TB) {
	removeNamespaces(t, func(name string) bool {
		rest, ok := strings.CutPrefix(name, fabricPrefix)
		if !ok {
			return false
		}
		pid, err := strconv.Atoi(rest[:max(strings.IndexByte(rest, '-'), 0)])
		return err != nil || pid != os.Getpid() && syscall.Kill(pid, 0) == syscall.ESRCH
	})
}

func removeNamespaces(t testing.TB, match func(string) bool) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Logf("cannot list network namespaces: %v", err)
		return
	}
	for line := range strings.Lines(string(out)) {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if name == "" || !match(name) {
			continue
		}
		if pids, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil {
			for _, p := range strings.Fields(string(pids)) {
				// Never this process: a thread of its may be in there
				// dialing (nsDialer).
				if pid, err := strconv.Atoi(p); err == nil && pid != os.Getpid() {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("cannot remove network namespace %s: %v: %s", name, err, out)
		}
	}
}

// argv is the command line that runs name inside node id's namespace.
func (f *fabric) argv(id, name string, args ...string) []string {
	return append([]string{"ip", "netns", "exec", f.ns(id), name}, args...)
}

// dialer opens its connections inside node id's namespace.
func (f *fabric) dialer(id string) nats.Option {
	return nats.SetCustomDialer(nsDialer{path: "/run/netns/" + f.ns(id)})
}

// nsDialer dials from inside a network namespace: on a thread of its own,
// moved into the namespace for the dial and back afterwards. A socket
// belongs to the namespace it was made in, whatever thread uses it
// afterwards. A thread that cannot be moved back stays locked to its
// goroutine, which ends, so the runtime retires it.
type nsDialer struct{ path string }

func (d nsDialer) Dial(network, address string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer home.Close()
		target, err := os.Open(d.path)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("cannot enter %s: %w", d.path, err)}
			return
		}
		c, err := net.DialTimeout(network, address, 2*time.Second)
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}
