// Package procstat measures a supervised child's whole process tree — the
// child and every descendant — for the node's stats and its memory and CPU
// limits (DESIGN.md, "Supervision semantics", limits).
//
// It is built to be cheap at scale: a Sampler measures the trees of many
// roots in one pass, and on Linux that pass is a single scan of /proc that
// reads /proc/<pid>/stat once per process on the host (that one file holds
// the parent, process group, session, CPU times, start time and resident
// set). Descendants are then grouped under the requested roots in memory.
// Sampling 1,000 children every 5 s costs well under one percent of one core
// (see BenchmarkSample1000). Elsewhere it falls back to gopsutil, one
// process at a time: correct, slower.
//
// Who is in a tree (Linux):
//   - the root and, recursively, every process whose parent is in the tree;
//   - every process whose process group or session id is the root's pid, and
//     their descendants. The node starts each child in its own process group
//     (pgid = root pid), so a grandchild that was re-parented to init or a
//     subreaper — a wrapper that forked a worker and exited — is still
//     counted, as long as it stays in that group.
//
// A descendant that leaves both (its parent died so it was re-parented, and
// it called setsid or setpgid) is no longer part of the tree; nothing short
// of cgroups can follow it, and cgroups are not this package's business.
//
// CPU time of a tree is every member's own time plus the time of the
// children it has already reaped (cutime/cstime in proc(5)), so the short
// lived commands of a shell script are counted once they end. Time used by
// a member that leaves the tree, or that is reaped by a process outside it,
// is lost; a delta that would go negative because of that is reported as 0.
// RSS is summed over the members, so pages they share (the text of a
// common binary, copy-on-write memory after fork) are counted once per
// process, as ps and top do.
//
// procstat does not decide anything: limits, reporting and the sampling
// schedule belong to package node.
package procstat
