package service

import "testing"

// A requester is a user by its inbox prefix, else a connection by its
// requests' common prefix.
func TestRequesterOf(t *testing.T) {
	for _, tc := range []struct{ reply, want string }{
		{"_INBOX_alice.9NqVnHKYLTvvO4vJzU33ZI.7", "_INBOX_alice"}, // a user, whatever its connection
		{"_INBOX_alice.other.1", "_INBOX_alice"},
		{"_INBOX.9NqVnHKYLTvvO4vJzU33ZI.7", "_INBOX.9NqVnHKYLTvvO4vJzU33ZI"}, // a connection
		{"app.inbox.conn.7", "app.inbox.conn"},
		{"_INBOX.9NqVnHKYLTvvO4vJzU33ZI", "_INBOX.9NqVnHKYLTvvO4vJzU33ZI"}, // old style: the request
		{"_INBOX_.x.1", "_INBOX_.x"},                                       // no user named
		{"", ""},
	} {
		if got := requesterOf(tc.reply); got != tc.want {
			t.Errorf("requesterOf(%q) = %q, want %q", tc.reply, got, tc.want)
		}
	}
}
