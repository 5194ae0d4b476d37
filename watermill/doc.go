// Package meshwatermill is a Watermill (github.com/ThreeDotsLabs/watermill)
// Pub/Sub backed by meshbot: a Publisher that publishes each Watermill
// message as a meshbot event, and a Subscriber that delivers a topic's
// events as Watermill messages, multicast by default or, with a consumer
// group, anycast (each message handled by exactly one member of the
// group). Watermill's router and middlewares (retry, poison queue,
// deduplication, throttling) run over it unchanged.
//
// # What it guarantees
//
//   - A message's UUID, metadata and payload arrive unchanged (the
//     framing: ContentType). Events published by plain meshbot services
//     arrive too, as messages whose UUID is the envelope id.
//   - Topics: Watermill topic names are mapped to meshbot topics by a
//     TopicMapper, deterministically, on both sides (DefaultTopicMapper).
//   - Publish returns once the server accepted every message (meshbot's
//     publish confirm).
//   - Multicast (no consumer group): every Subscriber subscribed to a
//     topic gets each message published after it subscribed
//     (SubscribeInitialize or the first Subscribe), once, in the order
//     the server relayed them (Concurrency 1), until it closes. Nack
//     delivers the message again at once, to the same Subscriber.
//   - Consumer group: each message is acknowledged by exactly one member
//     of the group (mesh.SubscribeAnycast); Nack retries it after
//     RetryDelay, on any member, and after MaxAttempts it goes to the
//     dead-letter topic <topic>._dead. With mesh.Config.History and a
//     history recorder recording the topic, messages published while no
//     member (or none at all) was subscribed are delivered when one
//     subscribes, and messages a closed member held go to the others.
//   - Close: once it returns, every output channel is closed, no message
//     is sent on one and no handler of the Subscriber runs on the node;
//     Subscribe fails afterwards; Close is safe twice.
//
// # What the user must do
//
// Acknowledge every message (Ack or Nack): the next one of the topic is
// handed to a consumer only when one is free. For a consumer group that
// does not lose messages while nobody is subscribed, run a history
// recorder (meshbot history) and set mesh.Config.History; the recorder
// must be in the topic's channel before the first publish
// (SubscribeInitialize creates the channel; the recorder finds it within
// its scan interval). See README.md for the Watermill features this
// Pub/Sub has, and the ones it has not.
package meshwatermill
