package flow

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/computebot/computebot/commands"
	"github.com/computebot/computebot/reply"
)

// A button's value carries its command, so clicks go down the same pipeline
// as typed commands (Accept, then Run); the clicker, not the message's
// author, is the one authorized.

// decideCommand is an Approve or Deny click on a request message.
type decideCommand struct {
	requestID string
	approve   bool
	// messageTS is the clicked message: the request's own message, so its
	// thread is the request's thread.
	messageTS string
	// fromHome: clicked on the approver's home tab, where there is no
	// message to check the request against (the request must be pending,
	// and policy says who may decide).
	fromHome bool
}

func (c decideCommand) CommandName() string {
	if c.approve {
		return reply.ActionApprove
	}
	return reply.ActionDeny
}

// pageCommand asks for another page of a list.
type pageCommand struct {
	list   string // "instances" or "lambda"
	all    bool
	offset int
}

func (pageCommand) CommandName() string { return "page" }

// noticeCommand is a click on an idle notice: Keep running or Stop now.
type noticeCommand struct {
	instanceID string
	keep       bool
	messageTS  string // the clicked message: the notice's own
}

func (c noticeCommand) CommandName() string {
	if c.keep {
		return "keep running"
	}
	return "stop now"
}

// Click turns a button's action ID and value into the command it stands
// for. messageTS is the message the button was on.
func Click(actionID, value, messageTS string) (commands.Command, error) {
	switch actionID {
	case reply.ActionApprove, reply.ActionDeny:
		if value == "" {
			return nil, fmt.Errorf("empty request ID on %s", actionID)
		}
		return decideCommand{requestID: value, approve: actionID == reply.ActionApprove, messageTS: messageTS}, nil
	case reply.ActionHomeApprove, reply.ActionHomeDeny:
		if value == "" {
			return nil, fmt.Errorf("empty request ID on %s", actionID)
		}
		return decideCommand{requestID: value, approve: actionID == reply.ActionHomeApprove, fromHome: true}, nil
	case reply.ActionOpenLaunchForm:
		return &commands.OpenLaunchForm{}, nil
	case reply.ActionStop:
		return &commands.Stop{Target: value}, nil
	case reply.ActionStart:
		return &commands.Start{Target: value}, nil
	case reply.ActionTerminate:
		return &commands.Terminate{Target: value}, nil
	case reply.ActionExtend:
		id, h, ok := strings.Cut(value, "|")
		n, err := strconv.Atoi(h)
		if !ok || err != nil || n < commands.MinHours || n > commands.MaxHours {
			return nil, fmt.Errorf("bad extend value %q", value)
		}
		return &commands.Extend{Target: id, Hours: n}, nil
	case reply.ActionKeepRunning:
		return noticeCommand{instanceID: value, keep: true, messageTS: messageTS}, nil
	case reply.ActionStopNow:
		return noticeCommand{instanceID: value, messageTS: messageTS}, nil
	case reply.ActionPage:
		if strings.HasPrefix(value, "audit|") {
			return auditPageClick(value)
		}
		parts := strings.Split(value, "|")
		if len(parts) != 3 {
			return nil, fmt.Errorf("bad page value %q", value)
		}
		n, err := strconv.Atoi(parts[2])
		if err != nil || n < 0 {
			return nil, fmt.Errorf("bad page offset %q", value)
		}
		return pageCommand{list: parts[0], all: parts[1] == "all", offset: n}, nil
	}
	return nil, fmt.Errorf("unknown action %q", actionID)
}
