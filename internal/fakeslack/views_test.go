package fakeslack

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"
)

func plain(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, s, false, false)
}

func mrkdwn(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, s, false, false)
}

func button(actionID, value, text string) *slack.ButtonBlockElement {
	return slack.NewButtonBlockElement(actionID, value, plain(text))
}

// simpleModal is a modal with a section and a button (for pushes).
func simpleModal(title, callbackID string) slack.ModalViewRequest {
	return slack.ModalViewRequest{
		Type:       slack.VTModal,
		Title:      plain(title),
		Close:      plain("Cancel"),
		CallbackID: callbackID,
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			slack.NewSectionBlock(mrkdwn("*"+title+"*"), nil, nil, slack.SectionBlockOptionBlockID("intro")),
			slack.NewActionBlock("buttons", button("more", "m", "More")),
		}},
	}
}

// launchModal is a form with the input kinds the value helpers cover.
func launchModal() slack.ModalViewRequest {
	hours := slack.NewNumberInputBlockElement(nil, "hours_in", false)
	hours.MinValue, hours.MaxValue = "1", "72"
	name := slack.NewPlainTextInputBlockElement(nil, "name_in")
	name.MaxLength = 20
	channel := slack.NewInputBlock("chan", plain("Channel"), nil,
		slack.NewOptionsSelectBlockElement(slack.OptTypeConversations, nil, "chan_in"))
	channel.Optional = true
	return slack.ModalViewRequest{
		Type:            slack.VTModal,
		Title:           plain("Launch"),
		Submit:          plain("Launch"),
		CallbackID:      "launch",
		PrivateMetadata: `{"req":"r-1"}`,
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			slack.NewSectionBlock(mrkdwn("Launch an instance for <@U0ANA>"), nil, nil, slack.SectionBlockOptionBlockID("intro")),
			slack.NewInputBlock("name", plain("Name"), plain("Up to 20 characters"), name),
			slack.NewInputBlock("type", plain("Instance type"), nil, slack.NewOptionsSelectBlockElement(slack.OptTypeStatic, nil, "type_in",
				slack.NewOptionBlockObject("t3.micro", plain("t3.micro (cheap)"), nil),
				slack.NewOptionBlockObject("g5.xlarge", plain("g5.xlarge (GPU)"), nil))),
			slack.NewInputBlock("hours", plain("Hours"), nil, hours),
			channel,
		}},
	}
}

func viewErr(t *testing.T, err error) slack.SlackErrorResponse {
	t.Helper()
	var se slack.SlackErrorResponse
	if !errors.As(err, &se) {
		t.Fatalf("err = %v (%T), want a slack.SlackErrorResponse", err, err)
	}
	return se
}

// slashTrigger sends a slash command from user and returns its trigger_id
// once the client has it.
func slashTrigger(t *testing.T, h *harness, user string) string {
	t.Helper()
	id, err := h.s.SendSlashCommand(SlashCommand{Command: "/launch", UserID: user, ChannelID: "C0DS"})
	if err != nil {
		t.Fatal(err)
	}
	cmd, isCmd := h.nextEvent(t).Data.(slack.SlashCommand)
	if !isCmd {
		t.Fatal("not a slash command")
	}
	if _, err := h.s.WaitAck(testCtx(t), id); err != nil {
		t.Fatal(err)
	}
	return cmd.TriggerID
}

func nextCallback(t *testing.T, h *harness) slack.InteractionCallback {
	t.Helper()
	evt := h.nextEvent(t)
	cb, isCb := evt.Data.(slack.InteractionCallback)
	if !isCb {
		t.Fatalf("event data %T, want an interaction callback", evt.Data)
	}
	return cb
}

