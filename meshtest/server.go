package meshtest

import (
	"bufio"
	"context"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ergochat/irc-go/ircmsg"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/mesh"
	"github.com/meshbot/meshbot/meshtest/recording"
)

// The replay server is the node's only peer: the least of an IRC server a
// node needs to run, and nothing more. It
//
//   - registers the node (CAP LS/REQ/END with message-tags, server-time,
//     echo-message and account-tag, then RPL_LOGGEDIN with the account
//     Config.Accounts binds its service to, if any, 001, 005 and end of
//     MOTD);
//   - confirms every JOIN with the JOIN, NAMES (the node as the channel's
//     operator, and the members the log shows in that channel when it was
//     recorded) and end of NAMES, and PART with the PART; keeps the modes
//     the node sets (a closed mesh's keys and invite exceptions) and
//     answers its MODE queries with them;
//   - answers PING with PONG (the node's flow-control windows and
//     keep-alive), and QUIT by closing the connection;
//   - echoes every PRIVMSG the node sends with server-time and a msgid
//     (echo-message: the node's publish confirm, and how an anycast member
//     sees its own claims come back), and hands it to the capture;
//   - answers a request to a service the test stubs (Answer);
//   - tags the node's echoed lines, and stubs' answers, with the account
//     Config.Accounts binds their service to (it stands for the server
//     that logged them in; SASL itself is not replayed).
//
// Everything else the node sends (WHO, MODE, LIST, ...) is ignored, or
// answered with the numeric that ends it. The recorded lines themselves
// reach the node through feed (feed.go). The server is for replays only:
// meshbot's own tests of the runtime use real servers.

// serverName is the replay server's name in its lines.
const serverName = "meshtest.replay"

// nodeHost is the node's host as the replay server shows it.
const nodeHost = "meshtest"

// offeredCaps are the capabilities the replay server offers.
var offeredCaps = []string{"account-tag", "echo-message", "message-tags", "server-time"}

type server struct {
	names    map[string][]string // channel (lower case) → members the log shows there
	capture  *capture
	accounts *envelope.AccountBinding // the node's Config.Accounts: the account tags of its lines and of stubs'

	mu         sync.Mutex
	conn       *memConn // the current connection's server end
	nick, user string
	capEnded   bool
	registered bool
	caps       map[string]bool
	joined     map[string]bool      // channels the node is in (lower case)
	modes      map[string]*chanMode // channels' modes (lower case), made at first JOIN
	msgid      uint64
	wg         sync.WaitGroup // serve goroutines
}

func newServer(names map[string][]string, c *capture, accounts *envelope.AccountBinding) *server {
	return &server{names: names, capture: c, accounts: accounts}
}

// dial is the node's Config.Dial: a new in-memory connection, served by a
// goroutine of the bubble.
func (s *server) dial(context.Context, string, string) (net.Conn, error) {
	client, end := memPipe()
	s.mu.Lock()
	if s.conn != nil {
		s.conn.Close()
	}
	s.conn = end
	s.nick, s.user, s.capEnded, s.registered = "", "", false, false
	s.caps = map[string]bool{}
	s.joined = map[string]bool{}
	s.modes = map[string]*chanMode{}
	s.mu.Unlock()
	s.wg.Add(1)
	go s.serve(end)
	return client, nil
}

