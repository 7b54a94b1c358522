package bus

import "github.com/rbee/hive/internal/settings"

// DefaultConfig is the bus a hive runs by default: observers on loopback
// port 4222, within DefaultObserverLimits, no hub.
func DefaultConfig() Config {
	return Config{Listen: "127.0.0.1:4222", Observers: DefaultObserverLimits, Store: DefaultStoreConfig}
}

// RegisterSettings declares the bus's settings, bound to c: the
// observers' listener and login, the hub and its store, the observers'
// bound. c's values are the defaults.
func (c *Config) RegisterSettings(s *settings.Set) {
	n := s.Group("nats")
	n.String(&c.Listen, "nats-listen", "listen", `NATS client listener for external subscribers; "" = in-process only`)
	n.String(&c.ObserverUser, "nats-user", "user", "user external NATS clients must log in as (with --nats-password-file); default: no credentials, read-only")
	n.String(&c.Hub, "nats-hub", "hub", "hub NATS leafnode URL (nats-leaf://[user:pass@]host:7422) to export hive.telemetry to; comma-separated for the nodes of a hub cluster",
		settings.Masked(settings.MaskURLPasswords))
	n.String(&c.HubIngest, "nats-hub-ingest", "hub-ingest", "hub nodes' client URLs with the ingest user (tls://hive:pass@host:4222,...): the hub's history takes this hive's telemetry there, each event acknowledged and kept under the state dir until it is; \"\" = the hub keeps no history of this hive",
		settings.Masked(settings.MaskURLPasswords), settings.FileOnly)
	n.Duration(&c.Store.MaxAge, "nats-hub-store-max-age", "hub-store-max-age", "oldest event kept for the hub while it is away (the hub's history is 1 h)", settings.FileOnly)
	n.Int64(&c.Store.MaxBytes, "nats-hub-store-max-bytes", "hub-store-max-bytes", "bytes kept for the hub while it is away, the oldest dropped first", settings.FileOnly)
	n.Int(&c.Store.Rate, "nats-hub-rate", "hub-rate", "events a second at most forwarded to the hub's history, live ones included: how fast a backlog drains", settings.FileOnly)
	s.Group("limits").Int(&c.Observers.MaxConns, "nats-max-conns", "nats-max-conns", "external NATS connections at most")
}