func TestTriggerIDs(t *testing.T) {
	h := newHarness(t)
	ctx := testCtx(t)
	h.s.AddUser("U0ANA", "ana")
	if err := h.s.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}

	// Every interaction carries a fresh trigger, issued to its user.
	slash := slashTrigger(t, h, "U0ANA")
	actionEnv, err := h.s.SendBlockAction(BlockAction{UserID: "U0BO", ChannelID: "C0DS", MessageTS: "1.000001", ActionID: "a", BlockID: "b"})
	if err != nil {
		t.Fatal(err)
	}
	action := nextCallback(t, h).TriggerID
	shortcutEnv, err := h.s.SendShortcut("U0ANA", "launch_shortcut")
	if err != nil {
		t.Fatal(err)
	}
	sc := nextCallback(t, h)
	if sc.Type != slack.InteractionTypeShortcut || sc.CallbackID != "launch_shortcut" || sc.User.ID != "U0ANA" || sc.User.Name != "ana" ||
		sc.Team.ID != TeamID || sc.TriggerID == "" || sc.ActionTs == "" {
		t.Errorf("shortcut = %+v", sc)
	}
	if _, err := h.s.WaitAck(ctx, shortcutEnv); err != nil {
		t.Fatal(err)
	}
	if slash == action || action == sc.TriggerID || slash == sc.TriggerID || slash == "" || action == "" {
		t.Errorf("trigger IDs %q %q %q", slash, action, sc.TriggerID)
	}
	for _, c := range []struct{ trigger, user, env string }{{action, "U0BO", actionEnv}, {sc.TriggerID, "U0ANA", shortcutEnv}} {
		tr, known := h.s.Trigger(c.trigger)
		if !known || tr.UserID != c.user || tr.EnvelopeID != c.env || tr.ViewID != "" || tr.IssuedAt.IsZero() ||
			tr.WrittenAt.Before(tr.IssuedAt) || tr.UsedBy != "" {
			t.Errorf("trigger %q = %+v, %v", c.trigger, tr, known)
		}
	}

	// A view Slack refuses does not use the trigger up.
	long := simpleModal("A title far too long for Slack", "x")
	if _, err := h.api.OpenView(slash, long); viewErr(t, err).Err != "invalid_arguments" {
		t.Errorf("long title: %v", err)
	}
	resp, err := h.api.OpenView(slash, simpleModal("Hello", "hello"))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := h.s.View(resp.View.ID); v.UserID != "U0ANA" {
		t.Errorf("modal opened for %q", v.UserID)
	}
	if tr, _ := h.s.Trigger(slash); tr.UsedBy != "views.open" || tr.UsedAt.IsZero() {
		t.Errorf("used trigger = %+v", tr)
	}
	// Used once; unknown; too old.
	if _, err := h.api.OpenView(slash, simpleModal("Again", "again")); viewErr(t, err).Err != ErrCodeExchangedTrigger {
		t.Errorf("reused trigger: %v", err)
	}
	if _, err := h.api.PushView(slash, simpleModal("Again", "again")); viewErr(t, err).Err != ErrCodeExchangedTrigger {
		t.Errorf("reused trigger pushed: %v", err)
	}
	if _, err := h.api.OpenView("12345.98765.abcd2358fdea", simpleModal("Unknown", "u")); viewErr(t, err).Err != ErrCodeInvalidTrigger {
		t.Errorf("unknown trigger: %v", err)
	}
	h.s.SetTriggerTTL(50 * time.Millisecond)
	late := slashTrigger(t, h, "U0ANA")
	time.Sleep(100 * time.Millisecond)
	if _, err := h.api.OpenView(late, simpleModal("Late", "late")); viewErr(t, err).Err != ErrCodeExpiredTrigger {
		t.Errorf("expired trigger: %v", err)
	}
	h.s.SetTriggerTTL(0)
	// A shortcut's trigger opens a modal; the clock started at the write.
	if _, err := h.api.OpenView(sc.TriggerID, simpleModal("From shortcut", "sc")); err != nil {
		t.Errorf("shortcut trigger: %v", err)
	}

	calls := h.s.Calls("views.open")
	var codes []string
	for _, c := range calls {
		codes = append(codes, c.Error)
	}
	want := []string{"invalid_arguments", "", ErrCodeExchangedTrigger, ErrCodeInvalidTrigger, ErrCodeExpiredTrigger, ""}
	if !slices.Equal(codes, want) {
		t.Errorf("views.open errors = %q, want %q", codes, want)
	}
	if calls[1].Params["trigger_id"] != slash || !strings.Contains(calls[1].Params["view"], `"callback_id":"hello"`) {
		t.Errorf("recorded params = %v", calls[1].Params)
	}
}

func TestViewsOpenAnswerAndAccessors(t *testing.T) {
	h := newHarness(t)
	ctx := testCtx(t)
	h.s.AddUser("U0ANA", "ana")
	if err := h.s.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	m := launchModal()
	m.ExternalID = "launch-r-1"
	resp, err := h.api.OpenView(slashTrigger(t, h, "U0ANA"), m)
	if err != nil {
		t.Fatal(err)
	}
	v := resp.View
	if !strings.HasPrefix(v.ID, "V") || len(v.ID) < 9 || v.TeamID != TeamID || v.Type != slack.VTModal || v.Hash == "" ||
		v.RootViewID != v.ID || v.PreviousViewID != "" || v.AppID != AppID || v.BotID != BotID || v.CallbackID != "launch" ||
		v.PrivateMetadata != `{"req":"r-1"}` || v.ExternalID != "launch-r-1" || v.State == nil || len(v.State.Values) != 0 ||
		v.Title == nil || v.Title.Text != "Launch" || v.Submit == nil || v.Submit.Text != "Launch" || v.Close != nil {
		t.Errorf("view = %+v", v)
	}
	if len(v.Blocks.BlockSet) != 5 {
		t.Fatalf("%d blocks", len(v.Blocks.BlockSet))
	}
	if in, isInput := v.Blocks.BlockSet[1].(*slack.InputBlock); !isInput || in.BlockID != "name" || in.Label.Text != "Name" {
		t.Errorf("block 1 = %#v", v.Blocks.BlockSet[1])
	}

	views := h.s.Views()
	if len(views) != 1 {
		t.Fatalf("views = %+v", views)
	}
	got := views[0]
	if got.ID != v.ID || got.Type != "modal" || got.Hash != v.Hash || got.UserID != "U0ANA" || got.Title != "Launch" ||
		got.Submit != "Launch" || got.CallbackID != "launch" || got.ExternalID != "launch-r-1" || got.Closed || got.Via != "views.open" ||
		len(got.Blocks) != 5 || got.RootViewID != v.ID || string(got.State) != "{}" {
		t.Errorf("Views()[0] = %+v", got)
	}
	wantText := "Launch an instance for @ana\nName\nUp to 20 characters\nInstance type\nHours\nChannel"
	if got.Text != wantText {
		t.Errorf("Text = %q, want %q", got.Text, wantText)
	}
	if one, found := h.s.View(v.ID); !found || one.Hash != v.Hash {
		t.Errorf("View(%s) = %+v, %v", v.ID, one, found)
	}
	if _, found := h.s.View("VNOPE"); found {
		t.Error("unknown view found")
	}
	w, err := h.s.WaitView(ctx, func(v View) bool { return v.CallbackID == "launch" })
	if err != nil || w.ID != v.ID {
		t.Errorf("WaitView = %+v, %v", w, err)
	}
	// The same external_id cannot be used by two open views.
	m2 := simpleModal("Other", "other")
	m2.ExternalID = "launch-r-1"
	if _, err := h.api.OpenView(slashTrigger(t, h, "U0ANA"), m2); viewErr(t, err).Err != "duplicate_external_id" {
		t.Errorf("duplicate external_id: %v", err)
	}
	// Blocks without block_id get one, as on Slack.
	noID := slack.ModalViewRequest{Type: slack.VTModal, Title: plain("No IDs"), Blocks: slack.Blocks{BlockSet: []slack.Block{
		slack.NewDividerBlock(), slack.NewActionBlock("", button("", "v", "Go")),
	}}}
	resp, err = h.api.OpenView(slashTrigger(t, h, "U0ANA"), noID)
	if err != nil {
		t.Fatal(err)
	}
	ab, isActions := resp.View.Blocks.BlockSet[1].(*slack.ActionBlock)
	if resp.View.Blocks.BlockSet[0].ID() == "" || !isActions || ab.BlockID == "" || ab.Elements.ElementSet[0].(*slack.ButtonBlockElement).ActionID == "" {
		t.Errorf("assigned IDs: %#v", resp.View.Blocks.BlockSet)
	}
}

