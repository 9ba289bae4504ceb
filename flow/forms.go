package flow

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/commands"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/reply"
)

// The launch form: opened by /launch alone, the Home tab's Launch… button
// and the global shortcut; submitted, it is the same request as the typed
// /launch (Accept checks every field again first).

// formCallback names the launch form's submissions.
const formCallback = reply.LaunchFormCallback

// formValues decodes a form's stored values.
func formValues(raw string) map[string]string {
	values := map[string]string{}
	_ = json.Unmarshal([]byte(raw), &values) // a damaged record reads as an empty form, refused field by field
	return values
}

// FormInput is the Input of a submitted form (values by field).
func FormInput(callbackID string, values map[string]string) Input {
	raw, _ := json.Marshal(values) // a map of strings always marshals
	return Input{Source: computebot.SourceForm, ActionID: callbackID, Value: string(raw)}
}

// formErrors checks a submitted launch form as the typed /launch is
// checked (syntax, allowed type, lease, image preset) and says what is
// wrong on each field; nil when it can go on.
func (f *Flow) formErrors(o Origin, in Input) map[string]string {
	if in.ActionID != formCallback {
		return map[string]string{commands.FieldType: reply.FormUnknown()}
	}
	c, errs := commands.ParseLaunchForm(formValues(in.Value))
	if errs == nil {
		errs = commands.FormErrors{}
	}
	if o.Channel == "" {
		errs[commands.FieldChannel] = reply.FormNeedsChannel()
	}
	if _, bad := errs[commands.FieldType]; !bad {
		if _, ok := f.cfg.Launch.Images[c.Image]; c.Image != "" && !ok {
			errs[commands.FieldImage] = reply.PlainText(reply.UnknownImagePreset(c.Image, f.cfg.Launch.Images).Text)
		}
		r := f.newLaunchRequest(o, c)
		if d := f.authz.Precheck(policy.Action{Kind: policy.ActionLaunch, Actor: o.User, Request: r}); d.Verdict == policy.Deny {
			field := commands.FieldType
			if d.Refusal.Code == policy.RefuseLeaseTooLong {
				field = commands.FieldHours
			}
			if errs[field] == "" {
				errs[field] = reply.PlainText(reply.RefusalText(d.Refusal))
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// typeInfoTTL is how long a type's specs and price are reused for the form:
// they change rarely, and the form must open within Slack's 3 s even while
// AWS is slow.
const typeInfoTTL = time.Hour

// formWait is how long the form waits for specs and prices it has not
// cached before it opens without them (and is updated when they arrive).
const formWait = 500 * time.Millisecond

// typeInfos caches the form's view of the allowed types.
type typeInfos struct {
	mu sync.Mutex
	m  map[string]typeInfo
}

type typeInfo struct {
	choice reply.TypeChoice
	at     time.Time
}

// openLaunchForm opens the form with what is known of the allowed types;
// what is not known within formWait is looked up on, and the open form
// updated when it arrives.
func (f *Flow) openLaunchForm(ctx context.Context, o Origin) {
	allowed := f.cfg.Launch.AllowedTypes
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Not cut short by the job's end: the open form is updated with
		// what this finds.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		f.lookupTypes(lctx, allowed)
	}()
	select {
	case <-done:
	case <-time.After(formWait):
	}
	first := f.launchForm(o)
	id, hash, err := f.chat.OpenView(ctx, o.Trigger, first)
	if err != nil {
		f.log.Error("open the launch form", "user", o.User, "err", err)
		f.tell(ctx, o, reply.FormCannotOpen())
		return
	}
	f.background(func(bctx context.Context) {
		select {
		case <-done:
		case <-bctx.Done():
			return
		}
		if v := f.launchForm(o); !slices.EqualFunc(v.Blocks, first.Blocks, sameBlock) {
			if err := f.chat.UpdateView(bctx, id, hash, v); err != nil {
				f.log.Warn("update the launch form with the types' specs", "user", o.User, "err", err)
			}
		}
	})
}

func sameBlock(a, b reply.Block) bool {
	if a.Field == nil || b.Field == nil {
		return a.Kind == b.Kind && a.Text == b.Text
	}
	return slices.Equal(a.Field.Options, b.Field.Options)
}

// launchForm is the form as far as the types are known now.
func (f *Flow) launchForm(o Origin) reply.View {
	f.types.mu.Lock()
	choices := make([]reply.TypeChoice, 0, len(f.cfg.Launch.AllowedTypes))
	for _, t := range f.cfg.Launch.AllowedTypes {
		c := reply.TypeChoice{Name: t}
		if info, ok := f.types.m[t]; ok {
			c = info.choice
		}
		choices = append(choices, c)
	}
	f.types.mu.Unlock()
	return reply.LaunchForm(reply.LaunchFormSpec{
		Types:        choices,
		Images:       slices.Sorted(maps.Keys(f.cfg.Launch.Images)),
		DefaultLease: reply.Hours(f.cfg.Launch.DefaultTTL.Duration()),
		MaxHours:     int(f.cfg.Launch.MaxLease.Duration() / time.Hour),
		Channel:      o.Channel,
		AskChannel:   o.Channel == "",
		NotifyIn:     f.cfg.NotifyChannel,
	})
}

// lookupTypes fills the cache for the types it lacks (or holds too long).
func (f *Flow) lookupTypes(ctx context.Context, names []string) {
	var wg sync.WaitGroup
	for _, name := range names {
		f.types.mu.Lock()
		info, ok := f.types.m[name]
		f.types.mu.Unlock()
		if ok && f.now().Sub(info.at) < typeInfoTTL {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := reply.TypeChoice{Name: name}
			it, err := f.cloud.InstanceType(ctx, name)
			if err != nil {
				f.log.Warn("launch form: describe type", "type", name, "err", err)
				return
			}
			c.VCPUs, c.MemoryMiB, c.GPUs, c.Known = it.VCPUs, it.MemoryMiB, it.GPUs, true
			c.Price, c.PriceKnown = f.prices.Price(ctx, name)
			f.types.mu.Lock()
			if f.types.m == nil {
				f.types.m = map[string]typeInfo{}
			}
			f.types.m[name] = typeInfo{choice: c, at: f.now()}
			f.types.mu.Unlock()
		}()
	}
	wg.Wait()
}
