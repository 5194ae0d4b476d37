package mesh

import (
	"fmt"
	"strings"
)

// Naming rules (docs/PROTOCOL.md §1). IRC compares channel names case-
// insensitively with a server-chosen case mapping (rfc1459 folds []\~ onto
// {}|^), so names use only characters every case mapping leaves alone, in
// lower case: a topic is one name on every server.
//
//	namespace, service: [a-z0-9_-]+, starting with a letter or digit
//	instance:           [a-z0-9]+
//	topic:              dot-separated segments of [a-z0-9_-]+; a segment
//	                    starting with '_' is reserved for the system
const (
	hbTopic      = "_hb"    // the heartbeat (presence) channel's topic
	deadSuffix   = "._dead" // dead letters of a topic
	defChanLen   = 50       // CHANNELLEN when the server announces none
	defNickLen   = 30       // NICKLEN when the server announces none
	instanceLen  = 6        // random instance ids
	channelStart = "#"
)

func validName(what, s string, dots bool) error {
	if s == "" {
		return fmt.Errorf("%s is empty", what)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && what != "instance":
			if i == 0 && what != "topic" {
				return fmt.Errorf("%s %q must start with a letter or digit", what, s)
			}
		case c == '.' && dots:
			if i == 0 || i == len(s)-1 || s[i-1] == '.' {
				return fmt.Errorf("%s %q has an empty segment", what, s)
			}
		case c >= 'A' && c <= 'Z':
			return fmt.Errorf("%s %q has upper case: IRC channel names are case-insensitive, so meshbot names are lower case", what, s)
		default:
			return fmt.Errorf("%s %q has %q: allowed are a-z 0-9 _ -%s", what, s, c, map[bool]string{true: " and . between segments"}[dots])
		}
	}
	return nil
}

// ValidateTopic checks a user topic name: the naming rules, no reserved
// segment, and a channel name within chanLen bytes (≤ 0: 50, the smallest
// CHANNELLEN of the supported servers).
func ValidateTopic(namespace, topic string, chanLen int) error {
	if err := validName("topic", topic, true); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidTopic, err)
	}
	segs := strings.Split(topic, ".")
	for i, seg := range segs {
		if seg == deadSegment && i == len(segs)-1 && i > 0 {
			continue // <topic>._dead: dead letters, for anyone to read
		}
		if strings.HasPrefix(seg, "_") {
			return fmt.Errorf("%w: topic %q: segments starting with '_' are reserved for the system", ErrInvalidTopic, topic)
		}
	}
	if chanLen <= 0 {
		chanLen = defChanLen
	}
	if ch := Channel(namespace, topic); len(ch) > chanLen {
		return fmt.Errorf("%w: channel %s is %d bytes; the server allows %d (CHANNELLEN)", ErrInvalidTopic, ch, len(ch), chanLen)
	}
	return nil
}

// deadSegment ends the dead-letter topic of a topic (claims.DeadTopic).
const deadSegment = "_dead"

// Channel returns the channel of a topic: #<namespace>.<topic>.
func Channel(namespace, topic string) string { return channelStart + namespace + "." + topic }

// TopicOf returns the topic of a channel in namespace, and false when the
// channel is not in it.
func TopicOf(namespace, channel string) (string, bool) {
	prefix := channelStart + namespace + "."
	if len(channel) <= len(prefix) || !strings.EqualFold(channel[:len(prefix)], prefix) {
		return "", false
	}
	return strings.ToLower(channel[len(prefix):]), true
}

// HeartbeatChannel is the channel every instance of a namespace joins.
func HeartbeatChannel(namespace string) string { return Channel(namespace, hbTopic) }

// DeadLetterTopic is where events of topic go after too many attempts.
func DeadLetterTopic(topic string) string { return topic + deadSuffix }

// Nick returns the nick of an instance, or an error when it does not fit
// nickLen (≤ 0: 30).
func Nick(service, instance string, nickLen int) (string, error) {
	if nickLen <= 0 {
		nickLen = defNickLen
	}
	n := service + "-" + instance
	if len(n) > nickLen {
		return "", fmt.Errorf("%w: nick %s is %d bytes; the server allows %d (NICKLEN): use a shorter service name", ErrInvalidConfig, n, len(n), nickLen)
	}
	return n, nil
}

// ParseNick splits a mesh nick into service and instance.
func ParseNick(nick string) (service, instance string, ok bool) {
	i := strings.LastIndexByte(nick, '-')
	if i <= 0 || i == len(nick)-1 {
		return "", "", false
	}
	service, instance = strings.ToLower(nick[:i]), strings.ToLower(nick[i+1:])
	if validName("service", service, false) != nil || validName("instance", instance, false) != nil {
		return "", "", false
	}
	return service, instance, true
}
