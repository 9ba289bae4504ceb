package reply

import (
	"fmt"
	"strings"

	"github.com/computebot/computebot/sshkeys"
)

// The answers to /sshkey, all private.

func SSHKeyAdded(k sshkeys.Key, count int) Message {
	return Plain(fmt.Sprintf(":key: Added your %s key *%s* (`%s`). You have %d key(s): instances you launch from now on let you in with `ssh USER@IP`, no shared key file.",
		keyKind(k), Literal(k.Label), k.Fingerprint, count))
}

func SSHKeyKnown(k sshkeys.Key) Message {
	return Plain(fmt.Sprintf("That key is registered already, as *%s* (`%s`).", Literal(k.Label), k.Fingerprint))
}

func SSHKeyLimit(max int) Message {
	return Plain(fmt.Sprintf("You have %d keys, the most one person may register. Remove one first: `/sshkey list`, then `/sshkey remove NAME`.", max))
}

func SSHKeyNotAKey() Message {
	return Plain("That is not an OpenSSH public key. Paste one line as in `~/.ssh/id_ed25519.pub`: it starts with `ssh-ed25519`, `ecdsa-sha2-` or `ssh-rsa`. Make a key with `ssh-keygen -t ed25519`.")
}

func SSHKeyWeak(e *sshkeys.WeakKeyError) Message {
	return Plain(fmt.Sprintf("That %s key has %d bits; computebot takes %s keys of %d bits or more. Make a new one with `ssh-keygen -t ed25519` (or `ssh-keygen -t rsa -b 4096`).", e.Type, e.Bits, e.Type, e.Min))
}

func SSHKeyUnsupported(e *sshkeys.UnsupportedError) Message {
	return Plain(fmt.Sprintf("computebot does not take %s: use an ed25519 key (`ssh-keygen -t ed25519`), ECDSA, or RSA of 3072 bits or more.", Literal(e.Type)))
}

func SSHKeyList(keys []sshkeys.Key) Message {
	if keys == nil {
		return SSHKeysUnavailable()
	}
	if len(keys) == 0 {
		return Plain("You have no SSH key registered. Add yours with `/sshkey add` and the contents of `~/.ssh/id_ed25519.pub`.")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "*Your SSH keys* (%d of %d):", len(keys), sshkeys.MaxPerPerson)
	for _, k := range keys {
		fmt.Fprintf(&b, "\n• *%s*: %s, `%s`", Literal(k.Label), keyKind(k), k.Fingerprint)
	}
	return Plain(b.String())
}

func SSHKeyRemoved(k sshkeys.Key, left int) Message {
	return Plain(fmt.Sprintf("Removed *%s* (`%s`); %d key(s) left. Instances launched before keep it until they are replaced.", Literal(k.Label), k.Fingerprint, left))
}

func SSHKeyNoSuchKey(name string, keys []sshkeys.Key) Message {
	if len(keys) == 0 {
		return Plain(fmt.Sprintf("You have no key named %s: you have no SSH key registered.", inlineCode(name)))
	}
	labels := make([]string, len(keys))
	for i, k := range keys {
		labels[i] = "`" + Literal(k.Label) + "`"
	}
	return Plain(fmt.Sprintf("You have no key named %s. Yours: %s.", inlineCode(name), strings.Join(labels, ", ")))
}

// Connect's refusals by the instance's state.
// InstanceGone answers a command on an instance that is terminated (or
// going).
func InstanceGone(id, state string) Message {
	return Plain(fmt.Sprintf("`%s` is %s: there is nothing left to act on.", id, state))
}

func ConnectNotRunning(id, state string) Message {
	switch state {
	case "terminated", "shutting-down":
		return Plain(fmt.Sprintf("`%s` is %s: there is nothing to connect to.", id, state))
	case "pending":
		return Plain(fmt.Sprintf("`%s` is still starting: ask again in a minute (`/connect %s`).", id, id))
	}
	return Plain(fmt.Sprintf("`%s` is %s: start it first (`/start %s`), then `/connect %s`.", id, state, id, id))
}

func SSHKeysUnavailable() Message {
	return Plain("SSH keys cannot be registered on this bot (it has no key store). Ask an admin.")
}

// NoSSHKeyHint is the thread line for a requester with no key registered
// when no shared key pair is configured either.
func NoSSHKeyHint(requester string) string {
	return fmt.Sprintf("%s, this instance has none of your SSH keys (none was registered when you asked): add yours with `/sshkey add` (your `~/.ssh/id_ed25519.pub`) for your next launch, or connect with Session Manager.", User(requester))
}

func keyKind(k sshkeys.Key) string {
	switch {
	case k.Type == "ssh-ed25519":
		return "ed25519"
	case strings.HasPrefix(k.Type, "ecdsa-"):
		return fmt.Sprintf("ECDSA %d", k.Bits)
	case k.Type == "ssh-rsa":
		return fmt.Sprintf("RSA %d", k.Bits)
	}
	return k.Type
}

// Connect answers /connect: how to reach an instance from a laptop. With a
// public IP: the SSH line (with the shared key pair's -i when one is
// configured) and Jupyter's port forwarded over SSH; without: Session
// Manager for both.
func Connect(id, state, publicIP, privateIP, sshUser, keyName string, notebookPort int) Message {
	var b strings.Builder
	fmt.Fprintf(&b, "*How to reach `%s`*\n", id)
	port := fmt.Sprint(notebookPort)
	if publicIP != "" {
		b.WriteString(SSHLine(id, publicIP, privateIP, sshUser, keyName))
		ident := ""
		if keyName != "" {
			ident = "-i ~/.ssh/" + keyName + ".pem "
		}
		fmt.Fprintf(&b, "\n*Notebook:* forward Jupyter's port, then open http://localhost:%s\n```ssh %s-N -L %s:localhost:%s %s@%s```", port, ident, port, port, sshUser, publicIP)
	} else {
		fmt.Fprintf(&b, "*Private IP:* `%s` (no public IP: the subnet is private).\n*Shell:* ```aws ssm start-session --target %s```", privateIP, id)
		fmt.Fprintf(&b, "\n*Notebook:* forward Jupyter's port with Session Manager, then open http://localhost:%s\n```aws ssm start-session --target %s --document-name AWS-StartPortForwardingSession --parameters '{\"portNumber\":[\"%s\"],\"localPortNumber\":[\"%s\"]}'```", port, id, port, port)
	}
	return Plain(b.String())
}

// PrivateKeyPasted answers any command whose text held a private key.
func PrivateKeyPasted() Message {
	return Plain("That was a *private* key: computebot did not store it, and you should treat it as exposed (it went through Slack): " +
		"make a new key pair with `ssh-keygen -t ed25519` and remove the old public key wherever it is installed. " +
		"Register the *public* half, one line starting with `ssh-`: `cat ~/.ssh/id_ed25519.pub`, or `ssh-keygen -y -f KEYFILE` prints it from a private key file.")
}

// UserDataRefused refuses a launch whose user data cannot be made.
func UserDataRefused(why string) Message {
	return Plain(fmt.Sprintf("Your request cannot launch: %s. Remove a key (`/sshkey list`) or ask an admin to shorten launch.user_data.", Literal(why)))
}
