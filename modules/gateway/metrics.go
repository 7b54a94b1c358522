package gateway

import (
	"fmt"
	"log/slog"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rbee/hive/internal/metric"
)

// register exports the counters the gateway keeps as it goes: a scrape
// reads them and costs the same with ten SSE clients or ten thousand.
func (g *Gateway) register(reg prometheus.Registerer) error {
	if g.cfg.TLS.enabled() {
		err := metric.Register(reg,
			metric.Gauge("hive_tls_cert_expiry_timestamp_seconds", "When the HTTPS certificate served now ends, Unix seconds.", func() float64 {
				if p := g.certs.Load(); p != nil {
					return float64(p.NotAfter().Unix())
				}
				return 0
			}),
			metric.Counter("hive_tls_handshakes_cut_total", "TLS handshakes cut for sending over 32 KiB (a client certificate chain too long to parse).", g.handshakesCut.Load),
			metric.Counter("hive_tls_cert_reload_errors_total", "Changed certificate files that did not load (the previous pair kept).", func() uint64 {
				if p := g.certs.Load(); p != nil {
					_, errs := p.Stats()
					return errs
				}
				return 0
			}))
		if err != nil {
			return err
		}
	}
	return metric.Register(reg,
		metric.Gauge("hive_sse_subscribers", "Clients on the telemetry SSE stream.", func() float64 { return float64(g.fanout.numClients()) }),
		metric.Counter("hive_sse_events_dropped_total", "Events not delivered to an SSE client that was too slow.", g.fanout.dropped.Load),
		metric.Counter("hive_sse_subscribers_kicked_total", "SSE clients disconnected for being too slow.", g.fanout.kicked.Load),
		metric.Counter("hive_sse_write_stalls_total", "Events an SSE client's socket could not take at once (then queued for it).", g.fanout.stalls.Load),
		metric.Counter("hive_http_requests_denied_total", "HTTP requests refused by the access checks.", g.denied.Load),
		metric.Counter("hive_http_connections_shed_total", "HTTP connections refused past a connection cap.", g.shed.Load),
		metric.Counter("hive_http_streams_refused_total", "Streams refused because their client held its share of stream slots (the rest is kept for its short requests).", g.streamsShed.Load),
		metric.Counter("hive_job_stream_events_dropped_total", "Live job events a slow job stream missed (it recovers them from the replay).", g.liveDropped.Load),
		metric.Counter("hive_http_streams_revoked_total", "Streams ended because the token they were opened with was rotated out.", g.streams.revokedCount),
		metric.Counter("hive_http_server_errors_total", "Errors net/http reported itself (TLS handshakes that failed, mostly), logged or not.", g.serverLog.Lines),
		metric.Counter("hive_http_server_errors_suppressed_total", "Those of them not logged, past the log rate (20, then 5 a second).", g.serverLog.Dropped),
	)
}

// metricsHandler serves GET /metrics from the hive's one registry.
func (g *Gateway) metricsHandler() gin.HandlerFunc {
	// A collector that fails leaves its series out of that scrape; the
	// rest is served, as Prometheus' own exporters do.
	h := promhttp.HandlerFor(g.cfg.Metrics, promhttp.HandlerOpts{ErrorLog: slogPrinter{g.log}, ErrorHandling: promhttp.ContinueOnError})
	return gin.WrapH(h)
}

// slogPrinter is promhttp's error log.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Warn("metrics", "err", fmt.Sprint(v...)) }