func TestViewValidation(t *testing.T) {
	s, api := newAPI(t)
	s.AddUser("U0ANA", "ana")
	// Validation comes before the trigger: a valid view with an unknown
	// trigger answers invalid_trigger_id.
	const trigger = "1.2.unknown"
	sections := func(n int, text string) []slack.Block {
		var out []slack.Block
		for range n {
			out = append(out, slack.NewSectionBlock(mrkdwn(text), nil, nil))
		}
		return out
	}
	with := func(f func(*slack.ModalViewRequest)) slack.ModalViewRequest {
		m := simpleModal("Title", "cb")
		f(&m)
		return m
	}
	input := func(label *slack.TextBlockObject, el slack.BlockElement) *slack.InputBlock {
		return slack.NewInputBlock("in", label, nil, el)
	}
	cases := []struct {
		name string
		view slack.ModalViewRequest
		code string
		msg  string // one of the messages
	}{
		{"title at the limit", with(func(m *slack.ModalViewRequest) { m.Title = plain(strings.Repeat("x", 24)) }), ErrCodeInvalidTrigger, ""},
		{"title too long", with(func(m *slack.ModalViewRequest) { m.Title = plain(strings.Repeat("é", 25)) }), "invalid_arguments",
			"[ERROR] must be less than 25 characters [json-pointer:/view/title/text]"},
		{"no title", with(func(m *slack.ModalViewRequest) { m.Title = nil }), "invalid_arguments",
			"[ERROR] missing required field: title [json-pointer:/view]"},
		{"mrkdwn title", with(func(m *slack.ModalViewRequest) { m.Title = mrkdwn("x") }), "invalid_arguments",
			"[ERROR] must be `plain_text` [json-pointer:/view/title/type]"},
		{"submit too long", with(func(m *slack.ModalViewRequest) { m.Submit = plain(strings.Repeat("x", 25)) }), "invalid_arguments",
			"[ERROR] must be less than 25 characters [json-pointer:/view/submit/text]"},
		{"close too long", with(func(m *slack.ModalViewRequest) { m.Close = plain(strings.Repeat("x", 25)) }), "invalid_arguments",
			"[ERROR] must be less than 25 characters [json-pointer:/view/close/text]"},
		{"100 blocks", with(func(m *slack.ModalViewRequest) { m.Blocks.BlockSet = sections(100, "x") }), ErrCodeInvalidTrigger, ""},
		{"101 blocks", with(func(m *slack.ModalViewRequest) { m.Blocks.BlockSet = sections(101, "x") }), "invalid_arguments",
			"[ERROR] must be less than 101 items [json-pointer:/view/blocks]"},
		{"too large", with(func(m *slack.ModalViewRequest) { m.Blocks.BlockSet = sections(90, strings.Repeat("y", 3000)) }), "view_too_large", ""},
		{"callback_id", with(func(m *slack.ModalViewRequest) { m.CallbackID = strings.Repeat("c", 256) }), "invalid_arguments",
			"[ERROR] must be less than 256 characters [json-pointer:/view/callback_id]"},
		{"private_metadata at the limit", with(func(m *slack.ModalViewRequest) { m.PrivateMetadata = strings.Repeat("p", 3000) }), ErrCodeInvalidTrigger, ""},
		{"private_metadata", with(func(m *slack.ModalViewRequest) { m.PrivateMetadata = strings.Repeat("p", 3001) }), "invalid_arguments",
			"[ERROR] must be less than 3001 characters [json-pointer:/view/private_metadata]"},
		{"input without label", with(func(m *slack.ModalViewRequest) {
			m.Submit = plain("OK")
			m.Blocks.BlockSet = []slack.Block{input(nil, slack.NewPlainTextInputBlockElement(nil, "a"))}
		}), "invalid_arguments", "[ERROR] missing required field: label [json-pointer:/view/blocks/0]"},
		{"input without element", with(func(m *slack.ModalViewRequest) {
			m.Submit = plain("OK")
			m.Blocks.BlockSet = []slack.Block{input(plain("L"), nil)}
		}), "invalid_arguments", "[ERROR] missing required field: element [json-pointer:/view/blocks/0]"},
		{"input without submit", with(func(m *slack.ModalViewRequest) {
			m.Blocks.BlockSet = []slack.Block{slack.NewDividerBlock(), input(plain("L"), slack.NewPlainTextInputBlockElement(nil, "a"))}
		}), "invalid_arguments", "[ERROR] must define `submit` to use an `input` block in modals [json-pointer:/view/blocks/1/input]"},
		{"duplicate block_id", with(func(m *slack.ModalViewRequest) {
			m.Blocks.BlockSet = []slack.Block{
				slack.NewSectionBlock(mrkdwn("a"), nil, nil, slack.SectionBlockOptionBlockID("same")),
				slack.NewActionBlock("same", button("b", "v", "B")),
			}
		}), "invalid_arguments", "[ERROR] duplicate block_id `same` [json-pointer:/view/blocks/1/block_id]"},
		{"home view", with(func(m *slack.ModalViewRequest) { m.Type = slack.VTHomeTab }), "invalid_arguments",
			"[ERROR] must be `modal` for this method, not `home` [json-pointer:/view/type]"},
	}
	for _, c := range cases {
		_, err := api.OpenView(trigger, c.view)
		se := viewErr(t, err)
		if se.Err != c.code || (c.msg != "" && !slices.Contains(se.ResponseMetadata.Messages, c.msg)) {
			t.Errorf("%s: %s %q, want %s %q", c.name, se.Err, se.ResponseMetadata.Messages, c.code, c.msg)
		}
	}
	// Every problem is listed.
	bad := with(func(m *slack.ModalViewRequest) {
		m.Title, m.CallbackID = plain(strings.Repeat("x", 30)), strings.Repeat("c", 300)
	})
	if _, err := api.OpenView(trigger, bad); len(viewErr(t, err).ResponseMetadata.Messages) != 2 {
		t.Errorf("two problems: %v", viewErr(t, err).ResponseMetadata.Messages)
	}

	// views.publish: home views only, same block limits.
	home := slack.HomeTabViewRequest{Type: slack.VTHomeTab, Blocks: slack.Blocks{BlockSet: sections(101, "x")}}
	if _, err := api.PublishView("U0ANA", home, ""); !slices.Contains(viewErr(t, err).ResponseMetadata.Messages, "[ERROR] must be less than 101 items [json-pointer:/view/blocks]") {
		t.Errorf("101 home blocks: %v", err)
	}
	home = slack.HomeTabViewRequest{Type: slack.VTModal, Blocks: slack.Blocks{BlockSet: sections(1, "x")}}
	if _, err := api.PublishView("U0ANA", home, ""); viewErr(t, err).Err != "invalid_arguments" {
		t.Errorf("modal published: %v", err)
	}
	// A form-encoded call, the view a JSON string, is read the same way.
	_, out := post(t, s.APIURL()+"views.open", "application/x-www-form-urlencoded", "xoxb-1",
		url.Values{"trigger_id": {trigger}, "view": {`{"type":"modal","title":{"type":"plain_text","text":"` + strings.Repeat("x", 25) + `"},"blocks":[]}`}}.Encode())
	if out["error"] != "invalid_arguments" {
		t.Errorf("form body: %v", out)
	}
	if _, out = post(t, s.APIURL()+"views.open", "application/json", "xoxb-1", `{"trigger_id":"x"}`); out["error"] != "invalid_arguments" {
		t.Errorf("no view: %v", out)
	}
	if _, out = post(t, s.APIURL()+"views.open", "application/json", "xoxb-1", `{"view":{"type":"modal","title":{"type":"plain_text","text":"T"},"blocks":[]}}`); out["error"] != "invalid_arguments" {
		t.Errorf("no trigger_id: %v", out)
	}
}

