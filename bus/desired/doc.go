// Package desired keeps the cluster's desired state and makes the cluster
// follow it (`corralctl apply`, `services`, `scale`, `delete`).
//
// The desired state lives in the JetStream KV bucket CORRAL_DESIRED:
// services.<name> holds a service (api.ServiceSpec: run N instances of a
// definition across the nodes that match its labels), definitions.<name>
// an applied definition (api.AppliedDefinition: loaded by every node with
// remote_definitions = true whose labels match its selector).
//
// Every node runs a Manager:
//   - with remote_definitions, it follows definitions.* and loads the
//     definitions meant for it (node.Supervisor.Apply; the node's own file
//     wins a name clash);
//   - it takes part in the election of the reconciler: a lease, the key
//     lease.reconciler of the node registry CORRAL_NODES, renewed by its
//     holder every fifth of LeaseTTL and taken over by another node once
//     it is LeaseTTL old (by the server's timestamp), or at once, by the
//     smallest node alive, when its holder is declared lost
//     (process.node_lost): that node acts for the lost holder until it
//     holds the lease, so the lost node's instances move without waiting
//     for the registry, and no other node reconciles beside it. While the
//     registry does not answer, a node tries again as soon as each attempt
//     ends, so a holder whose renewal failed takes its lease back once the
//     registry answers. Every change is a compare-and-set on the
//     revision, so at most one node holds it; a holder acts only while
//     its last renewal is younger than half the lease. The lease lives in
//     the registry, beside the records that the node announcing a loss
//     marks Lost: once a loss is announced, the lease can be taken over at
//     once;
//   - the holder reconciles (reconcile.go): it places missing instances on
//     matching nodes with the fewest processes, stops those beyond a
//     service's count or of deleted services, and of an instance that runs
//     twice (a lost node came back) stops all but the newest. It runs on
//     every change of the desired state, every node_lost, every end of a
//     service's process, and every heartbeat interval. It works from the
//     services in memory (a watch of services.*, read again in full every
//     few seconds on the side), and before it acts it makes sure they are
//     not behind the bucket, when the bucket answers (Manager.behind).
//   - it answers corral.desired.* (any one node, a queue group): get for
//     viewers, apply, scale and delete for operators.
package desired
