// Command encoder-demo is a demo Corral worker written with package client.
// corrald spawns it (see config.example.toml); it is not meant to be run by
// hand.
//
// Default mode, "encode", plays the video encoder of the processes spec
// without FFmpeg: it reads {inputPath, outputPath, frames, fps} from its
// metadata, "encodes" the frames in real time (300 frames at 60 fps by
// default: five seconds), emits a progress event every few frames and a
// complete event at the end, then disconnects and exits 0.
//
// Mode "tick" (--mode tick) is a daemon that emits a tick event every
// interval (--interval, or intervalMs in the metadata) until it is stopped.
//
// In both modes SIGTERM or SIGINT makes it disconnect and exit 0, and the
// node's commands {"type":"pause"} and {"type":"resume"} (corralctl send)
// hold and release the work. It logs to stdout, which the node keeps in the
// process's log (corralctl logs).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/corral-run/corral/client"
)

// Job is the metadata of an encode, as given to corralctl spawn --meta.
type Job struct {
	InputPath  string  `json:"inputPath"`
	OutputPath string  `json:"outputPath"`
	Frames     int     `json:"frames"` // default 300
	FPS        float64 `json:"fps"`    // default 60
}

// TickJob is the metadata of a ticker.
type TickJob struct {
	IntervalMs int `json:"intervalMs"` // default: the --interval flag
}

// The events the worker emits. Their JSON shapes are the schemas declared
// in config.example.toml; the node adds processId and name when it
// publishes them on process.<name>.<event>.
type (
	// Progress is emitted every few frames.
	Progress struct {
		Percent      float64 `json:"percent"`
		FPS          float64 `json:"fps"`
		CurrentFrame int     `json:"currentFrame"`
	}
	// Complete is emitted once, when every frame is done.
	Complete struct {
		OutputPath string `json:"outputPath"`
		Duration   int64  `json:"duration"` // milliseconds
	}
	// Tick is emitted every interval in tick mode.
	Tick struct {
		N  int64     `json:"n"`
		At time.Time `json:"at"`
	}
)

// Command is a line the node sends the process (corralctl send ID JSON).
type Command struct {
	Type string `json:"type"` // pause or resume
}

// framesPerProgress is how many frames go between two progress events.
const framesPerProgress = 10

func main() {
	os.Exit(run(os.Args[1:]))
}

