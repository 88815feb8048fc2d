// Command consumer-demo shows how a Go service consumes Corral's events:
// it subscribes to the encoder's typed events with bus.Subscribe and prints
// them, and with --spawn starts one encoder through bus.Control and exits
// once that process has ended.
//
//	consumer-demo                      # print encoder events until Ctrl-C
//	consumer-demo --spawn --frames 120 # spawn an encode and follow it to the end
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/control"
)

// Progress is the payload of process.encoder.progress: the fields of the
// worker's event, with processId and name added by the node.
type Progress struct {
	ProcessID    string  `json:"processId"`
	Name         string  `json:"name"`
	Percent      float64 `json:"percent"`
	FPS          float64 `json:"fps"`
	CurrentFrame int     `json:"currentFrame"`
}

// Complete is the payload of process.encoder.complete.
type Complete struct {
	ProcessID  string `json:"processId"`
	Name       string `json:"name"`
	OutputPath string `json:"outputPath"`
	Duration   int64  `json:"duration"` // milliseconds
}

// The definition whose events are followed.
const definition = "encoder"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "consumer-demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	server := os.Getenv("NATS_URL")
	if server == "" {
		server = "nats://127.0.0.1:4222"
	}
	fs := flag.NewFlagSet("consumer-demo", flag.ContinueOnError)
	fs.StringVar(&server, "server", server, "NATS server URL; $NATS_URL sets the default")
	spawn := fs.Bool("spawn", false, "spawn one encoder, follow it and exit when it ends")
	frames := fs.Int("frames", 300, "with --spawn: frames to encode (60 a second)")
	if err := fs.Parse(args); err != nil {
		return err
	}

	nc, err := nats.Connect(server, nats.Name("consumer-demo"), nats.Timeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("cannot connect to %s: %w", server, err)
	}
	defer nc.Close()

	// The handlers run on the subscriptions' goroutines: printing goes
	// through one lock, and the ends of processes through a channel, so
	// --spawn can wait for its own.
	var mu sync.Mutex
	printf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(stdout, format, args...)
	}
	ended := make(chan string, 64)
	end := func(id string) {
		select {
		case ended <- id:
		default: // nobody waits for it
		}
	}

	var subs []*nats.Subscription
	defer func() {
		for _, sub := range subs {
			sub.Unsubscribe()
		}
	}()
	keep := func(sub *nats.Subscription, err error) error {
		if sub != nil {
			subs = append(subs, sub)
		}
		return err
	}
	err = errors.Join(
		keep(control.Subscribe(nc, bus.ProcessEventSubject(definition, "progress"), func(p Progress, _ control.Event) {
			printf("progress  %s  %5.1f%%  frame %d at %.0f fps\n", p.ProcessID, p.Percent, p.CurrentFrame, p.FPS)
		})),
		keep(control.Subscribe(nc, bus.ProcessEventSubject(definition, "complete"), func(c Complete, e control.Event) {
			printf("complete  %s  %s in %v (node %s)\n", c.ProcessID, c.OutputPath,
				time.Duration(c.Duration)*time.Millisecond, e.Header(bus.HeaderNode))
		})),
		keep(control.Subscribe(nc, bus.SubjectStopped, func(s api.Stopped, _ control.Event) {
			printf("stopped   %s  %s, exit code %s\n", s.ProcessID, s.Name, exitCode(s.ExitCode))
			end(s.ProcessID)
		})),
		keep(control.Subscribe(nc, bus.SubjectCrashed, func(c api.Crashed, _ control.Event) {
			printf("crashed   %s  %s: %s\n", c.ProcessID, c.Name, c.Error)
			end(c.ProcessID)
		})),
	)
	if err != nil {
		return err
	}
	// Once the server has the subscriptions, nothing published from now
	// on is missed.
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		return fmt.Errorf("cannot subscribe: %w", err)
	}

	if !*spawn {
		printf("listening for %s events on %s (Ctrl-C to stop)\n", definition, nc.ConnectedUrlRedacted())
		<-ctx.Done()
		return nil
	}

	meta, _ := json.Marshal(map[string]any{"inputPath": "in.mp4", "outputPath": "out.mp4", "frames": *frames})
	ctl := control.New(nc)
	mp, err := ctl.Spawn(ctx, "", definition, api.SpawnRequest{Metadata: meta})
	if err != nil {
		return err
	}
	printf("spawned   %s  on node %s, pid %d\n", mp.ID, mp.Node, mp.PID)
	for {
		select {
		case id := <-ended:
			if id == mp.ID {
				return nil
			}
		case <-ctx.Done():
			return nil
		}
	}
}

func exitCode(code *int) string {
	if code == nil {
		return "none"
	}
	return fmt.Sprint(*code)
}
