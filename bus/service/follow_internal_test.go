package service

import "testing"

// A user is named by its inbox prefix; any other reply subject names none.
func TestUserOf(t *testing.T) {
	for _, tc := range []struct{ reply, want string }{
		{"_INBOX_alice.9NqVnHKYLTvvO4vJzU33ZI.7", "_INBOX_alice"}, // a user, whatever its connection
		{"_INBOX_alice.other.1", "_INBOX_alice"},
		{"_INBOX.9NqVnHKYLTvvO4vJzU33ZI.7", ""}, // a connection without a user (a node's)
		{"app.inbox.conn.7", ""},
		{"_INBOX_.x.1", ""}, // no user named
		{"", ""},
	} {
		if got := userOf(tc.reply); got != tc.want {
			t.Errorf("userOf(%q) = %q, want %q", tc.reply, got, tc.want)
		}
	}
}
