package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/internal/version"
)

// defaultServer is used when neither --server nor $NATS_URL is set.
const defaultServer = "nats://127.0.0.1:4222"

// stopGrace is added to --timeout for requests that wait for a process to
// exit (stop, restart): the node itself gives a stop at most 30 s.
const stopGrace = 30 * time.Second

// app holds the global flags and the connection shared by the commands.
type app struct {
	conn    bus.ClientOptions // --server, --user, --context… as the nats CLI takes them
	timeout time.Duration
	json    bool
	lookup  func(string) (string, bool) // the environment

	nc *nats.Conn
}

// run executes one command line and returns the exit status: 0, 1 for a
// failure, 2 for a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{lookup: os.LookupEnv}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	a.close()
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "corralctl: %v\n", err)
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", ue.cmd)
		return 2
	}
	return 1
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "corralctl",
		Short: "Drive a Corral cluster over NATS",
		Long: `corralctl drives a Corral cluster over NATS: every node answers on the
corral.* subjects and publishes what its processes do on process.>.

Human output is an aligned table; --json prints the replies as JSON.
Exit status: 0 on success, 1 on failure, 2 on a usage error (bad flags,
arguments or values, found before anything is sent).`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q", args[0])
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf(" (did you mean %q?)", s[0])
			}
			return usage(cmd, "%s", msg)
		},
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
		// For "did you mean" on an unknown command.
		SuggestionsMinimumDistance: 2,
		Version:                    version.Get().String("corralctl"),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	f := root.PersistentFlags()
	f.StringVarP(&a.conn.Servers, "server", "s", "", "NATS server URL(s), comma-separated (default $NATS_URL, the context's, or "+defaultServer+")")
	f.StringVar(&a.conn.Context, "context", "", "a nats CLI context to connect with (default $NATS_CONTEXT)")
	f.StringVar(&a.conn.User, "user", "", "user name (default $NATS_USER)")
	f.StringVar(&a.conn.Password, "password", "", "password (default $NATS_PASSWORD)")
	f.StringVar(&a.conn.Creds, "creds", "", "user credentials file (default $NATS_CREDS)")
	f.StringVar(&a.conn.Nkey, "nkey", "", "user nkey seed file (default $NATS_NKEY)")
	f.StringVar(&a.conn.TLSCert, "tlscert", "", "TLS client certificate file")
	f.StringVar(&a.conn.TLSKey, "tlskey", "", "TLS client key file")
	f.StringVar(&a.conn.TLSCA, "tlsca", "", "TLS certificate authority file, to verify the server")
	f.StringVar(&a.conn.InboxPrefix, "inbox-prefix", "", "reply subject prefix (default _INBOX_<user> when signed in as a user)")
	f.DurationVar(&a.timeout, "timeout", 5*time.Second, "how long to wait for the connection and for each answer")
	f.BoolVar(&a.json, "json", false, "print the replies as JSON")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usage(cmd, "%v", err) })
	root.AddCommand(
		a.nodesCmd(), a.defsCmd(), a.spawnCmd(), a.psCmd(), a.getCmd(), a.stopCmd(),
		a.restartCmd(), a.sendCmd(), a.logsCmd(), a.eventsCmd(), a.topCmd(), a.schemaCmd(), a.passwdCmd(), a.versionCmd(),
		a.reloadCmd(), a.applyCmd(), a.servicesCmd(), a.scaleCmd(), a.deleteCmd(),
	)
	return root
}

// control connects to NATS, once, and returns a Control on the connection.
// The first connection is not retried, so a wrong --server fails within
// --timeout, naming the URL.
func (a *app) control() (*control.Control, error) {
	if a.nc == nil {
		if a.timeout <= 0 {
			return nil, fmt.Errorf("--timeout must be positive, got %v", a.timeout)
		}
		o, err := a.conn.FromEnv(a.lookup).WithContext()
		if err != nil {
			return nil, err
		}
		if o.Servers == "" {
			o.Servers = defaultServer
		}
		opts, err := o.NATSOptions()
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.RetryOnFailedConnect(false), nats.Timeout(a.timeout), nats.PermissionErrOnSubscribe(true),
			nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})) // what matters reaches the command as its error
		nc, err := bus.Connect(o.Servers, "corralctl", slog.New(slog.DiscardHandler), opts...)
		if err != nil {
			return nil, err
		}
		a.nc = nc
	}
	return control.New(a.nc, control.WithTimeout(a.timeout)), nil
}

// watchConnection tells w when the connection to NATS drops and when it
// is back, until the returned function is called.
func (a *app) watchConnection(w io.Writer) func() {
	ch := a.nc.StatusChanged(nats.RECONNECTING, nats.CONNECTED)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case st := <-ch:
				if st == nats.RECONNECTING {
					fmt.Fprintln(w, "corralctl: connection to NATS lost; reconnecting (events published meanwhile are missed)")
				} else {
					fmt.Fprintf(w, "corralctl: connected again to %s\n", a.nc.ConnectedUrlRedacted())
				}
			case <-done:
				return
			}
		}
	}()
	return func() { a.nc.RemoveStatusListener(ch); close(done) }
}

func (a *app) close() {
	if a.nc != nil {
		a.nc.Close()
	}
}

// exitWait bounds a request that waits for a process to exit: the stop
// timeout of its definition can exceed --timeout.
func (a *app) exitWait(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, a.timeout+stopGrace)
}

// usageError is a mistake on the command line, found before anything is
// sent: exit status 2.
type usageError struct {
	cmd string // the command path, for "Run '<cmd> --help'"
	err error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usage(cmd *cobra.Command, format string, args ...any) error {
	return &usageError{cmd: cmd.CommandPath(), err: fmt.Errorf(format, args...)}
}

// argNames returns a cobra.PositionalArgs that accepts the named arguments,
// the last optional ones marked with a "?" prefix (as "?SUBJECT"), and
// reports a missing or extra one as a usage error.
func argNames(names ...string) cobra.PositionalArgs {
	required := 0
	for _, n := range names {
		if !strings.HasPrefix(n, "?") {
			required++
		}
	}
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < required:
			return usage(cmd, "missing %s", names[len(args)])
		case len(args) > len(names):
			return usage(cmd, "unexpected argument %q", args[len(names)])
		}
		return nil
	}
}