func TestViewsUpdateAndPush(t *testing.T) {
	h := newHarness(t)
	ctx := testCtx(t)
	h.s.AddUser("U0ANA", "ana")
	if err := h.s.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	m := simpleModal("Step 1", "step1")
	m.ExternalID = "flow-1"
	opened, err := h.api.OpenView(slashTrigger(t, h, "U0ANA"), m)
	if err != nil {
		t.Fatal(err)
	}
	root := opened.View

	// views.update by view_id with the current hash: a new hash.
	upd, err := h.api.UpdateView(simpleModal("Step 1b", "step1"), "", root.Hash, root.ID)
	if err != nil {
		t.Fatal(err)
	}
	if upd.View.ID != root.ID || upd.View.Hash == root.Hash || upd.View.Title.Text != "Step 1b" || upd.View.ExternalID != "flow-1" {
		t.Errorf("updated = %+v", upd.View)
	}
	if _, err := h.api.UpdateView(simpleModal("Stale", "step1"), "", root.Hash, root.ID); viewErr(t, err).Err != "hash_conflict" {
		t.Errorf("stale hash: %v", err)
	}
	// By external_id, without a hash.
	if upd, err = h.api.UpdateView(simpleModal("Step 1c", "step1"), "flow-1", "", ""); err != nil || upd.View.ID != root.ID {
		t.Errorf("update by external_id: %+v, %v", upd, err)
	}
	if _, err := h.api.UpdateView(simpleModal("X", "x"), "", "", "VNOSUCH"); viewErr(t, err).Err != "not_found" {
		t.Errorf("unknown view: %v", err)
	}
	// A form-encoded views.update.
	_, out := post(t, h.s.APIURL()+"views.update", "application/x-www-form-urlencoded", "xoxb-1",
		url.Values{"view_id": {root.ID}, "view": {`{"type":"modal","title":{"type":"plain_text","text":"Step 1d"},"blocks":[{"type":"actions","block_id":"buttons","elements":[{"type":"button","action_id":"more","text":{"type":"plain_text","text":"More"}}]}]}`}}.Encode())
	if out["ok"] != true {
		t.Fatalf("form update: %v", out)
	}
	if v, _ := h.s.View(root.ID); v.Title != "Step 1d" || v.Updated != 3 || v.Text != "More" {
		t.Errorf("after updates: %+v", v)
	}

	// A click in the modal: block_actions from a view, whose trigger pushes.
	push := func(from, title string) slack.View {
		t.Helper()
		id, err := h.s.ClickInView("U0ANA", from, "More")
		if err != nil {
			t.Fatal(err)
		}
		cb := nextCallback(t, h)
		if _, err := h.s.WaitAck(ctx, id); err != nil {
			t.Fatal(err)
		}
		if cb.Type != slack.InteractionTypeBlockActions || cb.Container.Type != "view" || cb.Container.ViewID != from ||
			cb.View.ID != from || cb.Channel.ID != "" || cb.ResponseURL != "" || cb.Message.Timestamp != "" || cb.TriggerID == "" ||
			len(cb.ActionCallback.BlockActions) != 1 || cb.ActionCallback.BlockActions[0].ActionID != "more" {
			t.Errorf("click in view = %+v", cb)
		}
		if tr, _ := h.s.Trigger(cb.TriggerID); tr.ViewID != from || tr.UserID != "U0ANA" {
			t.Errorf("trigger = %+v", tr)
		}
		resp, err := h.api.PushView(cb.TriggerID, simpleModal(title, title))
		if err != nil {
			t.Fatalf("push %s: %v", title, err)
		}
		return resp.View
	}
	second := push(root.ID, "Step 2")
	if second.RootViewID != root.ID || second.PreviousViewID != root.ID || second.ID == root.ID {
		t.Errorf("pushed = %+v", second)
	}
	if _, err := h.s.ClickInView("U0ANA", root.ID, "More"); err == nil {
		t.Error("clicked in a covered view")
	}
	if _, err := h.s.ClickInView("U0BO", second.ID, "More"); err == nil {
		t.Error("another user clicked in the modal")
	}
	third := push(second.ID, "Step 3")
	if third.PreviousViewID != second.ID || len(h.s.Views()) != 3 {
		t.Errorf("third = %+v; views %d", third, len(h.s.Views()))
	}
	// Slack stacks at most 3 views.
	id, _ := h.s.ClickInView("U0ANA", third.ID, "More")
	cb := nextCallback(t, h)
	_, _ = h.s.WaitAck(ctx, id)
	if _, err := h.api.PushView(cb.TriggerID, simpleModal("Step 4", "s4")); viewErr(t, err).Err != "push_limit_reached" {
		t.Errorf("fourth push: %v", err)
	}
	// A trigger from outside any modal pushes nothing.
	if _, err := h.api.PushView(slashTrigger(t, h, "U0ANA"), simpleModal("Stray", "s")); viewErr(t, err).Err != "not_found" {
		t.Errorf("push with a slash trigger: %v", err)
	}
	if got := h.s.ViewButtons(third.ID); !slices.Equal(got, []string{"More"}) {
		t.Errorf("buttons = %v", got)
	}
}

