package console

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Command is one parsed console command.
type Command struct {
	// Name is the command: one of Commands' names.
	Name string
	// Args are its fixed arguments (SERVICE, METHOD, TOPIC, ...).
	Args []string
	// Payload is the rest of the line after the fixed arguments of req
	// and pub, as typed (spaces inside kept, the ends trimmed).
	Payload string
}

// spec describes a command: its arguments and whether it acts on the mesh
// (then only trusted people may run it).
type spec struct {
	name     string
	min, max int  // fixed arguments
	payload  bool // the rest of the line is a payload (req, pub)
	acts     bool
	usage    string
	help     string
}

// commands are the console's commands, in the order help lists them.
var commands = []spec{
	{name: "help", max: 1, usage: "help [COMMAND]", help: "what the commands do"},
	{name: "status", usage: "status", help: "this instance: uptime, version, subscriptions (mode, queue, drops, claims held, paused, kicked), requests, errors"},
	{name: "members", max: 1, usage: "members [SERVICE]", help: "the live instances, from heartbeats: state, load, subscriptions, methods"},
	{name: "methods", max: 1, usage: "methods [SERVICE]", help: "the request methods this instance answers, and those the others announce"},
	{name: "claims", min: 1, max: 2, usage: "claims TOPIC [GROUP]", help: "the anycast events in flight on a topic this instance subscribes to: owner, epoch, attempts, lease (2 s of watching)"},
	{name: "state", min: 1, max: 2, usage: "state DOMAIN [KEY]", help: "a domain of state this instance holds: version and keys, or one key's value"},
	{name: "req", min: 2, max: 2, payload: true, acts: true, usage: "req SERVICE METHOD [PAYLOAD]", help: "ask SERVICE's METHOD with PAYLOAD (a mesh request) and show the answer or the typed error"},
	{name: "pub", min: 1, max: 1, payload: true, acts: true, usage: "pub TOPIC PAYLOAD", help: "publish PAYLOAD as an event on TOPIC, from this instance"},
}

func lookup(name string) (spec, bool) {
	for _, s := range commands {
		if s.name == name {
			return s, true
		}
	}
	return spec{}, false
}

// maxLine bounds what Parse reads: an IRC line is shorter anyway.
const maxLine = 1024

// ErrUnknown: the line names no command.
var ErrUnknown = errors.New("unknown command")

// Parse reads one command line: a command name (any case) and its
// arguments, separated by spaces. It fails with a *UsageError for a
// command with wrong arguments, and with ErrUnknown for a line that names
// no command. It never reads more than 1 KiB.
func Parse(line string) (Command, error) {
	if len(line) > maxLine {
		line = line[:maxLine]
	}
	line = strings.ToValidUTF8(line, "\uFFFD")
	for len(line) > maxLine { // replacement characters are longer than the bytes they replace
		_, size := utf8.DecodeLastRuneInString(line)
		line = line[:len(line)-size]
	}
	line = strings.TrimSpace(line)
	name, rest := cutField(line)
	name = strings.ToLower(name)
	sp, ok := lookup(name)
	if !ok {
		return Command{}, fmt.Errorf("%w %q", ErrUnknown, clipName(name))
	}
	c := Command{Name: name}
	for len(c.Args) < sp.max {
		var f string
		f, rest = cutField(rest)
		if f == "" {
			break
		}
		c.Args = append(c.Args, f)
	}
	switch {
	case len(c.Args) < sp.min:
		return Command{}, &UsageError{Usage: sp.usage, Why: "missing arguments"}
	case sp.payload:
		c.Payload = strings.TrimSpace(rest)
		if name == "pub" && c.Payload == "" {
			return Command{}, &UsageError{Usage: sp.usage, Why: "no payload"}
		}
	case strings.TrimSpace(rest) != "":
		return Command{}, &UsageError{Usage: sp.usage, Why: "too many arguments"}
	}
	for _, a := range c.Args {
		if len(a) > 128 {
			return Command{}, &UsageError{Usage: sp.usage, Why: "an argument over 128 bytes"}
		}
	}
	return c, nil
}

// UsageError is a command given the wrong arguments.
type UsageError struct {
	Usage, Why string
}

func (e *UsageError) Error() string { return e.Why + "; usage: " + e.Usage }

// cutField returns the first space-separated field of s and the rest.
func cutField(s string) (field, rest string) {
	s = strings.TrimLeft(s, " \t")
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i+1:]
}

// clipName bounds a name quoted back to the asker.
func clipName(s string) string {
	if len(s) <= 32 {
		return s
	}
	i := 32
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// Addressed reads a channel line (its '!' removed): "COMMAND ..." is for
// every bot in the channel; "NAME COMMAND ..." for the bots NAME names
// (a nick, a service, or "*" for all). It returns the command line and
// whether it is for a bot of this nick and service, and all when every
// bot of the channel is asked (each answers in brief).
func Addressed(line, nick, service string) (cmd string, forMe, all bool) {
	first, rest := cutField(strings.TrimSpace(line))
	if _, ok := lookup(strings.ToLower(first)); ok {
		return line, true, true
	}
	switch {
	case first == "*":
		return rest, true, true
	case strings.EqualFold(first, nick), strings.EqualFold(first, service):
		return rest, true, false
	}
	return "", false, false
}
