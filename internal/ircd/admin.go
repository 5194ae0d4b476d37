package ircd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/ergochat/irc-go/ircmsg"
)

// admin is an operator's connection to one server of a network: it lists
// the servers the server sees (LINKS) and relinks one at once (CONNECT)
// instead of waiting for InspIRCd's 5-second autoconnect timer. One
// goroutine reads the connection (answering PINGs) and hands the lines to
// the command in progress; commands run one at a time.
type admin struct {
	rc    *rawConn
	lines chan ircmsg.Message
	done  chan struct{} // closed when the reader stops (the connection ended)
	err   error         // why, set before done is closed

	mu sync.Mutex // one command at a time
}

// errAdminGone reports a command on an admin connection that ended.
var errAdminGone = errors.New("ircd: the operator's connection ended")

// dialAdmin connects to addr, registers and becomes an operator.
func dialAdmin(ctx context.Context, addr, operName, operPassword string) (*admin, error) {
	rc, err := dialRaw(ctx, addr)
	if err != nil {
		return nil, err
	}
	if _, err := rc.register(ctx, "netadm", nil); err != nil {
		rc.Close()
		return nil, fmt.Errorf("register: %w", err)
	}
	if err := rc.send(ctx, "OPER "+operName+" "+operPassword); err != nil {
		rc.Close()
		return nil, err
	}
	for {
		msg, err := rc.read(ctx)
		if err != nil {
			rc.Close()
			return nil, fmt.Errorf("OPER: %w", err)
		}
		if msg.Command == "381" { // RPL_YOUREOPER
			break
		}
		if msg.Command == "491" || msg.Command == "464" { // no O-lines for your host, password incorrect
			rc.Close()
			return nil, fmt.Errorf("OPER refused: %s %v", msg.Command, msg.Params)
		}
	}
	a := &admin{rc: rc, lines: make(chan ircmsg.Message, 256), done: make(chan struct{})}
	go a.read()
	return a, nil
}

func (a *admin) read() {
	defer close(a.done)
	for {
		msg, err := a.rc.read(context.Background())
		if err != nil {
			a.err = err
			return
		}
		select {
		case a.lines <- msg:
		default: // nobody asked: notices, mostly
		}
	}
}

// alive reports whether the connection still runs.
func (a *admin) alive() bool {
	select {
	case <-a.done:
		return false
	default:
		return true
	}
}

// drain drops the lines nobody asked for.
func (a *admin) drain() {
	for {
		select {
		case <-a.lines:
		default:
			return
		}
	}
}

// connect asks the server to link to server now (a server notice answers;
// LINKS tells when the link is up).
func (a *admin) connect(ctx context.Context, server string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.alive() {
		return errAdminGone
	}
	return a.rc.send(ctx, "CONNECT "+server)
}

// links returns the names of the servers the server sees (LINKS), itself
// included, sorted.
func (a *admin) links(ctx context.Context) ([]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.drain()
	if err := a.rc.send(ctx, "LINKS"); err != nil {
		return nil, err
	}
	var seen []string
	for {
		select {
		case msg := <-a.lines:
			switch msg.Command {
			case "364": // RPL_LINKS: me server hub :hops info
				if len(msg.Params) >= 2 {
					seen = append(seen, msg.Params[1])
				}
			case "365": // RPL_ENDOFLINKS
				slices.Sort(seen)
				return seen, nil
			}
		case <-a.done:
			return nil, fmt.Errorf("%w: %v", errAdminGone, a.err)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// close ends the connection and waits for the reader.
func (a *admin) close() {
	_ = a.rc.send(context.Background(), "QUIT :bye")
	_ = a.rc.Close()
	<-a.done
}
