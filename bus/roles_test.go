package bus_test

import (
	"os"
	"strings"
	"testing"

	"github.com/corral-run/corral/bus"
)

// README's "Security" section documents the roles: every subject a role
// allows or denies is named there, so the documentation cannot drift from
// what the server enforces.
func TestReadmeDocumentsEveryRoleSubject(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	start := strings.Index(readme, "## Security")
	end := strings.Index(readme[start+1:], "\n## ")
	if start < 0 || end < 0 {
		t.Fatal("README has no Security section")
	}
	section := readme[start : start+1+end]
	for _, r := range bus.Roles {
		p, ok := bus.RolePermissions(r, bus.InboxPrefix("<user>"))
		if !ok {
			t.Fatalf("role %s has no permissions", r)
		}
		for _, list := range [][]string{p.PublishAllow, p.PublishDeny, p.SubscribeAllow, p.SubscribeDeny} {
			for _, subject := range list {
				doc := strings.NewReplacer(bus.StreamName, "<stream>", "KV_"+bus.RegistryBucket, "<stream>",
					"KV_"+bus.StatsBucket, "<stream>").Replace(subject)
				if !strings.Contains(section, "`"+subject+"`") && !strings.Contains(section, "`"+doc+"`") {
					t.Errorf("README's Security section does not name %s (role %s)", subject, r)
				}
			}
		}
	}
	if _, ok := bus.RolePermissions("admin", "_INBOX_x"); ok {
		t.Error("an unknown role has permissions")
	}
}
