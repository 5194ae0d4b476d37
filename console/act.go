package console

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/mesh"
)

// maxShown bounds what an answer shows of a payload.
const maxShown = 300

// request makes a mesh request for a person: req SERVICE METHOD PAYLOAD.
func (c *Console) request(cmd Command) []string {
	service, method := cmd.Args[0], cmd.Args[1]
	if err := checkName(service); err != nil {
		return []string{"req: service " + err.Error()}
	}
	if err := checkName(method); err != nil {
		return []string{"req: method " + err.Error()}
	}
	payload := []byte(cmd.Payload)
	if len(payload) > c.cfg.MaxPayload {
		return []string{fmt.Sprintf("req: the payload has %d bytes; at most %d", len(payload), c.cfg.MaxPayload)}
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.RequestTimeout)
	defer cancel()
	start := c.now()
	answer, err := c.n.Request(ctx, service, method, payload, mesh.WithRequestHeaders(envelope.Headers{ContentType: contentType(payload)}))
	took := tookText(c.now().Sub(start))
	var re *mesh.RemoteError
	switch {
	case errors.As(err, &re):
		return []string{fmt.Sprintf("%s/%s answered %s with error %d: %s", re.Service, re.Instance, method, re.Code, show(re.Message, maxShown))}
	case errors.Is(err, mesh.ErrNoResponders):
		return []string{fmt.Sprintf("no live instance of %s answers requests now (members %s lists them)", service, service)}
	case errors.Is(err, context.DeadlineExceeded):
		return []string{fmt.Sprintf("no answer from %s within %v", service, c.cfg.RequestTimeout)}
	case err != nil:
		return []string{"req failed: " + show(err.Error(), maxShown)}
	}
	shown := envelope.Preview(answer, "", maxShown)
	if shown == "" {
		shown = "(empty)"
	}
	return []string{fmt.Sprintf("%s answered %s in %v (%d B): %s", service, method, took, len(answer), shown)}
}

// publish publishes an event for a person: pub TOPIC PAYLOAD.
func (c *Console) publish(cmd Command) []string {
	topic := cmd.Args[0]
	payload := []byte(cmd.Payload)
	if len(payload) > c.cfg.MaxPayload {
		return []string{fmt.Sprintf("pub: the payload has %d bytes; at most %d", len(payload), c.cfg.MaxPayload)}
	}
	if err := mesh.ValidateTopic(c.n.Namespace(), topic, 0); err != nil {
		return []string{"pub: " + show(err.Error(), maxShown)}
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.RequestTimeout)
	defer cancel()
	ack, err := c.n.Publish(ctx, topic, payload, mesh.WithContentType(contentType(payload)))
	switch {
	case errors.Is(err, mesh.ErrPaused):
		return []string{"not published: " + show(err.Error(), maxShown)}
	case err != nil:
		return []string{"pub failed: " + show(err.Error(), maxShown)}
	}
	return []string{fmt.Sprintf("published %s on %s (%d B) as %s", ack.ID.Short(), topic, len(payload), c.n.Nick())}
}

// tookText renders how long a request took: "0.4ms", "12ms", "1.2s".
func tookText(d time.Duration) string {
	switch {
	case d < 10*time.Millisecond:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + "ms"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// contentType guesses what a person typed: JSON, or text.
func contentType(p []byte) string {
	if len(p) > 0 && (p[0] == '{' || p[0] == '[' || p[0] == '"') {
		return "application/json"
	}
	return "text/plain; charset=utf-8"
}

// checkName checks a service or method name as typed: the mesh's name
// characters, 64 bytes at most.
func checkName(s string) error {
	if s == "" || len(s) > 64 {
		return fmt.Errorf("%q: want 1 to 64 characters", clipName(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return fmt.Errorf("%q: a-z, 0-9, '_', '-' and '.' only", clipName(s))
		}
	}
	return nil
}
