package mesh_test

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/meshbot/meshbot/envelope"
)

// Helpers of BenchmarkRoundTrip: a pair of bare clients bouncing a private
// message, as the physical limit of a request/response round trip.

// benchDM is bare client a asking bare client b: b answers every private
// message from a at once, on its reading goroutine.
type benchDM struct {
	a, b    *benchRaw
	request string // the line a sends, without CRLF
	replies chan struct{}
}

// newBenchDM sets up the pair and starts both readers. With wire, a and b
// send the line a node sends for a 200-byte request and its answer (the
// +meshbot/e tag and the legible body); else a plain 200-byte text, which
// b sends back.
func newBenchDM(a, b *benchRaw, wire bool) (*benchDM, error) {
	p := &benchDM{a: a, b: b, replies: make(chan struct{}, 1)}
	anick, bnick := []byte(a.nick), []byte(b.nick)
	a.onPrivmsg = func(src, _, _ []byte) {
		if bytes.Equal(src, bnick) {
			select {
			case p.replies <- struct{}{}:
			default:
			}
		}
	}
	if !wire {
		p.request = "PRIVMSG " + b.nick + " :" + strings.Repeat("x", benchBody)
		b.onPrivmsg = func(src, _, text []byte) {
			if bytes.Equal(src, anick) {
				_ = b.send("PRIVMSG " + string(src) + " :" + string(text))
			}
		}
	} else {
		var err error
		if p.request, err = benchDMLine(envelope.KindRequest, a, b.nick); err != nil {
			return nil, err
		}
		reply, err := benchDMLine(envelope.KindResponse, b, a.nick)
		if err != nil {
			return nil, err
		}
		b.onPrivmsg = func(src, _, _ []byte) {
			if bytes.Equal(src, anick) {
				_ = b.send(reply)
			}
		}
	}
	go a.run()
	go b.run()
	return p, nil
}

// rt sends the request and waits for the answer.
func (p *benchDM) rt() (time.Duration, error) {
	start := time.Now()
	if err := p.a.send(p.request); err != nil {
		return 0, err
	}
	select {
	case <-p.replies:
		return time.Since(start), nil
	case <-p.a.dead:
		return 0, fmt.Errorf("client %s: %v", p.a.nick, p.a.err)
	case <-p.b.dead:
		return 0, fmt.Errorf("client %s: %v", p.b.nick, p.b.err)
	case <-time.After(5 * time.Second):
		return 0, fmt.Errorf("no answer after 5s")
	}
}

// benchDMLine returns the line (without CRLF) a node sends to nick for a
// request or response of kind with a 200-byte payload: with the tag carrier
// where from has message-tags, else with the body carrier.
func benchDMLine(kind envelope.Kind, from *benchRaw, to string) (string, error) {
	env := envelope.New(kind, envelope.Sender{Service: "rtsrv", Instance: "abc123", Incarnation: uint64(time.Now().UnixNano())},
		"echo", bytes.Repeat([]byte("x"), benchBody), time.Now())
	if kind == envelope.KindResponse {
		env.Correlation = envelope.NewID()
	}
	sealed, err := envelope.Seal(env, nil)
	if err != nil {
		return "", err
	}
	lim := envelope.Limits{TagBytes: envelope.DefaultTagBytes,
		BodyBytes: envelope.BodyBudget(512, from.nick+"!~bench@127.0.0.1", to, 16)}
	carrier := envelope.CarrierBody
	if from.caps["message-tags"] {
		carrier = envelope.CarrierTag
	}
	lines, err := envelope.EncodeLines(env, sealed, carrier, lim)
	if err != nil {
		return "", err
	}
	if len(lines) != 1 {
		return "", fmt.Errorf("a 200-byte %s takes %d lines", kind, len(lines))
	}
	var sb strings.Builder
	for k, v := range lines[0].Tags {
		if sb.Len() == 0 {
			sb.WriteByte('@')
		} else {
			sb.WriteByte(';')
		}
		sb.WriteString(k + "=" + v) // base64url: nothing to escape
	}
	if sb.Len() > 0 {
		sb.WriteByte(' ')
	}
	sb.WriteString("PRIVMSG " + to + " :" + lines[0].Body)
	return sb.String(), nil
}

// benchAckAtOnce makes c acknowledge what it reads at once, as a node does
// (mesh/quickack_linux.go): with echo-message the server holds an answer
// behind the unacknowledged echo of the question (InspIRCd does not set
// TCP_NODELAY), 40 ms with delayed ACKs. Call it before run.
func benchAckAtOnce(c *benchRaw) {
	c.r = bufio.NewReaderSize(quickAckReader(c.conn), 64<<10)
}
