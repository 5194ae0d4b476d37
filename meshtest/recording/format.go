package recording

import (
	"slices"
	"strings"

	"github.com/ergochat/irc-go/ircmsg"
)

// FormatLine writes msg as one IRC line without its line ending, with its
// tags in a fixed order (server tags, then client-only tags, each sorted by
// name), so that an edited log is written the same way every time.
func FormatLine(msg *ircmsg.Message) string {
	var b strings.Builder
	tags := msg.AllTags()
	if len(tags) > 0 {
		names := make([]string, 0, len(tags))
		for k := range tags {
			names = append(names, k)
		}
		slices.SortFunc(names, func(x, y string) int {
			cx, cy := strings.HasPrefix(x, "+"), strings.HasPrefix(y, "+")
			if cx != cy {
				if cx {
					return 1
				}
				return -1
			}
			return strings.Compare(x, y)
		})
		b.WriteByte('@')
		for i, k := range names {
			if i > 0 {
				b.WriteByte(';')
			}
			b.WriteString(k)
			if v := tags[k]; v != "" {
				b.WriteByte('=')
				b.WriteString(ircmsg.EscapeTagValue(v))
			}
		}
		b.WriteByte(' ')
	}
	if msg.Source != "" {
		b.WriteByte(':')
		b.WriteString(msg.Source)
		b.WriteByte(' ')
	}
	b.WriteString(msg.Command)
	for i, p := range msg.Params {
		b.WriteByte(' ')
		if i == len(msg.Params)-1 && (p == "" || strings.IndexByte(p, ' ') >= 0 || p[0] == ':') {
			b.WriteByte(':')
		}
		b.WriteString(p)
	}
	return b.String()
}
