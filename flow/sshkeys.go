package flow

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/commands"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/reply"
	"github.com/computebot/computebot/sshkeys"
)

// KV is the store's key/value API, where the people's SSH keys are kept
// (*store.DB and *dynamostore.Store satisfy it).
type KV interface {
	Get(ctx context.Context, bucket, key string, v any) error
	Update(ctx context.Context, bucket, key string, v any, fn func(found bool) error) error
	// List calls fn with every key and raw value of bucket, in key order.
	List(ctx context.Context, bucket string, fn func(key string, raw []byte) error) error
}

// SSHKeysBucket holds each person's public keys, keyed by user ID.
const SSHKeysBucket = "ssh-keys"

// keyRing is one person's keys, oldest first.
type keyRing struct {
	Keys []sshkeys.Key `json:"keys"`
}

// Audit actions of the key commands: who can log in to what changes.
const (
	auditKeyAdd    = "sshkey-add"
	auditKeyRemove = "sshkey-remove"
)

// sshKeyAdd registers a public key for the person who typed it. A key
// registered already (also by a run of this intent before a restart) is
// said to be so.
func (f *Flow) sshKeyAdd(ctx context.Context, o Origin, c *commands.SSHKeyAdd) {
	if f.kv == nil {
		f.tell(ctx, o, reply.SSHKeysUnavailable())
		return
	}
	k, err := sshkeys.Parse(c.Key, c.Label)
	var weak *sshkeys.WeakKeyError
	var unsupported *sshkeys.UnsupportedError
	switch {
	case errors.Is(err, sshkeys.ErrPrivateKey): // the parser catches these first; never stored or logged
		f.tell(ctx, o, reply.PrivateKeyPasted())
		return
	case errors.As(err, &weak):
		f.tell(ctx, o, reply.SSHKeyWeak(weak))
		return
	case errors.As(err, &unsupported):
		f.tell(ctx, o, reply.SSHKeyUnsupported(unsupported))
		return
	case err != nil:
		f.tell(ctx, o, reply.SSHKeyNotAKey())
		return
	}
	var ring keyRing
	var known *sshkeys.Key
	full := false
	err = f.kv.Update(ctx, SSHKeysBucket, o.User, &ring, func(bool) error {
		known, full = nil, false
		for i := range ring.Keys {
			if ring.Keys[i].Fingerprint == k.Fingerprint {
				known = &ring.Keys[i]
				return errSkipWrite
			}
		}
		if len(ring.Keys) >= sshkeys.MaxPerPerson {
			full = true
			return errSkipWrite
		}
		add := k
		add.Label = uniqueLabel(ring.Keys, k.Label)
		add.Line = strings.TrimSuffix(k.Line, " "+k.Label) + " " + add.Label
		ring.Keys = append(ring.Keys, add)
		return nil
	})
	switch {
	case errors.Is(err, errSkipWrite) && known != nil:
		f.tell(ctx, o, reply.SSHKeyKnown(*known))
	case errors.Is(err, errSkipWrite) && full:
		f.tell(ctx, o, reply.SSHKeyLimit(sshkeys.MaxPerPerson))
	case err != nil:
		f.log.Error("save ssh key", "user", o.User, "err", err)
		f.tell(ctx, o, reply.SaveFailed())
	default:
		added := ring.Keys[len(ring.Keys)-1]
		f.audit.Record(ctx, computebot.AuditEntry{Actor: o.User, Action: auditKeyAdd, Target: added.Fingerprint, Result: "ok", Detail: added.Label})
		f.tell(ctx, o, reply.SSHKeyAdded(added, len(ring.Keys)))
		f.refreshHomes([]string{o.User}, false)
	}
}

// errSkipWrite aborts a key ring update that has nothing to write.
var errSkipWrite = errors.New("flow: nothing to write")

// uniqueLabel is label, or label-2, -3… when another key has it.
func uniqueLabel(keys []sshkeys.Key, label string) string {
	taken := func(l string) bool {
		return slices.ContainsFunc(keys, func(k sshkeys.Key) bool { return k.Label == l })
	}
	out := label
	for i := 2; taken(out); i++ {
		out = label + "-" + strconv.Itoa(i)
	}
	return out
}

// sshKeyList answers /sshkey list.
func (f *Flow) sshKeyList(ctx context.Context, o Origin) {
	keys, err := f.keysOf(ctx, o.User)
	if err != nil {
		f.log.Error("read ssh keys", "user", o.User, "err", err)
		f.tell(ctx, o, reply.LookupBroke())
		return
	}
	f.tell(ctx, o, reply.SSHKeyList(keys))
}

// sshKeyRemove removes one of the person's keys by label or fingerprint.
func (f *Flow) sshKeyRemove(ctx context.Context, o Origin, name string) {
	if f.kv == nil {
		f.tell(ctx, o, reply.SSHKeysUnavailable())
		return
	}
	var ring keyRing
	var removed *sshkeys.Key
	err := f.kv.Update(ctx, SSHKeysBucket, o.User, &ring, func(bool) error {
		removed = nil
		for i, k := range ring.Keys {
			if k.Label == name || k.Fingerprint == name || "SHA256:"+name == k.Fingerprint {
				removed = &k
				ring.Keys = slices.Delete(ring.Keys, i, i+1)
				if len(ring.Keys) == 0 {
					return computebot.ErrDeleteKey
				}
				return nil
			}
		}
		return errSkipWrite
	})
	switch {
	case errors.Is(err, errSkipWrite):
		f.tell(ctx, o, reply.SSHKeyNoSuchKey(name, ring.Keys))
	case err != nil:
		f.log.Error("remove ssh key", "user", o.User, "err", err)
		f.tell(ctx, o, reply.SaveFailed())
	default:
		f.audit.Record(ctx, computebot.AuditEntry{Actor: o.User, Action: auditKeyRemove, Target: removed.Fingerprint, Result: "ok", Detail: removed.Label})
		f.tell(ctx, o, reply.SSHKeyRemoved(*removed, len(ring.Keys)))
		f.refreshHomes([]string{o.User}, false)
	}
}

// keysOf is a person's registered keys (none without a key store).
func (f *Flow) keysOf(ctx context.Context, user string) ([]sshkeys.Key, error) {
	if f.kv == nil {
		return nil, nil // no key store: nil, which SSHKeyList words as such
	}
	var ring keyRing
	err := f.kv.Get(ctx, SSHKeysBucket, user, &ring)
	if errors.Is(err, computebot.ErrNotFound) || (err == nil && ring.Keys == nil) {
		return []sshkeys.Key{}, nil
	}
	return ring.Keys, err
}

// connect answers /connect INSTANCE (owner or approver), privately.
func (f *Flow) connect(ctx context.Context, o Origin, target string) {
	inst, refusal := f.resolveTarget(ctx, o, target)
	if refusal != nil {
		f.tell(ctx, o, *refusal)
		return
	}
	if !f.permitted(ctx, o, policy.Action{Kind: policy.ActionConnect, Actor: o.User, Instance: &inst}) {
		return
	}
	if inst.State != computebot.InstanceRunning {
		// Its addresses say nothing yet (a stopped instance has no public
		// IP, whatever its subnet).
		f.tell(ctx, o, reply.ConnectNotRunning(inst.ID, inst.State))
		return
	}
	f.tell(ctx, o, reply.Connect(inst.ID, inst.State, inst.PublicIP, inst.PrivateIP, f.sshUser(ctx, inst.ImageID),
		f.cfg.Launch.KeyName, f.cfg.Launch.NotebookPort))
}
