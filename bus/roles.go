package bus

import "slices"

// Role is what a NATS user of Corral may do: a fixed set of subject
// permissions (DESIGN.md "Trust: who may do what"). The embedded server
// gives each configured user the permissions of its role; an operator of
// an external NATS server can copy them from RolePermissions.
type Role string

// The roles.
const (
	// RoleNode is a node: it publishes process.>, serves corral.> and
	// $SRV.>, and uses JetStream (the event stream, the node registry).
	RoleNode Role = "node"
	// RoleOperator drives the cluster: every control request, the event
	// history, process.> and the processes' output (corral.logs.>) to
	// subscribe. It cannot publish process.> or corral.logs.> nor answer
	// a control subject.
	RoleOperator Role = "operator"
	// RoleViewer watches: process.>, the read-only requests (nodes, list,
	// get, logs and follow, the registry, $SRV ping/info/stats), the
	// processes' output it follows and the history.
	RoleViewer Role = "viewer"
)

// Roles lists the roles, for validation and documentation.
var Roles = []Role{RoleNode, RoleOperator, RoleViewer}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool { return slices.Contains(Roles, r) }

// InboxPrefix is the reply inbox prefix of the user named user:
// _INBOX_<user>. A client of the embedded server that has users must use
// it (nats.CustomInboxPrefix; the nats CLI's --inbox-prefix): an operator
// or viewer may subscribe to its own prefix only, so no user reads
// another's replies.
func InboxPrefix(user string) string { return "_INBOX_" + user }

// Permissions are the subjects a role may publish to and subscribe to.
// Deny wins over allow; a subject in neither list is refused.
type Permissions struct {
	PublishAllow, PublishDeny     []string
	SubscribeAllow, SubscribeDeny []string
	// Responses lets the user answer the requests it receives (a reply
	// subject it may not publish to otherwise): a node answering a
	// client's _INBOX_<user>.… reply subject.
	Responses bool
}

// jetStreamReads are the JetStream API requests that read the event
// history (CORRAL_EVENTS), the node registry (the KV bucket CORRAL_NODES)
// and the latest stats (the KV bucket CORRAL_STATS): stream info, ordered
// consumers (create, next, info, delete), direct gets and flow control.
// None of them changes a stream.
func jetStreamReads() []string {
	var out []string
	for _, stream := range []string{StreamName, "KV_" + RegistryBucket, "KV_" + StatsBucket} {
		out = append(out,
			"$JS.API.STREAM.INFO."+stream,
			"$JS.API.CONSUMER.CREATE."+stream,
			"$JS.API.CONSUMER.CREATE."+stream+".>",
			"$JS.API.CONSUMER.MSG.NEXT."+stream+".>",
			"$JS.API.CONSUMER.INFO."+stream+".>",
			"$JS.API.CONSUMER.DELETE."+stream+".>",
			"$JS.API.DIRECT.GET."+stream,
			"$JS.API.DIRECT.GET."+stream+".>",
			"$JS.API.STREAM.MSG.GET."+stream,
		)
	}
	return append(out, "$JS.API.INFO", "$JS.FC.>")
}

// RolePermissions returns the permissions of role for the user whose
// inbox prefix is inbox (see InboxPrefix), and false for an unknown role.
func RolePermissions(role Role, inbox string) (Permissions, bool) {
	watch := []string{SubjectAll, SubjectNodeHeartbeats, SubjectLogs, inbox + ".>"}
	switch role {
	case RoleNode:
		return Permissions{
			PublishAllow: []string{SubjectAll, controlPrefix + ".>", "$SRV.>", "$JS.>", "$KV." + RegistryBucket + ".>",
				"$KV." + DesiredBucket + ".>", "$KV." + StatsBucket + ".>", "_INBOX.>"},
			SubscribeAllow: []string{SubjectAll, controlPrefix + ".>", "$SRV.>", "_INBOX.>",
				"$KV." + RegistryBucket + ".>"},
			Responses: true,
		}, true
	case RoleOperator:
		return Permissions{
			PublishAllow:   append([]string{controlPrefix + ".>", "$SRV.>"}, jetStreamReads()...),
			PublishDeny:    []string{SubjectAll, SubjectNodeHeartbeats, SubjectLogs},
			SubscribeAllow: watch,
		}, true
	case RoleViewer:
		reads := []string{
			SubjectList, SubjectRegistry, DesiredSubject(DesiredGet),
			NodeSubject("*", VerbList), NodeSubject("*", VerbInfo), NodeSubject("*", VerbDefinitions), NodeSubject("*", VerbProcs),
			ProcSubject("*", VerbGet), ProcSubject("*", VerbLogs), ProcSubject("*", VerbFollow),
			"$SRV.PING", "$SRV.PING.>", "$SRV.INFO", "$SRV.INFO.>", "$SRV.STATS", "$SRV.STATS.>",
		}
		return Permissions{
			PublishAllow:   append(reads, jetStreamReads()...),
			PublishDeny:    []string{SubjectAll},
			SubscribeAllow: watch,
		}, true
	}
	return Permissions{}, false
}
