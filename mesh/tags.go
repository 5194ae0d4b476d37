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
	tags = map[string]string{}
	if msg, err = parseLineInto(raw, tags); err != nil {
		return msg, nil, err
	}
	return msg, tags, nil
}

// parseLineInto is parseLine with the tags read into tags, cleared first:
// the node's reader keeps one map for every line it reads.
func parseLineInto(raw string, tags map[string]string) (msg ircmsg.Message, err error) {
	clear(tags)
	raw = strings.TrimSuffix(strings.TrimSuffix(raw, "\n"), "\r") // as ircmsg does
	if strings.IndexByte(raw, 0) >= 0 || strings.IndexByte(raw, '\r') >= 0 || strings.IndexByte(raw, '\n') >= 0 {
		return msg, ircmsg.ErrorLineContainsBadChar
	}
	rest := raw
	if raw != "" && raw[0] == '@' {
		end := strings.IndexByte(raw, ' ')
		if end < 0 {
			return msg, ircmsg.ErrorLineIsEmpty
		}
		if err = parseTags(raw[1:end], tags); err != nil {
			return msg, err
		}
		rest = raw[end+1:]
		if rest != "" && rest[0] == '@' {
			rest = " " + rest // a second '@' is the command, not tags
		}
	}
	return ircmsg.ParseLine(rest)
}

// parseTags reads the tags of a line (between '@' and the first space) by
// the rules of ircmsg: names it does not accept are skipped, a value that
// is not UTF-8 fails the line, values are unescaped, the last of a name
// wins. They are added to tags.
func parseTags(s string, tags map[string]string) error {
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
			return ircmsg.ErrorInvalidTagContent
		}
		tags[name] = ircmsg.UnescapeTagValue(value)
	}
	return nil
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
