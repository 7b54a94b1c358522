// Package hubcluster runs the hub cluster of deployments/hub.conf as local
// nats-server processes, its ports moved to free ones: for the tests that
// need a real cluster without Docker and for bench/manyhives. Compose runs
// the same file in containers.
package hubcluster

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rbee/hive/internal/certgen"
	"github.com/rbee/hive/internal/freeport"
)

// Passwords are the cluster's secrets, passed to nats-server in its
// environment as compose does.
type Passwords struct {
	Leaf, Route, Admin, Reader, Historian string
}

// Node is one nats-server of the cluster.
type Node struct {
	Name                        string
	Client, HTTP, Leaf, Cluster int
	conf                        string
	cmd                         *exec.Cmd
	done                        chan struct{}
	log                         *os.File
}

// Cluster is n nodes routed to each other, over TLS as hub.conf has it.
type Cluster struct {
	Nodes []*Node
	// CAFile verifies every node; a client of the hub needs it
	// (nats.RootCAs(CAFile)).
	CAFile string
	// HiveCert and HiveKey are a hive's client certificate, which the
	// leafnode port asks for.
	HiveCert, HiveKey string
	bin               string
	env               []string
	pw                Passwords
	historians        []*exec.Cmd
}

// makeCerts writes, into dir, a CA, one certificate for every node
// (127.0.0.1, for clients, leafnodes and, as a client too, routes) and
// a hive's client certificate, and names the node's in env as hub.conf
// reads them.
func (c *Cluster) makeCerts(dir string) error {
	ca, err := certgen.NewCA("hubcluster CA", 24*time.Hour)
	if err != nil {
		return err
	}
	c.CAFile = filepath.Join(dir, "ca.crt")
	if err := certgen.WriteFile(c.CAFile, ca.CertPEM); err != nil {
		return err
	}
	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	node, err := ca.Issue(certgen.Opts{Names: []string{"127.0.0.1", "localhost"}, Usages: both})
	if err != nil {
		return err
	}
	nodeCert, nodeKey, err := node.Files(dir, "hub")
	if err != nil {
		return err
	}
	hive, err := ca.Issue(certgen.Opts{Names: []string{"hive"}, Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return err
	}
	if c.HiveCert, c.HiveKey, err = hive.Files(dir, "hive"); err != nil {
		return err
	}
	c.env = append(c.env, "HIVE_HUB_TLS_CERT="+nodeCert, "HIVE_HUB_TLS_KEY="+nodeKey, "HIVE_HUB_TLS_CA="+c.CAFile)
	return nil
}

// Start writes one config per node from hubConf (deployments/hub.conf)
// into dir and starts n nodes of bin (a nats-server binary).
func Start(bin, hubConf, dir string, n int, pw Passwords) (*Cluster, error) {
	raw, err := os.ReadFile(hubConf)
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin, pw: pw, env: append(os.Environ(),
		"HIVE_LEAF_PASSWORD="+pw.Leaf, "HIVE_ROUTE_PASSWORD="+pw.Route, "HIVE_HUB_ADMIN_PASSWORD="+pw.Admin,
		"HIVE_HUB_READER_PASSWORD="+pw.Reader, "HIVE_HUB_HISTORIAN_PASSWORD="+pw.Historian)}
	if err := c.makeCerts(dir); err != nil {
		return nil, err
	}
	for i := range n {
		nd := &Node{Name: "hub-" + strconv.Itoa(i+1)}
		ports, err := freeport.Ports(4)
		if err != nil {
			return nil, err
		}
		nd.Client, nd.HTTP, nd.Leaf, nd.Cluster = ports[0], ports[1], ports[2], ports[3]
		conf, err := nodeConf(string(raw), hubConf, dir, nd, n)
		if err != nil {
			return nil, err
		}
		nd.conf = filepath.Join(dir, nd.Name+".conf")
		if err := os.WriteFile(nd.conf, []byte(conf), 0o600); err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, nd)
	}
	// Every node's route, its own included, as compose passes them: in
	// the environment, which hub.conf reads, never as an argument.
	var routes []string
	for _, nd := range c.Nodes {
		routes = append(routes, strconv.Quote(fmt.Sprintf("nats-route://route:%s@127.0.0.1:%d", pw.Route, nd.Cluster)))
	}
	c.env = append(c.env, "HIVE_HUB_ROUTES=["+strings.Join(routes, ", ")+"]")
	for i := range c.Nodes {
		if err := c.StartNode(i); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// nodeConf is hub.conf for node nd of n: its ports and store, and no
// cluster block for a single node.
func nodeConf(conf, hubConf, dir string, nd *Node, n int) (string, error) {
	if n == 1 {
		// One node is no cluster: JetStream refuses a cluster block
		// without routes. A single hub runs without it (and R1 streams).
		var err error
		conf, err = dropBlock(conf, "\ncluster {")
		if err != nil {
			return "", fmt.Errorf("%s: %w", hubConf, err)
		}
	}
	for old, repl := range map[string]string{
		"\nport: 4222":               "\nport: " + strconv.Itoa(nd.Client),
		"\nhttp_port: 8222":          "\nhttp_port: " + strconv.Itoa(nd.HTTP),
		"port: 7422":                 "port: " + strconv.Itoa(nd.Leaf),
		"store_dir: /data/jetstream": "store_dir: " + strconv.Quote(filepath.Join(dir, nd.Name, "jetstream")),
	} {
		if !strings.Contains(conf, old) {
			return "", fmt.Errorf("%s lacks %q", hubConf, old)
		}
		conf = strings.Replace(conf, old, repl, 1)
	}
	if n > 1 {
		if !strings.Contains(conf, "port: 6222") {
			return "", fmt.Errorf("%s lacks the cluster port 6222", hubConf)
		}
		conf = strings.Replace(conf, "port: 6222", "port: "+strconv.Itoa(nd.Cluster), 1)
	}
	return conf, nil
}

// StartNode starts node i (again).
func (c *Cluster) StartNode(i int) error {
	nd := c.Nodes[i]
	log, err := os.OpenFile(strings.TrimSuffix(nd.conf, ".conf")+".log", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	nd.log = log
	nd.cmd = exec.Command(c.bin, "-c", nd.conf, "--name", nd.Name)
	nd.cmd.Env, nd.cmd.Stdout, nd.cmd.Stderr = c.env, log, log
	nd.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := nd.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", nd.Name, err)
	}
	nd.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(nd.cmd, nd.done)
	return nil
}

// StopNode kills node i at once, as a crashed machine would go.
func (c *Cluster) StopNode(i int) {
	nd := c.Nodes[i]
	if nd.cmd == nil {
		return
	}
	_ = syscall.Kill(-nd.cmd.Process.Pid, syscall.SIGKILL)
	<-nd.done
	nd.cmd = nil
	_ = nd.log.Close()
}

// Close stops every node and historian.
func (c *Cluster) Close() {
	for _, h := range c.historians {
		_ = syscall.Kill(-h.Process.Pid, syscall.SIGKILL)
		_ = h.Wait()
	}
	c.historians = nil
	for i := range c.Nodes {
		c.StopNode(i)
	}
}

// StartHistorians runs `hive historian` (hiveBin) beside every node, as
// compose does: the public history goes through them (hub.conf). Their
// output goes to the nodes' log files' directory.
func (c *Cluster) StartHistorians(hiveBin string) error {
	for i, nd := range c.Nodes {
		log, err := os.OpenFile(strings.TrimSuffix(nd.conf, ".conf")+"-historian.log", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		cmd := exec.Command(hiveBin, "historian", "--nats", c.ClientURL(i), "--ca-file", c.CAFile)
		cmd.Env = append(os.Environ(), "HIVE_HUB_HISTORIAN_PASSWORD="+c.pw.Historian)
		cmd.Stdout, cmd.Stderr = log, log
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		err = cmd.Start()
		_ = log.Close() // the child holds its own
		if err != nil {
			return fmt.Errorf("start the historian of %s: %w", nd.Name, err)
		}
		c.historians = append(c.historians, cmd)
	}
	return nil
}

// PID is node i's process id (0 when stopped).
func (c *Cluster) PID(i int) int {
	if c.Nodes[i].cmd == nil {
		return 0
	}
	return c.Nodes[i].cmd.Process.Pid
}

// LeafURLs is the --nats-hub value for a hive: every node's leafnode port.
func (c *Cluster) LeafURLs() string {
	var u []string
	for _, nd := range c.Nodes {
		u = append(u, fmt.Sprintf("nats-leaf://hive:%s@127.0.0.1:%d", c.pw.Leaf, nd.Leaf))
	}
	return strings.Join(u, ",")
}

// IngestURLs is the nats.hub-ingest value for a hive: every node's
// client port, as the ingest user.
func (c *Cluster) IngestURLs() string {
	var u []string
	for _, nd := range c.Nodes {
		u = append(u, fmt.Sprintf("tls://hive:%s@127.0.0.1:%d", c.pw.Leaf, nd.Client))
	}
	return strings.Join(u, ",")
}

// HiveEnv is the environment of a hive that exports to the cluster: its
// --nats-hub, its nats.hub-ingest and the files their TLS needs.
func (c *Cluster) HiveEnv() []string {
	return []string{"HIVE_NATS_HUB=" + c.LeafURLs(), "HIVE_NATS_HUB_INGEST=" + c.IngestURLs(), "HIVE_NATS_HUB_CA_FILE=" + c.CAFile,
		"HIVE_NATS_HUB_CERT_FILE=" + c.HiveCert, "HIVE_NATS_HUB_KEY_FILE=" + c.HiveKey}
}

// TLS is the option a client of the hub needs: the cluster's CA.
func (c *Cluster) TLS() nats.Option { return nats.RootCAs(c.CAFile) }

// ClientURL is node i's client URL.
func (c *Cluster) ClientURL(i int) string {
	return "nats://127.0.0.1:" + strconv.Itoa(c.Nodes[i].Client)
}

// ClientURLs lists every node's client URL, for a client that fails over.
func (c *Cluster) ClientURLs() string {
	var u []string
	for i := range c.Nodes {
		u = append(u, c.ClientURL(i))
	}
	return strings.Join(u, ",")
}

// Ready waits until every running node answers /healthz with JetStream
// current, i.e. the cluster has formed.
func (c *Cluster) Ready(ctx context.Context) error {
	for i, nd := range c.Nodes {
		if nd.cmd == nil {
			continue
		}
		for {
			err := c.healthy(ctx, i)
			if err == nil {
				break
			}
			select {
			case <-nd.done:
				tail, _ := os.ReadFile(strings.TrimSuffix(nd.conf, ".conf") + ".log")
				return fmt.Errorf("%s exited: %s", nd.Name, lastLines(tail, 5))
			default:
			}
			if ctx.Err() != nil {
				return fmt.Errorf("%s not healthy: %v", nd.Name, err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

func (c *Cluster) healthy(ctx context.Context, i int) error {
	return Healthy(ctx, c.monitorURL(i))
}

// Leafz returns, for node i, the server names of the leafnodes (hives)
// attached to it.
func (c *Cluster) Leafz(ctx context.Context, i int) ([]string, error) {
	return LeafNames(ctx, c.monitorURL(i))
}

func (c *Cluster) monitorURL(i int) string {
	return "http://127.0.0.1:" + strconv.Itoa(c.Nodes[i].HTTP)
}

// Healthy asks a node's monitoring port (base, e.g. http://host:8222)
// for /healthz: nil once it is "ok", JetStream included.
func Healthy(ctx context.Context, base string) error {
	var h struct {
		Status string `json:"status"`
		Error  string `json:"error"`
	}
	if err := monitor(ctx, base+"/healthz", &h); err != nil {
		return err
	}
	if h.Status != "ok" {
		return errors.New(h.Status + ": " + h.Error)
	}
	return nil
}

// LeafNames asks a node's monitoring port (base) for /leafz: the server
// names of the leafnodes attached to it, a hive's being its hive id.
func LeafNames(ctx context.Context, base string) ([]string, error) {
	var l struct {
		Leafs []struct {
			Name string `json:"name"`
		} `json:"leafs"`
	}
	if err := monitor(ctx, base+"/leafz", &l); err != nil {
		return nil, err
	}
	var names []string
	for _, lf := range l.Leafs {
		names = append(names, lf.Name)
	}
	return names, nil
}

func monitor(ctx context.Context, url string, v any) error {
	b, err := httpGet(ctx, url)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