func TestHomeTab(t *testing.T) {
	h := newHarness(t)
	ctx := testCtx(t)
	if err := h.s.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	home := slack.HomeTabViewRequest{Type: slack.VTHomeTab, CallbackID: "home", Blocks: slack.Blocks{BlockSet: []slack.Block{
		slack.NewHeaderBlock(plain("Your instances")),
		slack.NewSectionBlock(mrkdwn("*i-0abc* t3.micro :large_green_circle: running for <@U0ANA>"), []*slack.TextBlockObject{mrkdwn("*Cost*"), plain("$0.10")},
			slack.NewAccessory(button("stop", "i-0abc", "Stop")), slack.SectionBlockOptionBlockID("i-0abc")),
		slack.NewContextBlock("ctx", mrkdwn("updated just now")),
		slack.NewActionBlock("actions", button("launch", "new", "Launch"), button("refresh", "r", "Refresh")),
	}}}
	if _, err := h.api.PublishView("U0ANA", home, ""); viewErr(t, err).Err != "user_not_found" {
		t.Errorf("unknown user: %v", err)
	}
	if _, err := h.s.SendAppHomeOpened("U0ANA"); err != nil {
		t.Fatal(err)
	}
	first := homeOpened(t, h)
	if first.View != nil {
		t.Errorf("home view before any publish: %+v", first.View)
	}
	h.s.AddUser("U0ANA", "ana")
	resp, err := h.api.PublishView("U0ANA", home, "")
	if err != nil {
		t.Fatal(err)
	}
	v := resp.View
	if v.Type != slack.VTHomeTab || v.ID == "" || v.Hash == "" || v.CallbackID != "home" || v.Title != nil || v.RootViewID != v.ID {
		t.Errorf("home = %+v", v)
	}
	hv, found := h.s.HomeView("U0ANA")
	if !found || hv.ID != v.ID || hv.UserID != "U0ANA" || hv.Via != "views.publish" || hv.Closed {
		t.Errorf("HomeView = %+v, %v", hv, found)
	}
	wantText := "Your instances\n*i-0abc* t3.micro 🟢 running for @ana\n*Cost*\n$0.10\nStop\nupdated just now\nLaunch\nRefresh"
	if hv.Text != wantText {
		t.Errorf("Text = %q, want %q", hv.Text, wantText)
	}
	if got := h.s.ViewButtons(v.ID); !slices.Equal(got, []string{"Stop", "Launch", "Refresh"}) {
		t.Errorf("buttons = %v", got)
	}
	if len(h.s.Views()) != 0 {
		t.Error("Views lists a home tab")
	}
	// Republishing: the hash guards against races; the ID stays.
	if _, err := h.api.PublishView("U0ANA", home, "1.stale"); viewErr(t, err).Err != "hash_conflict" {
		t.Errorf("stale hash: %v", err)
	}
	again, err := h.api.PublishView("U0ANA", home, v.Hash)
	if err != nil || again.View.ID != v.ID || again.View.Hash == v.Hash {
		t.Fatalf("republish = %+v, %v", again, err)
	}
	if hv, _ = h.s.HomeView("U0ANA"); hv.Updated != 1 {
		t.Errorf("Updated = %d", hv.Updated)
	}

	// app_home_opened carries the published view.
	envID, err := h.s.SendAppHomeOpened("U0ANA")
	if err != nil {
		t.Fatal(err)
	}
	opened := homeOpened(t, h)
	if opened.User != "U0ANA" || opened.Channel != dmChannel("U0ANA") || opened.Tab != "home" || opened.EventTimeStamp == "" ||
		opened.View == nil || opened.View.ID != v.ID || opened.View.Hash != again.View.Hash {
		t.Errorf("app_home_opened = %+v", opened)
	}
	if _, err := h.s.WaitAck(ctx, envID); err != nil {
		t.Fatal(err)
	}

	// A button in the home tab: no channel, message or response_url.
	if _, err := h.s.ClickInView("U0BO", v.ID, "Launch"); err == nil {
		t.Error("another user clicked in ana's home tab")
	}
	if _, err := h.s.ClickInView("U0ANA", v.ID, "Nope"); err == nil {
		t.Error("clicked a button that is not there")
	}
	if _, err := h.s.ClickInView("U0ANA", v.ID, "Launch"); err != nil {
		t.Fatal(err)
	}
	cb := nextCallback(t, h)
	act := cb.ActionCallback.BlockActions
	if cb.Type != slack.InteractionTypeBlockActions || cb.Container.Type != "view" || cb.Container.ViewID != v.ID || cb.View.ID != v.ID ||
		cb.View.Type != slack.VTHomeTab || cb.Channel.ID != "" || cb.ResponseURL != "" || cb.User.ID != "U0ANA" || cb.TriggerID == "" ||
		len(act) != 1 || act[0].ActionID != "launch" || act[0].BlockID != "actions" || act[0].Value != "new" || act[0].Type != "button" || act[0].Text.Text != "Launch" {
		t.Errorf("home click = %+v", cb)
	}
	// A home tab's trigger opens a modal, but pushes none.
	if _, err := h.api.PushView(cb.TriggerID, simpleModal("Pushed", "p")); !slices.Contains(viewErr(t, err).ResponseMetadata.Messages,
		"[ERROR] must match the `type` of the root view whose stack we're pushing onto [json-pointer:/view/type]") {
		t.Errorf("push from home: %v", err)
	}
	if _, err := h.api.OpenView(cb.TriggerID, launchModal()); err != nil {
		t.Errorf("open from home: %v", err)
	}
	// views.update works on home tabs too, with a home view.
	if _, err := h.api.UpdateView(simpleModal("Modal", "m"), "", "", v.ID); viewErr(t, err).Err != "invalid_arguments" {
		t.Errorf("modal over a home tab: %v", err)
	}
}

