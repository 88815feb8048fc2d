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
