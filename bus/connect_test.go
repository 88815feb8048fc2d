package bus_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/jsm.go/natscontext"

	"github.com/corral-run/corral/bus"
)

// A context the nats CLI's own library saves is read back as it wrote it,
// and what the caller sets wins over the context.
func TestContextWrittenByTheNatsLibrary(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	nctx, err := natscontext.New("corral-test", false,
		natscontext.WithServerURL("nats://a:4222,nats://b:4222"), natscontext.WithUser("ops"),
		natscontext.WithPassword("s3cret"), natscontext.WithCA("/etc/corral/ca.pem"),
		natscontext.WithInboxPrefix("_INBOX_ops"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nctx.Save("corral-test"); err != nil {
		t.Fatal(err)
	}
	o, err := bus.ClientOptions{Context: "corral-test", Password: "given"}.WithContext()
	if err != nil {
		t.Fatal(err)
	}
	want := bus.ClientOptions{Context: "corral-test", Servers: "nats://a:4222,nats://b:4222", User: "ops",
		Password: "given", TLSCA: "/etc/corral/ca.pem", InboxPrefix: "_INBOX_ops"}
	if o != want {
		t.Errorf("options = %+v\nwant      %+v", o, want)
	}

	for _, bad := range []string{"../x", "a/b", ".hidden"} {
		if _, err := (bus.ClientOptions{Context: bad}).WithContext(); err == nil || !strings.Contains(err.Error(), "invalid context name") {
			t.Errorf("context %q: %v, want invalid context name", bad, err)
		}
	}
	if _, err := (bus.ClientOptions{Context: "missing"}).WithContext(); err == nil || !strings.Contains(err.Error(), `cannot load nats context "missing"`) {
		t.Errorf("missing context: %v", err)
	}
	path, _ := bus.ContextPath("junk")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (bus.ClientOptions{Context: "junk"}).WithContext(); err == nil || !strings.Contains(err.Error(), filepath.Base(path)) {
		t.Errorf("junk context: %v, want the file named", err)
	}
}

func TestFromEnvFillsOnlyWhatIsUnset(t *testing.T) {
	env := map[string]string{"NATS_URL": "nats://env:4222", "NATS_USER": "envuser", "NATS_PASSWORD": "envpw", "NATS_CONTEXT": "c"}
	o := bus.ClientOptions{User: "flag"}.FromEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if o.Servers != "nats://env:4222" || o.User != "flag" || o.Password != "envpw" || o.Context != "c" {
		t.Errorf("options = %+v", o)
	}
}

func TestNATSOptionsRefuseWhatCannotWork(t *testing.T) {
	for _, tc := range []struct {
		o    bus.ClientOptions
		want string
	}{
		{bus.ClientOptions{Password: "x"}, "a password needs a user"},
		{bus.ClientOptions{User: "u", Password: "p", Token: "t"}, "give one way to sign in"},
		{bus.ClientOptions{TLSCert: "c.pem"}, "needs both the certificate and its key"},
		{bus.ClientOptions{Nkey: "/nonexistent/seed"}, "cannot read nkey seed"},
	} {
		if _, err := tc.o.NATSOptions(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.o, err, tc.want)
		}
	}
}

func TestRedactURLs(t *testing.T) {
	for in, want := range map[string]string{
		"nats://a:4222":                           "nats://a:4222",
		"nats://ops:s3cret@a:4222":                "nats://ops:xxxxx@a:4222",
		"nats://tok3n@a:4222":                     "nats://xxxxx@a:4222",
		"nats://u:p@a:4222, nats://b:4222":        "nats://u:xxxxx@a:4222,nats://b:4222",
		"tls://u:p%40ss@a:4222,nats://v:q@b:4222": "tls://u:xxxxx@a:4222,nats://v:xxxxx@b:4222",
	} {
		got := bus.RedactURLs(in)
		if got != want {
			t.Errorf("RedactURLs(%q) = %q, want %q", in, got, want)
		}
		for _, secret := range []string{"s3cret", "tok3n", ":p@", "p%40ss", ":q@"} {
			if strings.Contains(got, secret) {
				t.Errorf("RedactURLs(%q) = %q keeps %q", in, got, secret)
			}
		}
	}
}
