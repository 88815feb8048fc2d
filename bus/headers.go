package bus

// Headers every published message carries.
const (
	HeaderNode        = "Corral-Node"
	HeaderProcessID   = "Corral-Process-Id"
	HeaderProcessName = "Corral-Process-Name"
	HeaderMsgID       = "Nats-Msg-Id"
)
