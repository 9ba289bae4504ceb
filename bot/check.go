package bot

import (
	"context"
	"errors"

	"github.com/slack-go/slack"
)

// Identity is who a bot token belongs to (auth.test).
type Identity struct {
	User, UserID, Team, TeamID string
}

// TokenError is Slack's refusal of a token: its error code ("invalid_auth",
// "token_revoked", …) and what the code means for an operator.
type TokenError struct {
	Code string
	Hint string
	Err  error
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
	"missing_scope":          "the token lacks a scope (the app token needs connections:write)",
}

// tokenError turns a Slack error into a *TokenError by its error code.
func tokenError(err error) error {
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		return &TokenError{Code: se.Err, Hint: tokenHints[se.Err], Err: err}
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
