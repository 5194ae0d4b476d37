package meshwatermill

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/meshbot/meshbot/mesh"
)

// TopicMapper maps a Watermill topic to a meshbot topic. It must be
// deterministic: publishers and subscribers of a topic map it alike.
type TopicMapper func(topic string) string

// MaxChannelLen is the channel length the default mapping keeps within:
// the smallest CHANNELLEN of the servers meshbot supports (ngIRCd 50;
// InspIRCd allows 64).
const MaxChannelLen = 50

// hashLen is the hex digits of the hash suffix of a rewritten topic.
const hashLen = 10

// deadLetterRoom is kept free after a mapped topic for the dead-letter
// topic of anycast subscriptions, <topic>._dead.
const deadLetterRoom = len("._dead")

// DefaultTopicMapper returns the mapping used when no TopicMapper is
// configured, for topics of namespace ns:
//
//   - a topic that is already a valid meshbot topic (lower-case segments
//     of [a-z0-9_-] separated by dots, none starting with '_') and whose
//     channel, with room for "._dead", fits MaxChannelLen is kept as is;
//   - any other topic is rewritten: lower-cased, every other character
//     replaced by '-', empty segments dropped, a leading '_' of a segment
//     replaced by '-', cut to fit, and suffixed with '-' and the first 10
//     hex digits of the SHA-256 of the original topic.
//
// So "orders.created" stays "orders.created", while "Orders/Created"
// becomes "orders-created-" plus a hash: distinct topics stay distinct
// (up to the hash) and the readable prefix tells a person in the channel
// which topic it is.
func DefaultTopicMapper(ns string) TopicMapper {
	budget := MaxChannelLen - len(mesh.Channel(ns, "")) - deadLetterRoom
	return func(topic string) string { return mapName(topic, budget) }
}

// mapName keeps name when it is a valid topic within budget bytes, and
// rewrites it otherwise (see DefaultTopicMapper).
func mapName(name string, budget int) string {
	if len(name) <= budget && mesh.ValidateTopic("x", name, 1<<10) == nil {
		return name
	}
	var b strings.Builder
	for _, seg := range strings.Split(name, ".") {
		var s strings.Builder
		for _, r := range seg {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
				s.WriteRune(r)
			case r >= 'A' && r <= 'Z':
				s.WriteRune(r - 'A' + 'a')
			default:
				s.WriteByte('-')
			}
		}
		clean := s.String()
		if clean == "" {
			continue
		}
		if clean[0] == '_' {
			clean = "-" + clean[1:]
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(clean)
	}
	sum := sha256.Sum256([]byte(name))
	suffix := hex.EncodeToString(sum[:])[:hashLen]
	prefix := b.String()
	room := budget - len(suffix) - 1
	if room < 0 {
		room = 0
	}
	if len(prefix) > room {
		prefix = prefix[:room]
	}
	prefix = strings.TrimRight(prefix, ".")
	if prefix == "" {
		return "t-" + suffix
	}
	return prefix + "-" + suffix
}

// groupName maps a Watermill consumer group to an anycast group: kept when
// valid (mesh.ValidateGroup), else rewritten like a topic.
func groupName(g string) string {
	if mesh.ValidateGroup(g) == nil {
		return g
	}
	return mapName(g, 64)
}

// mapTopic maps topic with mapper and checks the result against ns.
// Dead-letter topics are kept (isDeadLetterTopic).
func mapTopic(mapper TopicMapper, ns, topic string) (string, error) {
	if isDeadLetterTopic(ns, topic) {
		return topic, nil
	}
	t := mapper(topic)
	if err := mesh.ValidateTopic(ns, t, 0); err != nil {
		return "", fmt.Errorf("meshwatermill: topic %q mapped to %q: %w", topic, t, err)
	}
	return t, nil
}
