package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/computebot/computebot/commands"
	"github.com/computebot/computebot/reply"
)

// manifest is what these tests read of slack/manifest.yaml.
type manifest struct {
	Features struct {
		SlashCommands []struct {
			Command   string `yaml:"command"`
			UsageHint string `yaml:"usage_hint"`
		} `yaml:"slash_commands"`
		AppHome struct {
			HomeTab bool `yaml:"home_tab_enabled"`
		} `yaml:"app_home"`
		Shortcuts []struct {
			Type       string `yaml:"type"`
			CallbackID string `yaml:"callback_id"`
		} `yaml:"shortcuts"`
	} `yaml:"features"`
	Settings struct {
		EventSubscriptions struct {
			BotEvents []string `yaml:"bot_events"`
		} `yaml:"event_subscriptions"`
	} `yaml:"settings"`
}

func readManifest(t *testing.T) (manifest, *yaml.Node) {
	t.Helper()
	raw, err := os.ReadFile("../../slack/manifest.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := yaml.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(raw, &root); err != nil {
		t.Fatal(err)
	}
	return m, &root
}

// child returns the value under key in a mapping node.
func child(n *yaml.Node, key string) *yaml.Node {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// TestHelpManifestUsageHints: the manifest declares every slash command of
// the parser's table, and each usage hint names every subcommand (Slack
// shows the hint as the person types: it is the first help they see).
func TestHelpManifestUsageHints(t *testing.T) {
	m, _ := readManifest(t)
	hints := map[string]string{}
	for _, c := range m.Features.SlashCommands {
		hints[c.Command] = c.UsageHint
	}
	all, ok := hints["/computebot"]
	if !ok {
		t.Fatal("no /computebot in the manifest")
	}
	defined := map[string]bool{"/computebot": true}
	for _, d := range commands.Definitions() {
		word, sub, _ := strings.Cut(d.Name, " ")
		slash, _, _ := strings.Cut(d.Usage, " ")
		switch {
		case strings.HasPrefix(d.Usage, "@"):
			continue // a mention only (@computebot status)
		case slash == "/computebot":
			// A subcommand of /computebot only (idle, audit, help).
			if !strings.Contains(all, word) {
				t.Errorf("/computebot's usage hint %q lacks %s", all, word)
			}
			continue
		}
		defined[slash] = true
		hint, ok := hints[slash]
		if !ok {
			t.Errorf("%s is not in slack/manifest.yaml: Slack would not deliver it", slash)
			continue
		}
		if sub != "" && !regexp.MustCompile(`\b`+sub+`\b`).MatchString(hint) {
			t.Errorf("%s's usage hint %q lacks its subcommand %s", slash, hint, sub)
		}
		if !strings.Contains(all, word) {
			t.Errorf("/computebot's usage hint %q lacks %s", all, word)
		}
	}
	for cmd := range hints {
		if !defined[cmd] {
			t.Errorf("the manifest declares %s, which the parser does not know", cmd)
		}
	}
}

// webAPIScopes is the bot scope each slack-go method bot/ calls needs ("" for
// none). A method missing here fails TestCheckManifestScopes: add it with
// its scope, and the scope to the manifest.
var webAPIScopes = map[string][]string{
	"AuthTestContext":               nil, // auth.test
	"StartSocketModeContext":        nil, // apps.connections.open: the app-level token's connections:write
	"PostMessageContext":            {"chat:write"},
	"UpdateMessageContext":          {"chat:write"},
	"PostEphemeralContext":          {"chat:write"},
	"GetUserGroupMembersContext":    {"usergroups:read"},
	"GetUserInfoContext":            {"users:read"},
	"OpenConversationContext":       {"im:write"},
	"GetConversationHistoryContext": {"channels:history", "groups:history", "im:history", "mpim:history"},
	"GetConversationRepliesContext": {"channels:history", "groups:history", "im:history", "mpim:history"},
	"UploadFileContext":             {"files:write"},
	"PublishViewContext":            nil, // views.publish
	"OpenViewContext":               nil, // views.open
	"UpdateViewContext":             nil, // views.update
	"PushViewContext":               nil, // views.push
}

// eventScopes is the scope each subscribed bot event needs.
var eventScopes = map[string]string{"app_mention": "app_mentions:read", "app_home_opened": ""}

// botEvents is the event each inner event type bot/ handles arrives as
// (the envelope types, EventsAPICallbackEvent, are none).
var botEvents = map[string]string{"AppMentionEvent": "app_mention", "AppHomeOpenedEvent": "app_home_opened",
	"EventsAPICallbackEvent": ""}

// botSources is bot/'s code without its tests.
func botSources(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("../../bot/*.go")
	if err != nil {
		t.Fatal(err)
	}
	src := map[string]string{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src[filepath.Base(f)] = string(b)
	}
	return src
}

// TestCheckManifestEvents: the manifest subscribes to every event bot/
// handles, enables the Home tab it publishes, and declares the global
// shortcut it answers with the callback ID it answers to.
func TestCheckManifestEvents(t *testing.T) {
	m, _ := readManifest(t)
	subscribed := m.Settings.EventSubscriptions.BotEvents
	handled := regexp.MustCompile(`\(\*slackevents\.(\w+Event)\)`) // a type assertion on the event's data
	for file, src := range botSources(t) {
		for _, mt := range handled.FindAllStringSubmatch(src, -1) {
			ev, known := botEvents[mt[1]]
			if !known {
				t.Errorf("%s handles slackevents.%s: add it to botEvents with its event name", file, mt[1])
				continue
			}
			if ev != "" && !slices.Contains(subscribed, ev) {
				t.Errorf("%s handles %s, which the manifest does not subscribe to", file, ev)
			}
		}
		if strings.Contains(src, "PublishViewContext") && !m.Features.AppHome.HomeTab {
			t.Errorf("%s publishes a Home tab, which the manifest does not enable (features.app_home.home_tab_enabled)", file)
		}
		if strings.Contains(src, "InteractionTypeShortcut") {
			found := false
			for _, sc := range m.Features.Shortcuts {
				found = found || (sc.Type == "global" && sc.CallbackID == reply.ActionOpenLaunchForm)
			}
			if !found {
				t.Errorf("%s answers the global shortcut %s, which the manifest does not declare", file, reply.ActionOpenLaunchForm)
			}
		}
	}
}

// TestCheckManifestScopes: the manifest asks for exactly the bot scopes
// that the Web API methods bot/ calls, its events and its slash commands
// need, each with a comment saying what for. An app asking for more than
// it uses makes an admin's review harder; one asking for less fails at run
// time with missing_scope.
func TestCheckManifestScopes(t *testing.T) {
	m, root := readManifest(t)
	need := map[string]string{"commands": "slash commands"}
	call := regexp.MustCompile(`\bapi\.([A-Z]\w*)\(`)
	for file, src := range botSources(t) {
		for _, mt := range call.FindAllStringSubmatch(src, -1) {
			scopes, known := webAPIScopes[mt[1]]
			if !known {
				t.Errorf("%s calls slack-go's %s: add it to webAPIScopes with the scope it needs (and that scope to slack/manifest.yaml)", file, mt[1])
			}
			for _, sc := range scopes {
				need[sc] = mt[1]
			}
		}
	}
	for _, ev := range m.Settings.EventSubscriptions.BotEvents {
		sc, known := eventScopes[ev]
		if !known {
			t.Errorf("the manifest subscribes to %s: add it to eventScopes with its scope", ev)
		}
		if sc != "" {
			need[sc] = ev
		}
	}

	bot := child(child(child(root, "oauth_config"), "scopes"), "bot")
	if bot == nil {
		t.Fatal("no oauth_config.scopes.bot in the manifest")
	}
	var have []string
	for _, n := range bot.Content {
		have = append(have, n.Value)
		if _, used := need[n.Value]; !used {
			t.Errorf("the manifest asks for %s, which nothing in bot/ uses", n.Value)
		}
		if strings.TrimSpace(strings.TrimPrefix(n.LineComment, "#")) == "" {
			t.Errorf("scope %s has no comment saying what it is for", n.Value)
		}
	}
	for sc, by := range need {
		if !slices.Contains(have, sc) {
			t.Errorf("%s needs %s, which the manifest does not ask for", by, sc)
		}
	}
}

// TestHelpReadmeListsEveryPackage: the README's architecture table has a
// row for every package of the module, so a newcomer finds each one.
func TestHelpReadmeListsEveryPackage(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, l := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(l, "| `") {
			cell, _, _ := strings.Cut(strings.TrimPrefix(l, "| "), " |")
			rows = append(rows, cell)
		}
	}
	checked := map[string]bool{}
	err = filepath.WalkDir("../..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != "../.." || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		dir, _ := filepath.Rel("../..", filepath.Dir(path))
		if checked[dir] {
			return nil
		}
		checked[dir] = true
		want := "`" + filepath.ToSlash(dir) + "`"
		if dir == "." {
			want = "`computebot` (root)"
		}
		for _, r := range rows {
			if strings.Contains(r, want) || strings.Contains(r, strings.TrimSuffix(want, "`")+"/`") {
				return nil
			}
		}
		t.Errorf("README's architecture table has no row for %s (%s)", want, filepath.Base(path))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
