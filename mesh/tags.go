package mesh

import (
	"strings"
	"unicode/utf8"

	"github.com/ergochat/irc-go/ircmsg"
)

// parseLine parses one received line as ircmsg.ParseLine does, with its
// tags read into one map: ircmsg keeps the server's tags and the
// client-only ones in two maps, and AllTags merges them into a third, on
// every line the node reads. It returns what ParseLine and AllTags would
// (TestParseLineTwin and FuzzParseLine check it against them).
func parseLine(raw string) (msg ircmsg.Message, tags map[string]string, err error) {
	raw = strings.TrimSuffix(strings.TrimSuffix(raw, "\n"), "\r") // as ircmsg does
	if strings.IndexByte(raw, 0) >= 0 || strings.IndexByte(raw, '\r') >= 0 || strings.IndexByte(raw, '\n') >= 0 {
		return msg, nil, ircmsg.ErrorLineContainsBadChar
	}
	rest := raw
	if raw != "" && raw[0] == '@' {
		end := strings.IndexByte(raw, ' ')
		if end < 0 {
			return msg, nil, ircmsg.ErrorLineIsEmpty
		}
		if tags, err = parseTags(raw[1:end]); err != nil {
			return msg, nil, err
		}
		rest = raw[end+1:]
		if rest != "" && rest[0] == '@' {
			rest = " " + rest // a second '@' is the command, not tags
		}
	} else {
		tags = map[string]string{}
	}
	msg, err = ircmsg.ParseLine(rest)
	return msg, tags, err
}

// parseTags reads the tags of a line (between '@' and the first space) by
// the rules of ircmsg: names it does not accept are skipped, a value that
// is not UTF-8 fails the line, values are unescaped, the last of a name
// wins.
func parseTags(s string) (map[string]string, error) {
	tags := make(map[string]string, strings.Count(s, ";")+1)
	for s != "" {
		pair := s
		if i := strings.IndexByte(s, ';'); i >= 0 {
			pair, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		name, value, _ := strings.Cut(pair, "=")
		if !validTagName(name) {
			continue
		}
		if !utf8.ValidString(value) {
			return nil, ircmsg.ErrorInvalidTagContent
		}
		tags[name] = ircmsg.UnescapeTagValue(value)
	}
	return tags, nil
}

// validTagName: ircmsg's rule: an optional '+', then at least one of
// letters, digits and "-./".
func validTagName(name string) bool {
	name = strings.TrimPrefix(name, "+")
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('-' <= c && c <= '/' || '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}
