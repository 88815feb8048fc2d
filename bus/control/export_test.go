package control

import "context"

// FollowSet is what FollowAll keeps of the processes it follows.
type FollowSet = followSet

// NewFollowSet returns a FollowSet that remembers remember ended
// processes.
func NewFollowSet(remember int) *FollowSet { return newFollowSet(remember) }

// Size is how many processes s knows.
func (s *FollowSet) Size() int { return s.size() }

// FollowAllWith is FollowAll keeping what it follows in followed.
func (c *Control) FollowAllWith(ctx context.Context, sel Selector, opts FollowOptions, fn func(Followed) error, followed *FollowSet) error {
	return c.followAll(ctx, sel, opts, fn, followed)
}
