package bus

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// addHub binds a leafnode remote to an account that imports only the
// exported subjects from the edge account. Deny lists would be the other
// way, but denying imports also hides the hub's interest, which stops
// exports too; separate accounts make "only these subjects, one way" hold
// by construction.
func addHub(opts *server.Options, edgeAcc *server.Account, hub string, reconnect time.Duration, exports []string) error {
	urls, err := hubURLs(hub)
	if err != nil {
		return err
	}
	hubAcc := server.NewAccount(hubAccount)
	for _, subj := range exports {
		if err := edgeAcc.AddStreamExport(subj, []*server.Account{hubAcc}); err != nil {
			return fmt.Errorf("bus: export %s: %w", subj, err)
		}
		if err := hubAcc.AddStreamImport(edgeAcc, subj, ""); err != nil {
			return fmt.Errorf("bus: import %s: %w", subj, err)
		}
	}
	opts.Accounts = append(opts.Accounts, hubAcc)
	// One remote with every node's URL: nats-server connects to one and,
	// when it goes, to another, on its own.
	opts.LeafNode.Remotes = []*server.RemoteLeafOpts{{URLs: urls, LocalAccount: hubAccount}}
	opts.LeafNode.ReconnectInterval = reconnect
	if opts.LeafNode.ReconnectInterval <= 0 {
		opts.LeafNode.ReconnectInterval = 500 * time.Millisecond
	}
	return nil
}

// hubURLs parses a comma-separated list of hub leafnode URLs, the nodes
// of one hub cluster.
func hubURLs(list string) ([]*url.URL, error) {
	var urls []*url.URL
	for _, raw := range strings.Split(list, ",") {
		raw = strings.TrimSpace(raw)
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("bus: hub URL %q: want nats-leaf://[user:pass@]host:port", redactURL(raw))
		}
		switch u.Scheme {
		case "nats-leaf", "nats", "tls", "ws", "wss":
		default:
			return nil, fmt.Errorf("bus: hub URL %q: unsupported scheme %q", redactURL(raw), u.Scheme)
		}
		urls = append(urls, u)
	}
	return urls, nil
}

// redactURL hides a password in a URL for error messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}

// redactList hides the passwords of a comma-separated URL list.
func redactList(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		parts[i] = redactURL(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}
