package bus

// Headers every published message carries.
const (
	HeaderNode        = "Corral-Node"
	HeaderProcessID   = "Corral-Process-Id"
	HeaderProcessName = "Corral-Process-Name"
	HeaderMsgID       = "Nats-Msg-Id"
	// HeaderExpectedStream (a JetStream header: store only in the stream
	// of that name) is LiveOnly on process.<name>.stats (see
	// HistorySubjects).
	HeaderExpectedStream = "Nats-Expected-Stream"
)

// Headers of the output published on corral.logs.<id> (LogSubject).
const (
	// HeaderLogOffset is where the message's output begins in the
	// process's output (bytes, decimal), counted since HeaderLogEpoch; on
	// the last message, where the output ended.
	HeaderLogOffset = "Corral-Log-Offset"
	// HeaderLogEpoch names that count (api.FollowReply.Epoch).
	HeaderLogEpoch = "Corral-Log-Epoch"
	// HeaderLogEnd is "true" on the last message: the process has ended,
	// and the body is an api.LogEnd.
	HeaderLogEnd = "Corral-Log-End"
)

// The error headers of a micro service's reply (ADR-32): a client reads
// them without linking nats.go/micro.
const (
	HeaderServiceError     = "Nats-Service-Error"
	HeaderServiceErrorCode = "Nats-Service-Error-Code"
)
