package state

import (
	"fmt"
	"strings"
)

// Domain names (docs/PROTOCOL.md §8.1). A domain is named <service> or
// <service>.<name>: dot-separated segments of [a-z0-9_-], each starting with
// a letter or digit. Its first segment is the service that owns it, so any
// member can tell the owner from the name alone, without a registry.

// TopicSuffix ends the topic of a domain's channel: domain d travels in
// #<ns>.<d>._state, a system channel like the dead letters' <t>._dead.
const TopicSuffix = "._state"

// MaxDomainLen bounds a domain name; the channel must also fit the
// server's CHANNELLEN, which the runtime checks.
const MaxDomainLen = 40

// ValidDomain reports whether name is a well-formed domain name.
func ValidDomain(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrDomainName)
	}
	if len(name) > MaxDomainLen {
		return fmt.Errorf("%w: %q is %d bytes (at most %d)", ErrDomainName, name, len(name), MaxDomainLen)
	}
	for _, seg := range strings.Split(name, ".") {
		if seg == "" {
			return fmt.Errorf("%w: %q has an empty segment", ErrDomainName, name)
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			case (c == '_' || c == '-') && i > 0:
			default:
				return fmt.Errorf("%w: %q: segments are [a-z0-9_-], starting with a letter or digit", ErrDomainName, name)
			}
		}
	}
	return nil
}

// Owner returns the service that owns domain: its first segment.
func Owner(domain string) string {
	if i := strings.IndexByte(domain, '.'); i >= 0 {
		return domain[:i]
	}
	return domain
}

// Topic returns the topic of domain's channel.
func Topic(domain string) string { return domain + TopicSuffix }

// DomainOfTopic returns the domain whose channel has topic, and false when
// topic is not a domain's.
func DomainOfTopic(topic string) (string, bool) {
	d, ok := strings.CutSuffix(topic, TopicSuffix)
	if !ok || ValidDomain(d) != nil {
		return "", false
	}
	return d, true
}