// run is the whole program; it returns the exit status.
func run(args []string) int {
	log := slog.New(slog.NewTextHandler(os.Stdout, nil))
	fs := flag.NewFlagSet("encoder-demo", flag.ContinueOnError)
	mode := fs.String("mode", "encode", "encode: a finite encode job; tick: emit a tick event every interval until stopped")
	interval := fs.Duration("interval", time.Second, "tick mode: time between two ticks (intervalMs in the metadata wins)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *mode != "encode" && *mode != "tick" {
		fmt.Fprintf(os.Stderr, "encoder-demo: --mode %q is not encode or tick\n", *mode)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	c, err := client.Connect(ctx, client.WithLogger(log))
	if errors.Is(err, client.ErrNotConfigured) {
		fmt.Fprintf(os.Stderr, "encoder-demo: %v\nRun it under corrald: corralctl spawn encoder --meta '{...}'\n", err)
		return 2
	}
	if ctx.Err() != nil {
		return 0 // stopped before it could connect
	}
	if err != nil {
		log.Error("cannot connect to the node", "err", err)
		return 1
	}
	log = log.With("process", c.ProcessID())

	g := newGate()
	c.OnMessage(func(msg json.RawMessage) {
		var cmd Command
		if err := json.Unmarshal(msg, &cmd); err != nil {
			log.Warn("ignoring a message that is not a command object", "msg", string(msg))
			return
		}
		switch cmd.Type {
		case "pause":
			if g.pause() {
				log.Info("paused by the node")
			}
		case "resume":
			if g.resume() {
				log.Info("resumed by the node")
			}
		default:
			log.Info("ignoring unknown command", "type", cmd.Type)
		}
	})

	if *mode == "tick" {
		err = tick(ctx, c, g, log, *interval)
	} else {
		err = encode(ctx, c, g, log)
	}
	if ctx.Err() != nil {
		log.Info("signal received, disconnecting")
		err = nil
	}
	if derr := c.Disconnect(); derr != nil {
		log.Warn("cannot flush the last messages", "err", derr)
	}
	if err != nil {
		log.Error("giving up", "err", err)
		return 1
	}
	return 0
}

// encode plays an encode job: progress events while the frames go by, then
// complete. It returns early, with ctx's error, when ctx ends.
func encode(ctx context.Context, c *client.Client, g *gate, log *slog.Logger) error {
	job := Job{Frames: 300, FPS: 60}
	if err := c.DecodeMetadata(&job); err != nil {
		return err
	}
	switch {
	case job.Frames <= 0:
		return fmt.Errorf("cannot encode: frames must be positive, got %d", job.Frames)
	case job.FPS <= 0:
		return fmt.Errorf("cannot encode: fps must be positive, got %g", job.FPS)
	}
	log.Info("starting encode", "input", job.InputPath, "output", job.OutputPath, "frames", job.Frames, "fps", job.FPS)
	frameTime := time.Duration(float64(time.Second) / job.FPS)
	start := time.Now()
	for done := 0; done < job.Frames; {
		if err := g.wait(ctx); err != nil {
			return err
		}
		n := min(framesPerProgress, job.Frames-done)
		batchStart := time.Now()
		if err := sleep(ctx, time.Duration(n)*frameTime); err != nil {
			return err
		}
		done += n
		p := Progress{
			Percent:      round(100*float64(done)/float64(job.Frames), 2),
			FPS:          round(float64(n)/time.Since(batchStart).Seconds(), 1),
			CurrentFrame: done,
		}
		if err := c.Emit(ctx, "progress", p); err != nil {
			return err
		}
		log.Info("progress", "percent", p.Percent, "fps", p.FPS, "frame", p.CurrentFrame)
	}
	end := Complete{OutputPath: job.OutputPath, Duration: time.Since(start).Milliseconds()}
	if err := c.Emit(ctx, "complete", end); err != nil {
		return err
	}
	log.Info("encode complete", "output", end.OutputPath, "durationMs", end.Duration)
	return nil
}

// tick emits a tick every interval until ctx ends, then returns nil.
func tick(ctx context.Context, c *client.Client, g *gate, log *slog.Logger, interval time.Duration) error {
	var job TickJob
	if err := c.DecodeMetadata(&job); err != nil {
		return err
	}
	if job.IntervalMs > 0 {
		interval = time.Duration(job.IntervalMs) * time.Millisecond
	}
	if interval <= 0 {
		return fmt.Errorf("cannot tick: the interval must be positive, got %v", interval)
	}
	log.Info("ticking", "interval", interval)
	t := time.NewTicker(interval)
	defer t.Stop()
	var n int64
	for {
		var now time.Time
		select {
		case now = <-t.C:
		case <-ctx.Done():
			return nil
		}
		if g.closed() {
			// No ticks while paused; after a resume, a fresh interval.
			if err := g.wait(ctx); err != nil {
				return nil
			}
			t.Reset(interval)
			continue
		}
		n++
		if err := c.Emit(ctx, "tick", Tick{N: n, At: now.UTC()}); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		log.Info("tick", "n", n)
	}
}

// gate holds the work while the node has it paused. Safe for concurrent
// use: the OnMessage handler flips it while the work waits on it.
type gate struct {
	mu     sync.Mutex
	paused bool
	open   chan struct{} // closed while not paused
}

func newGate() *gate {
	g := &gate{open: make(chan struct{})}
	close(g.open)
	return g
}

// pause closes the gate; it reports false when it was closed already.
func (g *gate) pause() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.paused {
		return false
	}
	g.paused, g.open = true, make(chan struct{})
	return true
}

// resume opens the gate; it reports false when it was open already.
func (g *gate) resume() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.paused {
		return false
	}
	g.paused = false
	close(g.open)
	return true
}

// closed reports whether the work is paused.
func (g *gate) closed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.paused
}

// wait returns once the gate is open, or with ctx's error when ctx ends.
func (g *gate) wait(ctx context.Context) error {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	select {
	case <-open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sleep waits for d, or returns ctx's error when ctx ends first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func round(x float64, decimals int) float64 {
	p := math.Pow(10, float64(decimals))
	return math.Round(x*p) / p
}
