package mesh

import (
	"errors"
	"fmt"
)

// Sentinel errors of the runtime. Errors returned by Node methods wrap one of
// these (or a context error), so callers can branch with errors.Is.
var (
	// ErrClosed: the node was closed.
	ErrClosed = errors.New("mesh: node closed")
	// ErrInvalidTopic: a topic or namespace name breaks the naming rules.
	ErrInvalidTopic = errors.New("mesh: invalid topic")
	// ErrInvalidConfig: the Config does not validate.
	ErrInvalidConfig = errors.New("mesh: invalid config")
	// ErrNoResponders: no live instance of the target service is known.
	ErrNoResponders = errors.New("mesh: no live instance of the service")
	// ErrNotConfirmed: the server did not confirm a line before the
	// context ended; it may or may not have been delivered.
	ErrNotConfirmed = errors.New("mesh: not confirmed by the server")
	// ErrRefused: the server refused a line (not in the channel, no such
	// nick, line too long, ...); the error text quotes the server.
	ErrRefused = errors.New("mesh: refused by the server")
	// ErrDisconnected: the connection to the server is down.
	ErrDisconnected = errors.New("mesh: disconnected")
	// ErrSlowConsumer: a subscription's queue was full and events were
	// dropped (see Subscription.Dropped).
	ErrSlowConsumer = errors.New("mesh: slow consumer, events dropped")
	// ErrDuplicateSubscription: the node already subscribes to the topic.
	ErrDuplicateSubscription = errors.New("mesh: already subscribed")
	// ErrAnswerRefused: a request timed out after its target's answer
	// was rejected by this node's trust settings (unsigned while
	// RequireSigned, or signed with a key not in Keys): the two nodes do
	// not share the mesh's keys. The error wraps the rejection.
	ErrAnswerRefused = errors.New("mesh: the answer was refused")
	// ErrOption: a subscription option that does not apply (an anycast
	// option given to Subscribe) or is invalid.
	ErrOption = errors.New("mesh: invalid subscription option")
)

// Error codes carried by RemoteError. Handlers may use their own codes; these
// are the ones the runtime itself produces.
const (
	CodeBadRequest   uint32 = 400
	CodeNoHandler    uint32 = 404
	CodeInternal     uint32 = 500
	CodeOverloaded   uint32 = 503
	CodeDeadline     uint32 = 504
	CodeShuttingDown uint32 = 505
)

// RemoteError is an error returned by a request handler on another instance,
// carried back in the response with its code.
type RemoteError struct {
	Service  string // service that answered
	Instance string // instance that answered
	Code     uint32
	Message  string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("mesh: %s/%s answered %d: %s", e.Service, e.Instance, e.Code, e.Message)
}

// Errorf makes an error with a code for a request handler to return; the
// caller receives it as a *RemoteError with that code.
func Errorf(code uint32, format string, args ...any) error {
	return &codedError{code: code, msg: fmt.Sprintf(format, args...)}
}

type codedError struct {
	code uint32
	msg  string
}

func (e *codedError) Error() string { return e.msg }

// codeOf returns the code to send back for a handler error.
func codeOf(err error) uint32 {
	var ce *codedError
	if errors.As(err, &ce) {
		return ce.code
	}
	var re *RemoteError
	if errors.As(err, &re) {
		return re.Code
	}
	return CodeInternal
}
