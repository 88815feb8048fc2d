package bus

import (
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/corral-run/corral/node"
)

// Relay publishes what the supervisor reports on the subjects of
// DESIGN.md, with the Corral-* and Nats-Msg-Id headers. It implements
// node.Reporter. Publishing is core NATS: buffered by the connection, no
// flush per message.
type Relay struct {
	nc     *nats.Conn
	nodeID []string // header value, shared by every message (read-only)
}

var _ node.Reporter = (*Relay)(nil)

// NewRelay returns a Relay publishing on nc for the node nodeID.
func NewRelay(nc *nats.Conn, nodeID string) *Relay {
	return &Relay{nc: nc, nodeID: []string{nodeID}}
}

// Publish implements node.Reporter.
func (r *Relay) Publish(rep node.Report) error {
	data := rep.Raw
	if data == nil {
		var err error
		if data, err = json.Marshal(rep.Payload); err != nil {
			return fmt.Errorf("cannot encode %s payload: %w", r.subject(rep), err)
		}
	}
	if rep.Kind == node.KindStats {
		// The per-name subject first, then the general one, as the original.
		if err := r.publish(ProcessStatsSubject(rep.Name), rep, "", data); err != nil {
			return err
		}
		return r.publish(SubjectStats, rep, "", data)
	}
	if err := r.publish(r.subject(rep), rep, rep.MsgID, data); err != nil {
		return err
	}
	if rep.Done != nil {
		rep.Done(nil) // handed to NATS
	}
	return nil
}

func (r *Relay) subject(rep node.Report) string {
	if rep.Kind == node.KindEvent {
		return ProcessEventSubject(rep.Name, rep.Event)
	}
	return kindSubjects[rep.Kind]
}

func (r *Relay) publish(subject string, rep node.Report, msgID string, data []byte) error {
	if msgID == "" {
		msgID = nuid.Next()
	}
	h := make(nats.Header, 4)
	h[HeaderNode] = r.nodeID
	if rep.ProcessID != "" {
		h[HeaderProcessID] = []string{rep.ProcessID}
		h[HeaderProcessName] = []string{rep.Name}
	}
	h[HeaderMsgID] = []string{msgID}
	if err := r.nc.PublishMsg(&nats.Msg{Subject: subject, Header: h, Data: data}); err != nil {
		return fmt.Errorf("cannot publish on %s: %w", subject, err)
	}
	return nil
}