// serve reads what the node writes on one connection until it ends.
func (s *server) serve(c *memConn) {
	defer s.wg.Done()
	defer c.Close()
	r := bufio.NewReaderSize(c, 64<<10)
	for {
		raw, err := r.ReadString('\n')
		if line := strings.TrimRight(raw, "\r\n"); line != "" {
			if !s.handle(c, line) {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// sendLocked writes lines to the node on connection c (skipped when c is no
// longer the current connection). Called with s.mu held.
func (s *server) sendLocked(c *memConn, lines ...string) {
	if c == nil || c != s.conn {
		return
	}
	var b []byte
	for _, l := range lines {
		b = append(b, l...)
		b = append(b, '\r', '\n')
	}
	_, _ = c.Write(b)
}

func (s *server) numericLocked(c *memConn, code string, params ...string) {
	nick := s.nick
	if nick == "" {
		nick = "*"
	}
	msg := ircmsg.MakeMessage(nil, serverName, code, append([]string{nick}, params...)...)
	s.sendLocked(c, recording.FormatLine(&msg))
}

// prefixLocked is the node's nick!user@host.
func (s *server) prefixLocked() string {
	return s.nick + "!~" + s.user + "@" + nodeHost
}

// handle answers one line from the node; false ends the connection.
func (s *server) handle(c *memConn, line string) bool {
	msg, err := ircmsg.ParseLine(line)
	if err != nil {
		return true
	}
	cmd := strings.ToUpper(msg.Command)
	if cmd == "PRIVMSG" {
		s.privmsg(c, &msg)
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	param := func(i int) string {
		if i < len(msg.Params) {
			return msg.Params[i]
		}
		return ""
	}
	switch cmd {
	case "CAP":
		switch strings.ToUpper(param(0)) {
		case "LS":
			s.sendLocked(c, ":"+serverName+" CAP * LS :"+strings.Join(offeredCaps, " "))
		case "REQ":
			req := strings.Fields(param(1))
			for _, cp := range req {
				if !slices.Contains(offeredCaps, strings.TrimPrefix(cp, "-")) {
					s.sendLocked(c, ":"+serverName+" CAP * NAK :"+param(1))
					return true
				}
			}
			for _, cp := range req {
				s.caps[strings.TrimPrefix(cp, "-")] = !strings.HasPrefix(cp, "-")
			}
			s.sendLocked(c, ":"+serverName+" CAP * ACK :"+strings.Join(req, " "))
		case "END":
			s.capEnded = true
			s.welcomeLocked(c)
		}
	case "NICK":
		if s.registered && param(0) != "" {
			s.sendLocked(c, ":"+s.prefixLocked()+" NICK "+param(0))
		}
		s.nick = param(0)
		s.welcomeLocked(c)
	case "USER":
		s.user = param(0)
		s.welcomeLocked(c)
	case "PING":
		tok := ""
		if len(msg.Params) > 0 {
			tok = msg.Params[len(msg.Params)-1]
		}
		s.sendLocked(c, ":"+serverName+" PONG "+serverName+" :"+tok)
	case "JOIN":
		for _, ch := range strings.Split(param(0), ",") {
			if ch == "" {
				continue
			}
			s.joined[strings.ToLower(ch)] = true
			s.modeLocked(ch)
			s.sendLocked(c, ":"+s.prefixLocked()+" JOIN "+ch)
			names := append([]string{"@" + s.nick}, s.names[strings.ToLower(ch)]...)
			s.numericLocked(c, "353", "=", ch, strings.Join(names, " "))
			s.numericLocked(c, "366", ch, "End of /NAMES list.")
		}
	case "PART":
		for _, ch := range strings.Split(param(0), ",") {
			if s.joined[strings.ToLower(ch)] {
				delete(s.joined, strings.ToLower(ch))
				s.sendLocked(c, ":"+s.prefixLocked()+" PART "+ch)
			}
		}
	case "MODE":
		if strings.HasPrefix(param(0), "#") {
			s.channelModeLocked(c, msg.Params)
		}
	case "WHO":
		s.numericLocked(c, "315", param(0), "End of /WHO list.")
	case "LIST":
		s.numericLocked(c, "323", "End of channel list.")
	case "QUIT":
		s.sendLocked(c, "ERROR :Closing link: (quit)")
		return false
	}
	return true
}

// welcomeLocked completes registration once NICK, USER and CAP END came.
func (s *server) welcomeLocked(c *memConn) {
	if s.registered || !s.capEnded || s.nick == "" || s.user == "" {
		return
	}
	s.registered = true
	s.loggedInLocked(c)
	s.numericLocked(c, "001", "Welcome to the meshtest replay server "+s.prefixLocked())
	s.numericLocked(c, "005", "CASEMAPPING=ascii", "CHANNELLEN=64", "CHANTYPES=#", "NICKLEN=30", "are supported by this server")
	s.numericLocked(c, "376", "End of message of the day.")
}

// loggedInLocked tells the node the account it is logged in to
// (RPL_LOGGEDIN, as a server does after SASL), when its config binds its
// service to one (Config.Accounts): the replay server stands for the server
// that logged it in.
func (s *server) loggedInLocked(c *memConn) {
	svc, _, ok := mesh.ParseNick(s.nick)
	if !ok {
		return
	}
	if acct, bound := s.accounts.Account(svc); bound {
		s.numericLocked(c, "900", s.prefixLocked(), acct, "You are now logged in as "+acct)
	}
}

// serverTagsLocked adds the tags the server adds to a line it relays: its
// time and a msgid, when the node asked for them.
func (s *server) serverTagsLocked(msg *ircmsg.Message) {
	if s.caps["server-time"] {
		msg.SetTag("time", time.Now().UTC().Format("2006-01-02T15:04:05.000Z"))
	}
	if s.caps["message-tags"] {
		s.msgid++
		msg.SetTag("msgid", "r"+strconv.FormatUint(s.msgid, 10))
	}
}

// accountTagLocked adds the account tag of service's instances, when the
// node's config binds the service to an account (Config.Accounts): the
// replay server stands for the server that logged them in.
func (s *server) accountTagLocked(msg *ircmsg.Message, service string) {
	if acct, ok := s.accounts.Account(service); ok && s.caps["account-tag"] {
		msg.SetTag("account", acct)
	}
}

// privmsg takes a PRIVMSG from the node: the capture gets it, the node its
// echo, and a stubbed service its answer.
func (s *server) privmsg(c *memConn, msg *ircmsg.Message) {
	if len(msg.Params) < 2 {
		return
	}
	target, text := msg.Params[0], msg.Params[1]
	s.mu.Lock()
	nick, prefix := s.nick, s.prefixLocked()
	echo := s.caps["echo-message"]
	tags := msg.AllTags()
	if echo {
		out := ircmsg.MakeMessage(nil, prefix, "PRIVMSG", target, text)
		for k, v := range tags {
			if strings.HasPrefix(k, "+") {
				out.SetTag(k, v)
			}
		}
		s.serverTagsLocked(&out)
		if svc, _, ok := mesh.ParseNick(nick); ok {
			s.accountTagLocked(&out, svc)
		}
		s.sendLocked(c, recording.FormatLine(&out))
	}
	s.mu.Unlock()
	answers := s.capture.sent(nick, target, tags, text, time.Now())
	for _, a := range answers {
		s.answer(c, a)
	}
}

// answer sends a stubbed service's response to the node.
func (s *server) answer(c *memConn, a answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range a.lines {
		msg := ircmsg.MakeMessage(l.Tags, a.from+"!~"+a.service+"@"+nodeHost, "PRIVMSG", s.nick, l.Body)
		s.serverTagsLocked(&msg)
		s.accountTagLocked(&msg, a.service)
		s.sendLocked(c, recording.FormatLine(&msg))
	}
}

// deliver sends recorded lines to the node (with their line endings), as
// the server would have relayed them: the lines play chose, rewritten for
// the node.
func (s *server) deliver(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		_, _ = s.conn.Write(b)
	}
}

// in returns the node's nick and whether it is in channel.
func (s *server) in(channel string) (nick string, joined bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nick, s.joined[strings.ToLower(channel)]
}

// close ends the current connection and waits for the serve goroutines.
func (s *server) close() {
	s.mu.Lock()
	if s.conn != nil {
		s.conn.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// chanMode is a channel's modes as the replay server keeps them: the node
// is the channel's operator (it made it), and the modes are what it set.
type chanMode struct {
	flags string   // mode letters set, besides n and t
	key   string   // +k
	invex []string // +I masks
}

func (s *server) modeLocked(ch string) *chanMode {
	k := strings.ToLower(ch)
	m := s.modes[k]
	if m == nil {
		m = &chanMode{}
		s.modes[k] = m
	}
	return m
}

// channelModeLocked answers MODE #channel [changes]: a query with the
// modes (324), the invite exceptions list with 346/347, and changes by
// applying and echoing them.
func (s *server) channelModeLocked(c *memConn, params []string) {
	ch := params[0]
	m := s.modeLocked(ch)
	switch {
	case len(params) == 1:
		// The key is a parameter of its own: in the modes' parameter its
		// letters would read as modes (an 'm' in it as +m).
		p := []string{ch, "+nt" + m.flags}
		if m.key != "" {
			p[1] += "k"
			p = append(p, m.key)
		}
		s.numericLocked(c, "324", p...)
		return
	case params[1] == "I" || params[1] == "+I" && len(params) == 2:
		for _, mask := range m.invex {
			s.numericLocked(c, "346", ch, mask)
		}
		s.numericLocked(c, "347", ch, "End of channel invite exception list")
		return
	}
	add, args := true, params[2:]
	next := func() string {
		if len(args) == 0 {
			return ""
		}
		a := args[0]
		args = args[1:]
		return a
	}
	for _, r := range params[1] {
		switch r {
		case '+':
			add = true
		case '-':
			add = false
		case 'k':
			if key := next(); add {
				m.key = key
			} else {
				m.key = ""
			}
		case 'I':
			if mask := next(); add {
				m.invex = append(m.invex, mask)
			} else {
				m.invex = slices.DeleteFunc(m.invex, func(x string) bool { return x == mask })
			}
		case 'o', 'v', 'b', 'e':
			next()
		case 'l':
			if add {
				next()
			}
		case 'n', 't':
		default:
			if add && !strings.ContainsRune(m.flags, r) {
				m.flags += string(r)
			} else if !add {
				m.flags = strings.ReplaceAll(m.flags, string(r), "")
			}
		}
	}
	s.sendLocked(c, ":"+s.prefixLocked()+" MODE "+strings.Join(params, " "))
}