func homeOpened(t *testing.T, h *harness) *slackevents.AppHomeOpenedEvent {
	t.Helper()
	evt := h.nextEvent(t)
	outer, isOuter := evt.Data.(slackevents.EventsAPIEvent)
	if !isOuter || outer.InnerEvent.Type != string(slackevents.AppHomeOpened) {
		t.Fatalf("event %+v", evt.Data)
	}
	ev, isHome := outer.InnerEvent.Data.(*slackevents.AppHomeOpenedEvent)
	if !isHome {
		t.Fatalf("inner %T", outer.InnerEvent.Data)
	}
	return ev
}

func TestViewSubmission(t *testing.T) {
	h := newHarness(t)
	ctx := testCtx(t)
	h.s.AddUser("U0ANA", "ana")
	var mu sync.Mutex
	var next any // the ack payload for the next view_submission
	ackWith := func(p any) {
		mu.Lock()
		defer mu.Unlock()
		next = p
	}
	h.ackPayloads(func(evt socketmode.Event) any {
		if cb, isCb := evt.Data.(slack.InteractionCallback); isCb && cb.Type == slack.InteractionTypeViewSubmission {
			mu.Lock()
			defer mu.Unlock()
			return next
		}
		return nil
	})
	opened := openLaunchModal(t, h)
	vid := opened.View.ID
	values := map[string]map[string]any{
		"name":  {"name_in": TextValue("notebook")},
		"type":  {"type_in": SelectValue("g5.xlarge")},
		"hours": {"hours_in": NumberValue("8")},
	}
	submit := func(payload any) slack.InteractionCallback {
		t.Helper()
		ackWith(payload)
		id, err := h.s.SendViewSubmission("U0ANA", vid, values)
		if err != nil {
			t.Fatal(err)
		}
		cb := nextCallback(t, h)
		if _, err := h.s.WaitAck(ctx, id); err != nil {
			t.Fatal(err)
		}
		return cb
	}

	// 1. Errors on an input block: the modal stays, showing them.
	cb := submit(slack.NewErrorsViewSubmissionResponse(map[string]string{"hours": "At most 4 hours without approval"}))
	st := cb.View.State
	if cb.Type != slack.InteractionTypeViewSubmission || cb.View.ID != vid || cb.View.CallbackID != "launch" || cb.View.Hash != opened.View.Hash ||
		cb.View.PrivateMetadata != `{"req":"r-1"}` || cb.TriggerID == "" || cb.User.ID != "U0ANA" || cb.Team.ID != TeamID || st == nil {
		t.Fatalf("submission = %+v", cb)
	}
	if st.Values["name"]["name_in"].Value != "notebook" || st.Values["type"]["type_in"].SelectedOption.Value != "g5.xlarge" ||
		st.Values["type"]["type_in"].SelectedOption.Text.Text != "g5.xlarge (GPU)" || st.Values["hours"]["hours_in"].Value != "8" ||
		st.Values["hours"]["hours_in"].Type != "number_input" || st.Values["chan"]["chan_in"].Type != "conversations_select" ||
		st.Values["chan"]["chan_in"].SelectedConversation != "" {
		t.Errorf("state = %+v", st.Values)
	}
	if tr, _ := h.s.Trigger(cb.TriggerID); tr.ViewID != vid {
		t.Errorf("submission trigger = %+v", tr)
	}
	if errs := h.s.ViewErrors(vid); len(errs) != 1 || errs["hours"] != "At most 4 hours without approval" {
		t.Errorf("ViewErrors = %v", errs)
	}
	if v, _ := h.s.View(vid); v.Closed || !strings.Contains(string(v.State), `"notebook"`) {
		t.Errorf("view after errors = %+v", v)
	}

	// 2. Errors naming a block that is not an input: Slack refuses them.
	values["hours"] = map[string]any{"hours_in": NumberValue("4")}
	values["chan"] = map[string]any{"chan_in": ConversationValue("C0DS")}
	cb = submit(slack.NewErrorsViewSubmissionResponse(map[string]string{"intro": "no"}))
	if cb.View.State.Values["chan"]["chan_in"].SelectedConversation != "C0DS" {
		t.Errorf("conversation = %+v", cb.View.State.Values["chan"])
	}
	if bad := h.s.BadAcks(); len(bad) != 1 || bad[0].ViewID != vid || !strings.Contains(bad[0].Reason, `"intro"`) || !strings.Contains(string(bad[0].Payload), "intro") {
		t.Errorf("BadAcks = %+v", bad)
	}
	if errs := h.s.ViewErrors(vid); errs != nil {
		t.Errorf("errors shown after a refused ack: %v", errs)
	}

	// 3. update replaces the view: same ID, new hash.
	repl := launchModal()
	repl.Title = plain("Launch (confirm)")
	cb = submit(slack.NewUpdateViewSubmissionResponse(&repl))
	v, _ := h.s.View(vid)
	if v.Title != "Launch (confirm)" || v.Hash == cb.View.Hash || v.Closed || v.Updated != 1 {
		t.Errorf("after update = %+v", v)
	}

	// 4. push stacks a new view on it.
	pushed := simpleModal("Pushed", "pushed")
	pushed.Submit = plain("OK")
	submit(slack.NewPushViewSubmissionResponse(&pushed))
	views := h.s.Views()
	if len(views) != 2 || views[1].CallbackID != "pushed" || views[1].PreviousViewID != vid || views[1].RootViewID != vid || views[1].Via != "response_action" {
		t.Fatalf("views after push = %+v", views)
	}
	if _, err := h.s.SendViewSubmission("U0ANA", vid, values); err == nil {
		t.Error("submitted a covered view")
	}
	// 5. An empty ack of the pushed view closes it alone.
	ackWith(nil)
	id, err := h.s.SendViewSubmission("U0ANA", views[1].ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	nextCallback(t, h)
	if _, err := h.s.WaitAck(ctx, id); err != nil {
		t.Fatal(err)
	}
	if p, _ := h.s.View(views[1].ID); !p.Closed || len(h.s.Views()) != 1 {
		t.Errorf("after the pushed view's submission: %+v, %d open", p, len(h.s.Views()))
	}
	// 6. An ack with a bad view changes nothing.
	tooMany := simpleModal("Bad", "bad")
	tooMany.Title = plain(strings.Repeat("t", 30))
	submit(slack.NewUpdateViewSubmissionResponse(&tooMany))
	if bad := h.s.BadAcks(); len(bad) != 2 || !strings.Contains(bad[1].Reason, "invalid_arguments") {
		t.Errorf("BadAcks = %+v", bad)
	}
	// 7. clear closes the stack.
	submit(slack.NewClearViewSubmissionResponse())
	if v, _ = h.s.View(vid); !v.Closed || len(h.s.Views()) != 0 {
		t.Errorf("after clear = %+v", v)
	}
	if _, err := h.s.SendViewSubmission("U0ANA", vid, values); err == nil {
		t.Error("submitted a closed view")
	}
	if _, err := h.api.UpdateView(launchModal(), "", "", vid); viewErr(t, err).Err != "not_found" {
		t.Errorf("update of a closed view: %v", err)
	}
}

func TestViewSubmissionRefusals(t *testing.T) {
	h := newHarness(t)
	ctx := testCtx(t)
	opened := openLaunchModal(t, h)
	vid := opened.View.ID
	ok := map[string]map[string]any{
		"name":  {"name_in": TextValue("nb")},
		"type":  {"type_in": SelectValue("t3.micro")},
		"hours": {"hours_in": NumberValue("2")},
	}
	with := func(block, action string, val any) map[string]map[string]any {
		out := map[string]map[string]any{}
		for b, a := range ok {
			out[b] = map[string]any{}
			for k, v := range a {
				out[b][k] = v
			}
		}
		if val == nil {
			delete(out, block)
		} else {
			out[block] = map[string]any{action: val}
		}
		return out
	}
	cases := map[string]map[string]map[string]any{
		"required input missing": with("name", "", nil),
		"required input empty":   with("name", "name_in", TextValue("")),
		"text over max_length":   with("name", "name_in", TextValue(strings.Repeat("n", 21))),
		"unknown block":          with("nope", "x", TextValue("a")),
		"unknown action":         with("name", "other", TextValue("a")),
		"wrong element type":     with("type", "type_in", TextValue("t3.micro")),
		"option not offered":     with("type", "type_in", SelectValue("p5.48xlarge")),
		"not a number":           with("hours", "hours_in", NumberValue("two")),
		"not a whole number":     with("hours", "hours_in", NumberValue("2.5")),
		"over max_value":         with("hours", "hours_in", NumberValue("100")),
		"not an object":          with("hours", "hours_in", "2"),
	}
	for name, values := range cases {
		if _, err := h.s.SendViewSubmission("U0ANA", vid, values); err == nil {
			t.Errorf("%s: sent", name)
		}
	}
	if _, err := h.s.SendViewSubmission("U0BO", vid, ok); err == nil {
		t.Error("another user submitted ana's modal")
	}
	if _, err := h.s.SendViewSubmission("U0ANA", "VNOPE", ok); err == nil {
		t.Error("submitted an unknown view")
	}
	// A modal without a submit button cannot be submitted.
	plainModal, err := h.api.OpenView(slashTrigger(t, h, "U0ANA"), simpleModal("Info", "info"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.SendViewSubmission("U0ANA", plainModal.View.ID, nil); err == nil {
		t.Error("submitted a modal without submit")
	}
	// The good values go through: the optional input is sent as null.
	id, err := h.s.SendViewSubmission("U0ANA", vid, ok)
	if err != nil {
		t.Fatal(err)
	}
	cb := nextCallback(t, h)
	if _, err := h.s.WaitAck(ctx, id); err != nil {
		t.Fatal(err)
	}
	if ch, has := cb.View.State.Values["chan"]["chan_in"]; !has || ch.Type != "conversations_select" || ch.SelectedConversation != "" {
		t.Errorf("optional input = %+v, %v", ch, has)
	}
	// The harness acked without a payload: the modal closed.
	if v, _ := h.s.View(vid); !v.Closed {
		t.Error("a bare ack left the modal open")
	}
}

func TestViewClosed(t *testing.T) {
	h := newHarness(t)
	ctx := testCtx(t)
	if err := h.s.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	m := simpleModal("Notify", "notify")
	m.NotifyOnClose = true
	opened, err := h.api.OpenView(slashTrigger(t, h, "U0ANA"), m)
	if err != nil {
		t.Fatal(err)
	}
	id, err := h.s.SendViewClosed("U0ANA", opened.View.ID)
	if err != nil || id == "" {
		t.Fatalf("SendViewClosed = %q, %v", id, err)
	}
	cb := nextCallback(t, h)
	if cb.Type != slack.InteractionTypeViewClosed || cb.View.ID != opened.View.ID || cb.IsCleared || cb.User.ID != "U0ANA" {
		t.Errorf("view_closed = %+v", cb)
	}
	if v, _ := h.s.View(opened.View.ID); !v.Closed {
		t.Error("not closed")
	}
	quiet, err := h.api.OpenView(slashTrigger(t, h, "U0ANA"), simpleModal("Quiet", "quiet"))
	if err != nil {
		t.Fatal(err)
	}
	if id, err := h.s.SendViewClosed("U0ANA", quiet.View.ID); err != nil || id != "" {
		t.Errorf("closing without notify_on_close = %q, %v", id, err)
	}
	if _, err := h.s.SendViewClosed("U0ANA", quiet.View.ID); err == nil {
		t.Error("closed a closed view")
	}
}

func TestViewsFaultsAndScopes(t *testing.T) {
	s, api := newAPI(t)
	s.AddUser("U0ANA", "ana")
	home := slack.HomeTabViewRequest{Type: slack.VTHomeTab, Blocks: slack.Blocks{BlockSet: []slack.Block{slack.NewDividerBlock()}}}

	// No scope is needed beyond a bot token; an app token is refused.
	if _, err := api.PublishView("U0ANA", home, ""); err != nil {
		t.Fatal(err)
	}
	appAPI := slack.New("xapp-1", slack.OptionAPIURL(s.APIURL()))
	if _, err := appAPI.PublishView("U0ANA", home, ""); viewErr(t, err).Err != "not_allowed_token_type" {
		t.Errorf("app token: %v", err)
	}
	s.SetError("views.publish", 1, "missing_scope")
	if _, err := api.PublishView("U0ANA", home, ""); viewErr(t, err).Err != "missing_scope" {
		t.Errorf("injected error: %v", err)
	}
	s.SetRateLimit("views.open", 1, time.Second)
	var rl *slack.RateLimitedError
	if _, err := api.OpenView("1.2.x", simpleModal("T", "t")); !errors.As(err, &rl) {
		t.Errorf("rate limit: %v", err)
	}
	s.SetLatency("views.update", 100*time.Millisecond)
	start := time.Now()
	_, _ = api.UpdateView(simpleModal("T", "t"), "", "", "VNOPE")
	if time.Since(start) < 100*time.Millisecond {
		t.Error("latency not applied")
	}
	calls := s.Calls("views.publish")
	if len(calls) != 3 || !calls[0].OK() || calls[1].Error != "not_allowed_token_type" || calls[2].Error != "missing_scope" ||
		calls[0].Params["user_id"] != "U0ANA" {
		t.Errorf("views.publish calls = %+v", calls)
	}
	if c := s.Calls("views.open"); len(c) != 1 || c[0].Status != http.StatusTooManyRequests {
		t.Errorf("views.open calls = %+v", c)
	}
}

// openLaunchModal opens launchModal for U0ANA, once connected.
func openLaunchModal(t *testing.T, h *harness) *slack.ViewResponse {
	t.Helper()
	if err := h.s.WaitConnected(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	opened, err := h.api.OpenView(slashTrigger(t, h, "U0ANA"), launchModal())
	if err != nil {
		t.Fatal(err)
	}
	return opened
}
