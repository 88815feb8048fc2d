package node

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/corral-run/corral/node/procstat"
)

// peerPID is the pid of the process that connected: on a unix socket the
// kernel's SO_PEERCRED (the process that called connect); on loopback tcp
// the process, among the pids of claimed's tree, that holds the
// connecting socket (found by its inode: /proc/net/tcp, then the fds of
// those processes).
func (s *Supervisor) peerPID(nc net.Conn, claimed *process) (int, error) {
	switch c := nc.(type) {
	case *net.UnixConn:
		raw, err := c.SyscallConn()
		if err != nil {
			return 0, err
		}
		var cred *unix.Ucred
		cerr := raw.Control(func(fd uintptr) {
			cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		})
		if cerr != nil {
			return 0, cerr
		}
		if err != nil {
			return 0, fmt.Errorf("cannot read the peer's credentials: %w", err)
		}
		return int(cred.Pid), nil
	case *net.TCPConn:
		local, _ := c.LocalAddr().(*net.TCPAddr)
		remote, _ := c.RemoteAddr().(*net.TCPAddr)
		if local == nil || remote == nil || claimed == nil {
			return 0, fmt.Errorf("cannot tell who connected")
		}
		inode, ok := tcpInode(remote.Port, local.Port)
		if !ok {
			return 0, fmt.Errorf("cannot find the connecting socket (port %d) in /proc/net", remote.Port)
		}
		pid, ok := socketHolder(inode, procstat.Tree(procstat.Root{PID: claimed.pid, StartTime: claimed.startTicks}))
		if !ok {
			return 0, fmt.Errorf("the connecting socket (port %d) is not held by process %s or its descendants", remote.Port, claimed.id)
		}
		return pid, nil
	}
	return 0, fmt.Errorf("cannot tell who connected over %s", nc.LocalAddr().Network())
}

// tcpInode finds the inode of the established loopback socket whose local
// port is port and whose remote port is peerPort (the client side of a
// connection the node accepted on peerPort).
func tcpInode(port, peerPort int) (uint64, bool) {
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		if inode, ok := scanTCPTable(table, port, peerPort); ok {
			return inode, true
		}
	}
	return 0, false
}

// scanTCPTable reads one /proc/net/tcp table: "sl local_address
// rem_address st … inode", addresses as hex "ADDR:PORT".
func scanTCPTable(path string, port, peerPort int) (uint64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	for sc.Scan() {
		fields := bytes.Fields(sc.Bytes())
		if len(fields) < 10 || hexPort(fields[1]) != port || hexPort(fields[2]) != peerPort {
			continue
		}
		inode, err := strconv.ParseUint(string(fields[9]), 10, 64)
		if err == nil && inode != 0 {
			return inode, true
		}
	}
	return 0, false
}

func hexPort(addr []byte) int {
	i := bytes.LastIndexByte(addr, ':')
	if i < 0 {
		return -1
	}
	v, err := strconv.ParseUint(string(addr[i+1:]), 16, 16)
	if err != nil {
		return -1
	}
	return int(v)
}

// socketHolder finds which of pids has the socket inode open.
func socketHolder(inode uint64, pids []int) (int, bool) {
	want := "socket:[" + strconv.FormatUint(inode, 10) + "]"
	for _, pid := range pids {
		dir := "/proc/" + strconv.Itoa(pid) + "/fd"
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if link, err := os.Readlink(dir + "/" + e.Name()); err == nil && link == want {
				return pid, true
			}
		}
	}
	return 0, false
}
