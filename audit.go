package computebot

// AuditFilter selects audit entries; an empty field matches every entry.
// The bot's /computebot audit and the computebot audit command both use it,
// so that one filter means one thing wherever it is typed.
type AuditFilter struct {
	// Instance keeps the entries about one instance: those that target it
	// (its launch, stops, starts, extensions, idle stops, Keep running)
	// and those of the requests that launched it (their approval or
	// denial, whose entries name the request, not the instance).
	Instance string
	// User keeps the entries a person acted in (Actor): what they
	// launched, approved, stopped…, not what others did to their requests
	// or instances (an Instance filter shows those).
	User string
}

// Keep returns the entries the filter selects, in their order. entries is
// not changed.
func (f AuditFilter) Keep(entries []AuditEntry) []AuditEntry {
	var requests map[string]bool
	if f.Instance != "" {
		requests = map[string]bool{}
		for _, e := range entries {
			if e.Target == f.Instance && e.RequestID != "" {
				requests[e.RequestID] = true
			}
		}
	}
	out := make([]AuditEntry, 0, len(entries))
	for _, e := range entries {
		if f.Instance != "" && e.Target != f.Instance && !requests[e.RequestID] {
			continue
		}
		if f.User != "" && e.Actor != f.User {
			continue
		}
		out = append(out, e)
	}
	return out
}
