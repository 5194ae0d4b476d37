package meshwatermill_test

import (
	"os"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
)

// Watermill's universal Pub/Sub suite (pubsub/tests) against a real IRC
// server, twice: with multicast subscribers (the default) and with
// consumer groups as the default. README.md explains each Features value.

// multicastFeatures: multicast subscribers get each event once, in server
// order, from their subscription on; a subscriber made after a publish
// does not get it (so the suite must use the one that initialized the
// topic: RequireSingleInstance, and nothing is Persistent).
var multicastFeatures = tests.Features{
	ConsumerGroups:                   true,
	ExactlyOnceDelivery:              true,
	GuaranteedOrder:                  true,
	Persistent:                       false,
	RequireSingleInstance:            true,
	NewSubscriberReceivesOldMessages: false,
}

// groupFeatures: every subscriber is a member of one consumer group
// (anycast) and the mesh runs a history recorder, so a member made after
// a publish completes what the group has not (Persistent). Each message
// is acknowledged once, but a message whose claim moves to another member
// while a consumer holds it (the holder was suspected, or its lease ran
// out) is delivered again: not ExactlyOnceDelivery. Members share the
// messages, so there is no order across them.
var groupFeatures = tests.Features{
	ConsumerGroups:                   true,
	ExactlyOnceDelivery:              false,
	GuaranteedOrder:                  false,
	Persistent:                       true,
	RequireSingleInstance:            false,
	NewSubscriberReceivesOldMessages: false,
}

// defaultGroup is the group of the consumer-group run's default
// constructor.
const defaultGroup = "default"

// groupRunFeatures are groupFeatures with the suite's short sizes
// (ForceShort) unless MESHWATERMILL_FULL is set: every member of an
// anycast group tracks every event of the topic, and at the full sizes
// (50 members in one process sharing 5,000 messages) a shared two-core
// machine does not keep every node's heartbeats on time, so members are
// suspected, their claims move and the run slows down past the suite's
// timeouts now and then (README.md has the figures).
func groupRunFeatures() tests.Features {
	f := groupFeatures
	f.ForceShort = os.Getenv("MESHWATERMILL_FULL") == ""
	return f
}

func multicastEnv(t *testing.T) *env {
	e := newEnv(t, "wmm", 24)
	// The suite publishes up to 10,000 messages before it subscribes.
	e.sub.QueueLen = 16384
	e.sub.RetryDelay = 200 * time.Millisecond
	e.sub.MaxAttempts = 1000
	return e
}

func groupEnv(t *testing.T) *env {
	e := newEnv(t, "wmg", 24)
	// Watermill redelivers a nacked message until it is acked (the
	// suite nacks the same messages many times); the poison-queue
	// middleware is how a router gives up. A short delay keeps it quick.
	e.sub.RetryDelay = 200 * time.Millisecond
	e.sub.MaxAttempts = 1000
	return e
}

func TestUniversalMulticast(t *testing.T) {
	e := multicastEnv(t)
	tests.TestPubSub(t, multicastFeatures,
		func(t *testing.T) (message.Publisher, message.Subscriber) { return e.pubSub(t, "") },
		e.pubSub)
}

func TestUniversalGroups(t *testing.T) {
	e := groupEnv(t)
	tests.TestPubSub(t, groupRunFeatures(),
		func(t *testing.T) (message.Publisher, message.Subscriber) { return e.pubSub(t, defaultGroup) },
		e.pubSub)
}

// TestUniversalMulticastAtLeastOnce runs the suite's tests that
// ExactlyOnceDelivery skips with that feature off, for multicast: message
// contexts end on Ack and on Close (TestMessageCtx publishes one message
// twice, which a broker that de-duplicates by UUID would deliver once).
func TestUniversalMulticastAtLeastOnce(t *testing.T) {
	e := multicastEnv(t)
	f := multicastFeatures
	f.ExactlyOnceDelivery = false
	tests.TestMessageCtx(t, tests.TestContext{TestID: tests.NewTestID(), Features: f},
		func(t *testing.T) (message.Publisher, message.Subscriber) { return e.pubSub(t, "") })
}

// TestUniversalStress runs the suite's stress variant (the whole suite
// ten times in parallel, STRESS_TEST_COUNT to change) when
// MESHWATERMILL_STRESS is set: it takes minutes.
func TestUniversalStress(t *testing.T) {
	if os.Getenv("MESHWATERMILL_STRESS") == "" {
		t.Skip("set MESHWATERMILL_STRESS=1 to run the stress suite")
	}
	t.Run("multicast", func(t *testing.T) {
		e := multicastEnv(t)
		tests.TestPubSubStressTest(t, multicastFeatures,
			func(t *testing.T) (message.Publisher, message.Subscriber) { return e.pubSub(t, "") },
			e.pubSub)
	})
	t.Run("groups", func(t *testing.T) {
		e := groupEnv(t)
		tests.TestPubSubStressTest(t, groupRunFeatures(),
			func(t *testing.T) (message.Publisher, message.Subscriber) { return e.pubSub(t, defaultGroup) },
			e.pubSub)
	})
}
