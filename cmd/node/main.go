// Command corrald is the Corral node: it runs on every host, supervises
// child processes and relays their events onto NATS.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/spf13/pflag"

	"github.com/corral-run/corral/config"
	"github.com/corral-run/corral/internal/daemon"
	"github.com/corral-run/corral/internal/version"
)

func main() {
	flags := pflag.NewFlagSet("corrald", pflag.ContinueOnError)
	path := flags.String("config", "", "config `FILE` (TOML); none: defaults and CORRAL_* variables")
	detach := flags.Bool("detach", false, `on SIGTERM leave the children running, to be re-adopted by the next start (node.shutdown = "detach")`)
	showVersion := flags.Bool("version", false, "print the version and exit")
	flags.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage: corrald [--config FILE] [--detach]\n\ncorrald is a Corral node: it supervises this host's processes and relays their events onto NATS.\n\nFlags:\n%s", flags.FlagUsages())
	}
	if err := flags.Parse(os.Args[1:]); err != nil {
		if err == pflag.ErrHelp {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "corrald:", err)
		os.Exit(2)
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "corrald: unexpected argument %q\n", flags.Arg(0))
		os.Exit(2)
	}
	if *showVersion {
		v := version.Get()
		v.NATSServer = server.VERSION
		fmt.Println(v.String("corrald"))
		return
	}
	if err := run(*path, *detach); err != nil {
		fmt.Fprintln(os.Stderr, "corrald:", err)
		os.Exit(1)
	}
}

func run(path string, detach bool) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	if detach {
		cfg.Adjust = func(c *config.Config) { c.Node.Shutdown = config.ShutdownDetach }
		cfg.Adjust(cfg)
	}
	logger := daemon.NewLogger(os.Stderr, cfg.Node)
	// Signals are ours from the start: one that arrives while the node is
	// still starting is handled once it is up, not by the default action.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	// SIGHUP reloads the configuration file; one that arrives while the
	// node starts waits until it is up.
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	d, err := daemon.Start(cfg, logger)
	if err != nil {
		return err
	}
	go func() {
		for range hups {
			// Reload logs what it applied; a refused file is logged here.
			if _, err := d.Reload(); err != nil {
				logger.Error("SIGHUP: reload failed", "err", err)
			}
		}
	}()
	sig := <-sigs
	logger.Info("shutting down; a second signal forces exit", "signal", sig.String())
	go func() { <-sigs; logger.Error("second signal, exiting now"); os.Exit(1) }()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return d.Close(ctx)
}
