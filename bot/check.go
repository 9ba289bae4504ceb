package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/slack-go/slack"
)

// Identity is who a bot token belongs to (auth.test).
type Identity struct {
	User, UserID, Team, TeamID string
}

// TokenError is Slack's refusal of a token: its error code ("invalid_auth",
// "token_revoked", …) and what the code means for an operator.
type TokenError struct {
	Code   string
	Hint   string
	Needed string // for missing_scope: the scope Slack says is needed, when it says
	Err    error
}

func (e *TokenError) Error() string {
	if e.Hint == "" {
		return e.Code
	}
	return e.Code + ": " + e.Hint
}

func (e *TokenError) Unwrap() error { return e.Err }

// tokenHints explain the Slack error codes an operator is likely to meet.
var tokenHints = map[string]string{
	"invalid_auth":           "the token is not valid (revoked, mistyped or from another app)",
	"not_authed":             "no token reached Slack",
	"account_inactive":       "the token belongs to a deleted user or an uninstalled app",
	"token_revoked":          "the token was revoked",
	"not_allowed_token_type": "wrong kind of token (bot token xoxb-… vs app-level token xapp-…)",
	"missing_scope":          "the app lacks a scope this call needs",
}

// fatalCodes are the answers that no retry can change: the token itself is
// wrong. The bot stops on them, saying which token and what to do.
var fatalCodes = map[string]bool{
	"invalid_auth": true, "not_authed": true, "account_inactive": true, "token_revoked": true,
	"not_allowed_token_type": true, "missing_scope": true,
}

// FatalTokenError is Slack refusing one of the bot's tokens for good.
type FatalTokenError struct {
	Token string // the environment variable: SLACK_BOT_TOKEN or SLACK_APP_TOKEN
	*TokenError
}

func (e *FatalTokenError) Error() string {
	app := e.Token == "SLACK_APP_TOKEN"
	if e.Code == "missing_scope" {
		// Not a bad token: the app lacks a scope, and a new token would
		// lack it too.
		scope := e.Needed
		if scope == "" {
			scope = "the scope listed in slack/manifest.yaml"
			if app {
				scope = "connections:write"
			}
		}
		where := "add it under OAuth & Permissions → Bot Token Scopes (or from slack/manifest.yaml), then reinstall the app and set the new SLACK_BOT_TOKEN"
		if app {
			where = "generate an app-level token with it under Basic Information → App-Level Tokens and set SLACK_APP_TOKEN"
		}
		return fmt.Sprintf("Slack refused %s: missing_scope (needed: %s); %s", e.Token, scope, where)
	}
	what := "create a new bot token (OAuth & Permissions → Bot User OAuth Token, xoxb-…) and set SLACK_BOT_TOKEN"
	if app {
		what = "create a new app-level token with connections:write (Basic Information → App-Level Tokens, xapp-…) and set SLACK_APP_TOKEN"
	}
	return fmt.Sprintf("Slack refused %s: %s; %s", e.Token, e.TokenError.Error(), what)
}

func (e *FatalTokenError) Unwrap() error { return e.TokenError }

// fatal returns err as a *FatalTokenError when Slack's answer means the
// token named can never work, else nil.
func fatal(token string, err error) *FatalTokenError {
	var te *TokenError
	if errors.As(tokenError(err), &te) && fatalCodes[te.Code] {
		return &FatalTokenError{Token: token, TokenError: te}
	}
	return nil
}

// tokenError turns a Slack error into a *TokenError by its error code.
func tokenError(err error) error {
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		return &TokenError{Code: se.Err, Hint: tokenHints[se.Err], Needed: se.Needed, Err: err}
	}
	return err
}

// CheckBotToken proves the bot token with auth.test. Slack's refusal is a
// *TokenError.
func (c *Chat) CheckBotToken(ctx context.Context) (Identity, error) {
	auth, err := c.api.AuthTestContext(ctx)
	if err != nil {
		return Identity{}, tokenError(err)
	}
	return Identity{User: auth.User, UserID: auth.UserID, Team: auth.Team, TeamID: auth.TeamID}, nil
}

// CheckAppToken proves the app-level token with apps.connections.open,
// which only hands out a socket URL: nothing is dialled.
func (c *Chat) CheckAppToken(ctx context.Context) error {
	if _, _, err := c.api.StartSocketModeContext(ctx); err != nil {
		return tokenError(err)
	}
	return nil
}

// Approver is what Slack says of one configured approver ID.
type Approver struct {
	ID string
	// A user's: their handle, and whether the account is deactivated or a
	// bot (neither can click Approve).
	Name         string
	Deleted, Bot bool
	// A user group's: how many members it has.
	Group   bool
	Members int
}

// LookupApprover asks Slack who an approver ID is: users.info for a user
// (U…, W…), usergroups.users.list for a user group (S…). An ID Slack does
// not know is a *TokenError with Code "user_not_found" or
// "no_such_subteam"; a token without users:read or usergroups:read, one
// with Code "missing_scope".
func (c *Chat) LookupApprover(ctx context.Context, id string) (Approver, error) {
	if strings.HasPrefix(id, "S") {
		members, err := c.api.GetUserGroupMembersContext(ctx, id)
		if err != nil {
			return Approver{}, tokenError(err)
		}
		return Approver{ID: id, Group: true, Members: len(members)}, nil
	}
	u, err := c.api.GetUserInfoContext(ctx, id)
	if err != nil {
		return Approver{}, tokenError(err)
	}
	return Approver{ID: id, Name: u.Name, Deleted: u.Deleted, Bot: u.IsBot}, nil
}
