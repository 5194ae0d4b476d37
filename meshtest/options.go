package meshtest

import (
	"log/slog"
	"time"

	"github.com/meshbot/meshbot/mesh"
)

// Option tunes a replay.
type Option func(*options)

type options struct {
	warmup, settle time.Duration
	keepOwn        bool
	protocol       bool
	logLevel       *slog.Level
	payload        func(topic string, p []byte) string
	stubs          map[string]mesh.RequestHandler // "service.method"
	stubServices   []string
}

func defaultOptions() *options {
	return &options{warmup: 2 * time.Second, settle: 30 * time.Second, stubs: map[string]mesh.RequestHandler{}}
}

// Warmup is how long before the log's first line the node connects and
// the setup runs (default 2 s, two heartbeat intervals): by the first
// recorded line the service is as warm as a running instance (its
// anycast groups ready to claim). It costs no real time.
func Warmup(d time.Duration) Option { return func(o *options) { o.warmup = max(d, 0) } }

// Settle is how long the node keeps running after the log's last line
// before it is closed (default 30 s): long enough for retries, leases and
// request timeouts that the last lines started to play out. It costs no
// real time.
func Settle(d time.Duration) Option { return func(o *options) { o.settle = max(d, 0) } }

// KeepOwnService replays the lines of the recorded instances of the
// service under test too. By default they are left out: the node under
// test takes their place, and what they sent (their events, claims,
// answers, heartbeats) is what the replay is to produce again.
func KeepOwnService() Option { return func(o *options) { o.keepOwn = true } }

// ShowProtocol adds the anycast protocol's lines the node sends (claims,
// acks, nacks, releases, committed offsets) to the output. By default the
// output holds what a service does (publishes, answers, requests, errors,
// dead letters, state updates), not how its group agrees.
func ShowProtocol() Option { return func(o *options) { o.protocol = true } }

// Logs adds what the node logs at level or above to the output (its
// message and attributes). Handler errors are always in the output.
func Logs(level slog.Level) Option { return func(o *options) { o.logLevel = &level } }

// FormatPayload sets how payloads are shown in the output: for example
// to drop a field that changes on every run (a random id), or to show a
// binary encoding legibly. topic is the topic, method or domain the
// payload belongs to. By default a payload is shown as text when it is
// printable UTF-8, quoted when it is other UTF-8, and as base64 otherwise.
func FormatPayload(f func(topic string, p []byte) string) Option {
	return func(o *options) { o.payload = f }
}

// Answer stubs method of service: requests the node sends there are
// answered by h, on the replay server, at once, as an instance
// <service>-stub (present in the heartbeat channel from the start). A
// *mesh.RemoteError returned by h chooses the code the node receives;
// other errors arrive as mesh.CodeInternal. Requests to services nobody
// stubs reach no one and time out, as they would against a mesh where
// the service is absent (or fail at once with mesh.ErrNoResponders when
// the log shows no instance of it).
func Answer(service, method string, h mesh.RequestHandler) Option {
	return func(o *options) {
		o.stubs[service+"."+method] = h
		o.stubServices = append(o.stubServices, service)
	}
}
