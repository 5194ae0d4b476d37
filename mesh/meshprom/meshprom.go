// Package meshprom exports a mesh.Node's counters as Prometheus metrics.
//
// It is an adapter kept out of package mesh so that the runtime does not
// depend on a metrics library: the collector reads Node.Stats on every
// scrape and turns the snapshot into constant metrics. Nothing is counted
// twice and nothing runs between scrapes.
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(meshprom.NewCollector(node))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// Every series carries the constant labels namespace, service and instance
// (read from the node when the collector is made), so the collectors of
// several nodes of one process can share a registry.
package meshprom

import (
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/mesh"
)

// RejectReasons are the reasons of rejected lines that are always exported
// (as 0 until one happens), so that rate() works from the first scrape.
// Reasons the node reports beyond these are exported too.
var RejectReasons = envelope.Reasons()

// Option configures a collector.
type Option func(*options)

type options struct {
	prefix string
	labels prometheus.Labels
}

// WithPrefix sets the metric name prefix ("meshbot" by default), as in
// meshbot_lines_in_total.
func WithPrefix(p string) Option { return func(o *options) { o.prefix = p } }

// WithConstLabels adds constant labels to every series; they override the
// default namespace, service and instance labels of the same name.
func WithConstLabels(l prometheus.Labels) Option {
	return func(o *options) { maps.Copy(o.labels, l) }
}

// counter is one counter metric read from a Stats field.
type counter struct {
	desc *prometheus.Desc
	get  func(*mesh.Stats) uint64
}

type collector struct {
	node     *mesh.Node
	counters []counter
	rejected *prometheus.Desc
	latency  *prometheus.Desc
	buckets  []float64 // upper bounds in seconds
}

// NewCollector returns a collector of node's Stats. Register it once per
// node; it is safe for concurrent scrapes.
func NewCollector(node *mesh.Node, opts ...Option) prometheus.Collector {
	o := options{
		prefix: "meshbot",
		labels: prometheus.Labels{
			"namespace": node.Namespace(),
			"service":   node.Service(),
			"instance":  node.Instance(),
		},
	}
	for _, opt := range opts {
		opt(&o)
	}
	name := func(n string) string { return prometheus.BuildFQName(o.prefix, "", n) }
	c := &collector{node: node}
	add := func(n, help string, get func(*mesh.Stats) uint64) {
		c.counters = append(c.counters, counter{
			desc: prometheus.NewDesc(name(n), help, nil, o.labels),
			get:  get,
		})
	}
	add("lines_in_total", "Lines received from the IRC server.", func(s *mesh.Stats) uint64 { return s.LinesIn })
	add("lines_out_total", "Mesh lines written to the IRC server.", func(s *mesh.Stats) uint64 { return s.LinesOut })
	add("not_mesh_total", "Received PRIVMSGs that were not mesh lines (human chatter).", func(s *mesh.Stats) uint64 { return s.NotMesh })
	add("unrouted_total", "Events for a topic the node no longer subscribes to.", func(s *mesh.Stats) uint64 { return s.Unrouted })
	add("unhandled_total", "Envelopes of a kind this node does not process.", func(s *mesh.Stats) uint64 { return s.Unhandled })
	add("delivered_total", "Events handed to subscription handlers.", func(s *mesh.Stats) uint64 { return s.Delivered })
	add("dropped_total", "Events and requests dropped because a queue was full.", func(s *mesh.Stats) uint64 { return s.Dropped })
	add("handler_errors_total", "Handler errors and panics, and error responses sent.", func(s *mesh.Stats) uint64 { return s.HandlerErrors })
	add("requests_served_total", "Requests handled.", func(s *mesh.Stats) uint64 { return s.RequestsServed })
	add("request_retries_total", "Requests re-sent because the asked instance left.", func(s *mesh.Stats) uint64 { return s.RequestRetries })
	add("late_responses_total", "Responses that arrived after their request ended.", func(s *mesh.Stats) uint64 { return s.LateResponses })
	add("resent_total", "Envelopes sent again after a connection was lost.", func(s *mesh.Stats) uint64 { return s.Resent })
	add("reconnects_total", "Connections lost and re-established.", func(s *mesh.Stats) uint64 { return s.Reconnects })
	add("connection_timeouts_total", "Connections dropped because the server went silent.", func(s *mesh.Stats) uint64 { return s.Timeouts })
	add("refused_total", "Envelopes the IRC server refused.", func(s *mesh.Stats) uint64 { return s.Refused })
	add("stale_lines_total", "Lines queued for a connection attempt that ended, left out of the next connection.", func(s *mesh.Stats) uint64 { return s.StaleLines })
	c.rejected = prometheus.NewDesc(name("rejected_total"),
		"Mesh lines rejected (malformed, forged, duplicate, ...), by reason.", []string{"reason"}, o.labels)
	c.latency = prometheus.NewDesc(name("handler_duration_seconds"),
		"Run time of event and request handlers.", nil, o.labels)
	for _, b := range mesh.LatencyBuckets {
		c.buckets = append(c.buckets, b.Seconds())
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.counters {
		ch <- m.desc
	}
	ch <- c.rejected
	ch <- c.latency
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.node.Stats()
	for _, m := range c.counters {
		ch <- prometheus.MustNewConstMetric(m.desc, prometheus.CounterValue, float64(m.get(&s)))
	}
	rej := map[string]uint64{}
	for _, r := range RejectReasons {
		rej[r] = 0
	}
	maps.Copy(rej, s.RejectedBy)
	for _, r := range slices.Sorted(maps.Keys(rej)) {
		ch <- prometheus.MustNewConstMetric(c.rejected, prometheus.CounterValue, float64(rej[r]), r)
	}
	count, cum := cumulative(c.buckets, s.HandlerLatency)
	ch <- prometheus.MustNewConstHistogram(c.latency, count, s.HandlerSeconds, cum)
}

// cumulative turns per-bucket counts (the last entry counting what is above
// every bound) into Prometheus's cumulative buckets and the total count.
func cumulative(bounds []float64, perBucket []uint64) (uint64, map[float64]uint64) {
	cum := make(map[float64]uint64, len(bounds))
	var total uint64
	for i, b := range bounds {
		if i < len(perBucket) {
			total += perBucket[i]
		}
		cum[b] = total
	}
	for _, n := range perBucket[min(len(bounds), len(perBucket)):] {
		total += n
	}
	return total, cum
}
