package config

import (
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// CloudConfigHeader starts every cloud-init #cloud-config document.
const CloudConfigHeader = "#cloud-config"

// MaxUserData is EC2's limit on user data (before base64).
const MaxUserData = 16 << 10

// CloudConfig reads launch.user_data: a cloud-init #cloud-config document
// whose top level is a mapping. Its ssh_authorized_keys, when present,
// must be a list of strings (the requester's keys are added to it).
func CloudConfig(doc string) (map[string]any, error) {
	if !strings.HasPrefix(strings.TrimLeft(doc, " \t\r\n"), CloudConfigHeader) {
		return nil, errors.New("must be a cloud-init document starting with #cloud-config (the bot adds each requester's SSH keys to it)")
	}
	if len(doc) > MaxUserData {
		return nil, fmt.Errorf("is %d bytes; EC2 takes at most %d of user data", len(doc), MaxUserData)
	}
	var m map[string]any
	if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
		return nil, fmt.Errorf("is not valid YAML: %w", err)
	}
	if m == nil {
		m = map[string]any{}
	}
	if keys, ok := m["ssh_authorized_keys"]; ok {
		list, ok := keys.([]any)
		if !ok {
			return nil, errors.New("ssh_authorized_keys must be a list of keys")
		}
		for _, k := range list {
			if _, ok := k.(string); !ok {
				return nil, errors.New("ssh_authorized_keys must be a list of keys (strings)")
			}
		}
	}
	return m, nil
}
