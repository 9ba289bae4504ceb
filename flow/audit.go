package flow

import (
	"context"
	"fmt"
	"slices"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/commands"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/reply"
)

// /computebot audit: the audit log for approvers, privately, newest first
// and paged. The first page fixes the window (since, until now) and the
// Next page button carries it, so later pages neither shift nor repeat
// when entries are recorded in between.
//
// The filters are computebot.AuditFilter's, as in the computebot audit
// command.

// auditPageCommand is a click on an audit page's Next page button.
type auditPageCommand struct {
	query  reply.AuditQuery
	offset int
}

func (auditPageCommand) CommandName() string { return "page" }

// auditPageClick reads the value of an audit page's Next page button
// (reply.AuditPageValue).
func auditPageClick(value string) (commands.Command, error) {
	q, offset, ok := reply.ParseAuditPageValue(value)
	if !ok || (q.Instance != "" && !commands.IsInstanceID(q.Instance)) || (q.User != "" && !commands.IsUserID(q.User)) {
		return nil, fmt.Errorf("bad audit page value %q", value)
	}
	return auditPageCommand{query: q, offset: offset}, nil
}

// auditQuery is the window and filter of a typed /computebot audit.
func (f *Flow) auditQuery(c *commands.Audit) reply.AuditQuery {
	now := f.now()
	return reply.AuditQuery{Instance: c.Instance, User: c.User, Since: now.Add(-c.Since), Until: now}
}

// auditLog answers /computebot audit and its Next page clicks (approvers;
// the clicker is authorized again).
func (f *Flow) auditLog(ctx context.Context, o Origin, q reply.AuditQuery, offset int) {
	d, err := f.authz.Authorize(ctx, policy.Action{Kind: policy.ActionAuditLog, Actor: o.User})
	if d.Verdict != policy.Allow {
		if err != nil {
			f.log.Error("authorize audit log", "user", o.User, "err", err)
		}
		f.tell(ctx, o, reply.Refusal(d.Refusal))
		return
	}
	all, err := f.store.AuditSince(ctx, q.Since)
	if err != nil {
		f.log.Error("read audit log", "err", err)
		f.tell(ctx, o, reply.AuditLogFailed(computebot.UserMessage(err)))
		return
	}
	kept := computebot.AuditFilter{Instance: q.Instance, User: q.User}.Keep(all)
	entries := make([]computebot.AuditEntry, 0, len(kept))
	for _, e := range slices.Backward(kept) { // newest first
		if !e.Time.After(q.Until) {
			entries = append(entries, e)
		}
	}
	f.tell(ctx, o, reply.AuditLog(entries, offset, q))
}
