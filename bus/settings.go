package bus

import "github.com/rbee/hive/internal/settings"

// DefaultConfig is the bus a hive runs by default: observers on loopback
// port 4222, within DefaultObserverLimits, no hub.
func DefaultConfig() Config {
	return Config{Listen: "127.0.0.1:4222", Observers: DefaultObserverLimits}
}

// RegisterSettings declares the bus's settings, bound to c: the
// observers' listener and login, the hub, the observers' bound. c's
// values are the defaults.
func (c *Config) RegisterSettings(s *settings.Set) {
	n := s.Group("nats")
	n.String(&c.Listen, "nats-listen", "listen", `NATS client listener for external subscribers; "" = in-process only`)
	n.String(&c.ObserverUser, "nats-user", "user", "user external NATS clients must log in as (with --nats-password-file); default: no credentials, read-only")
	n.String(&c.Hub, "nats-hub", "hub", "hub NATS leafnode URL (nats-leaf://[user:pass@]host:7422) to export hive.telemetry to; comma-separated for the nodes of a hub cluster",
		settings.Masked(settings.MaskURLPasswords))
	s.Group("limits").Int(&c.Observers.MaxConns, "nats-max-conns", "nats-max-conns", "external NATS connections at most")
}
