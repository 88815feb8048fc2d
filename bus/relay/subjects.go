package relay

import (
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/node"
)

// kindSubjects is the subject of each kind of report.
var kindSubjects = map[node.Kind]string{
	node.KindSpawned: bus.SubjectSpawned, node.KindConnected: bus.SubjectConnected,
	node.KindReconnected: bus.SubjectReconnected, node.KindHeartbeat: bus.SubjectHeartbeat,
	node.KindStats: bus.SubjectStats, node.KindStale: bus.SubjectStale, node.KindStopped: bus.SubjectStopped,
	node.KindCrashed: bus.SubjectCrashed, node.KindRestarted: bus.SubjectRestarted,
	node.KindRestartLimit: bus.SubjectRestartLimit, node.KindLimitsExceeded: bus.SubjectLimitsExceeded,
	node.KindWatchdogStale: bus.SubjectWatchdogStale, node.KindWatchdogKilled: bus.SubjectWatchdogKilled,
}
