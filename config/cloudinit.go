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

// UserData is an instance's user data: doc (launch.user_data, "" for
// none) with keys added to its ssh_authorized_keys, as text; "" when there
// is neither. The document is edited, not rewritten: its comments, order
// and YAML 1.1 scalars (cloud-init reads yes/no as booleans) stay as the
// admin wrote them. The same inputs give the same text.
func UserData(doc string, keys []string) (string, error) {
	if doc == "" && len(keys) == 0 {
		return "", nil
	}
	if doc == "" {
		doc = CloudConfigHeader + "\n"
	}
	if _, err := CloudConfig(doc); err != nil {
		return "", err
	}
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
		return "", err
	}
	if root.Kind == 0 { // only the header comment
		root = yaml.Node{Kind: yaml.DocumentNode, HeadComment: CloudConfigHeader, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}
	}
	m := root.Content[0]
	if m.Kind != yaml.MappingNode {
		// An empty document (the header alone) decodes as a null scalar.
		*m = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", HeadComment: m.HeadComment}
	}
	var list *yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "ssh_authorized_keys" {
			list = m.Content[i+1]
		}
	}
	if list == nil && len(keys) > 0 {
		list = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "ssh_authorized_keys"}, list)
	}
	for _, k := range keys {
		list.Content = append(list.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k})
	}
	var out strings.Builder
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return "", err
	}
	text := out.String()
	if !strings.HasPrefix(text, CloudConfigHeader) {
		text = CloudConfigHeader + "\n" + text
	}
	// The header alone, as a head comment, is followed by a blank line.
	text = strings.Replace(text, CloudConfigHeader+"\n\n", CloudConfigHeader+"\n", 1)
	if len(text) > MaxUserData {
		return "", fmt.Errorf("the user data with the SSH keys would be %d bytes; EC2 takes at most %d", len(text), MaxUserData)
	}
	return text, nil
}
