package redisstore

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Parameters of the store URL that this package reads itself; every other
// query parameter goes to go-redis (dial_timeout, read_timeout, pool_size,
// client_name, protocol, …), which refuses one it does not know.
const (
	paramPrefix           = "key_prefix"
	paramCAFile           = "ca_file"
	paramSentinelPassword = "sentinel_password"
	paramShards           = "shards"
)

// DefaultPrefix starts every key the store writes, unless the URL's
// key_prefix says otherwise.
const DefaultPrefix = "qrs:"

// endpoint is what a store URL says: how to reach Redis and where in it the
// store's keys live.
type endpoint struct {
	prefix   string
	single   *redis.Options         // redis:// and rediss://
	failover *redis.FailoverOptions // redis+sentinel://
	cluster  *redis.ClusterOptions  // redis+cluster:// and rediss+cluster://
	shards   int                    // shards=N of a cluster (1: unsharded)
}

// parseURL reads a store URL (see the package comment). Messages name the
// URL by its scheme only: it may carry a password.
func parseURL(raw string) (*endpoint, error) {
	scheme, _, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, fmt.Errorf("store url: want redis://, rediss://, redis+sentinel:// or redis+cluster://")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("store url (%s://…): %w", scheme, err)
	}
	q := u.Query()
	ep := &endpoint{prefix: DefaultPrefix}
	if vs, ok := q[paramPrefix]; ok {
		if len(vs) != 1 || vs[0] == "" {
			return nil, fmt.Errorf("store url (%s://…): %s must be given once, not empty", scheme, paramPrefix)
		}
		ep.prefix = vs[0]
		q.Del(paramPrefix)
	}
	caFile := q.Get(paramCAFile)
	q.Del(paramCAFile)
	ep.shards = 1
	if vs, ok := q[paramShards]; ok {
		n, err := strconv.Atoi(vs[0])
		if len(vs) != 1 || err != nil || n < 1 || n > MaxShards {
			return nil, fmt.Errorf("store url (%s://…): %s must be given once, a number from 1 to %d", scheme, paramShards, MaxShards)
		}
		if !strings.HasSuffix(scheme, "+cluster") {
			return nil, fmt.Errorf("store url (%s://…): %s is for a Redis Cluster (redis+cluster://): one Redis has one thread to share", scheme, paramShards)
		}
		ep.shards = n
		q.Del(paramShards)
	}

	switch scheme {
	case "redis", "rediss":
		u.RawQuery = q.Encode()
		ep.single, err = redis.ParseURL(u.String())
		if err != nil {
			return nil, fmt.Errorf("store url (%s://…): %w", scheme, err)
		}
		if caFile != "" {
			if scheme != "rediss" {
				return nil, fmt.Errorf("store url (%s://…): %s needs rediss:// (TLS)", scheme, paramCAFile)
			}
			if ep.single.TLSConfig.RootCAs, err = loadCA(caFile); err != nil {
				return nil, err
			}
		}
	case "redis+sentinel":
		if ep.failover, err = parseSentinel(u, q); err != nil {
			return nil, fmt.Errorf("store url (%s://…): %w", scheme, err)
		}
		if caFile != "" {
			return nil, fmt.Errorf("store url (%s://…): %s is for rediss:// only", scheme, paramCAFile)
		}
	case "redis+cluster", "rediss+cluster":
		if ep.cluster, err = parseCluster(u, q, strings.TrimSuffix(scheme, "+cluster")); err != nil {
			return nil, fmt.Errorf("store url (%s://…): %w", scheme, err)
		}
		if caFile != "" {
			if scheme != "rediss+cluster" {
				return nil, fmt.Errorf("store url (%s://…): %s needs rediss+cluster:// (TLS)", scheme, paramCAFile)
			}
			if ep.cluster.TLSConfig.RootCAs, err = loadCA(caFile); err != nil {
				return nil, err
			}
		}
		if ep.prefix, err = ClusterPrefix(ep.prefix); err != nil {
			return nil, fmt.Errorf("store url (%s://…): %w", scheme, err)
		}
	default:
		return nil, fmt.Errorf("store url: scheme %q is not a Redis one (redis://, rediss://, redis+sentinel://, redis+cluster://, rediss+cluster://)", scheme)
	}
	return ep, nil
}

// parseCluster reads redis+cluster://[[user]:password@]HOST:PORT,HOST:PORT[?params]
// into go-redis cluster options: the nodes listed are where the client
// learns the slot map, not necessarily every node. base is "redis" or
// "rediss" (TLS).
func parseCluster(u *url.URL, q url.Values, base string) (*redis.ClusterOptions, error) {
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("a cluster has no database number: want %s+cluster://HOST:PORT,HOST:PORT", base)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("no node addresses: want %s+cluster://HOST:PORT,HOST:PORT", base)
	}
	var addrs []string
	for _, h := range strings.Split(u.Host, ",") {
		if _, _, err := net.SplitHostPort(h); err != nil {
			return nil, fmt.Errorf("node address %q: want HOST:PORT", h)
		}
		addrs = append(addrs, h)
	}
	if q.Has("addr") {
		return nil, fmt.Errorf("give the node addresses in the URL's host part, not as addr parameters")
	}
	for _, a := range addrs[1:] {
		q.Add("addr", a)
	}
	g := url.URL{Scheme: base, Host: addrs[0], User: u.User, RawQuery: q.Encode()}
	return redis.ParseClusterURL(g.String())
}

// ClusterPrefix returns the key prefix a store on a Redis Cluster uses for
// key_prefix p: p itself when it holds a hash tag (the first {…} with
// something inside: Redis Cluster places a key by its tag alone), else p
// with its name in braces ("qrs:" becomes "{qrs}:"), so that every key of
// the store is in one hash slot, and switches with different prefixes in
// different slots (see the package comment).
func ClusterPrefix(p string) (string, error) {
	open := strings.IndexByte(p, '{')
	if open < 0 {
		if strings.IndexByte(p, '}') >= 0 {
			return "", fmt.Errorf("%s %q: a } without a {", paramPrefix, p)
		}
		name := strings.TrimSuffix(p, ":")
		if name == "" {
			// "{}" is no tag: Redis would hash each whole key.
			return "", fmt.Errorf("%s %q: a cluster store needs a prefix with a name, like qrs:", paramPrefix, p)
		}
		return "{" + name + "}" + p[len(name):], nil
	}
	end := strings.IndexByte(p[open:], '}')
	if end <= 1 {
		return "", fmt.Errorf("%s %q: its first { must open a hash tag with something inside, like {qrs}:", paramPrefix, p)
	}
	return p, nil
}

// parseSentinel reads redis+sentinel://[:password@]MASTER/HOST:PORT,HOST:PORT[/DB]
// into go-redis failover options: the user info is the data nodes'
// credentials, sentinel_password the sentinels' own.
func parseSentinel(u *url.URL, q url.Values) (*redis.FailoverOptions, error) {
	master := u.Host
	if master == "" {
		return nil, fmt.Errorf("no master name: want redis+sentinel://MASTER/HOST:PORT,HOST:PORT[/DB]")
	}
	path := strings.TrimPrefix(u.Path, "/")
	hosts, db, _ := strings.Cut(path, "/")
	if hosts == "" {
		return nil, fmt.Errorf("no sentinel addresses: want redis+sentinel://MASTER/HOST:PORT,HOST:PORT[/DB]")
	}
	var addrs []string
	for _, h := range strings.Split(hosts, ",") {
		if _, _, err := net.SplitHostPort(h); err != nil {
			return nil, fmt.Errorf("sentinel address %q: want HOST:PORT", h)
		}
		addrs = append(addrs, h)
	}
	// Build the URL go-redis's own parser takes, so that every tuning
	// parameter it knows works here too: its user info is the sentinels'
	// credentials and its password parameter the data nodes'.
	g := url.URL{Scheme: "redis", Host: addrs[0]}
	if db != "" {
		g.Path = "/" + db
	}
	if sp := q.Get(paramSentinelPassword); sp != "" {
		g.User = url.UserPassword("", sp)
	}
	q.Del(paramSentinelPassword)
	if q.Has("master_name") || q.Has("addr") || q.Has("password") || q.Has("username") {
		return nil, fmt.Errorf("give the master name, sentinel addresses and credentials in the URL's parts, not as parameters")
	}
	q.Set("master_name", master)
	for _, a := range addrs[1:] {
		q.Add("addr", a)
	}
	if u.User != nil {
		if name := u.User.Username(); name != "" {
			q.Set("username", name)
		}
		if pw, ok := u.User.Password(); ok {
			q.Set("password", pw)
		}
	}
	g.RawQuery = q.Encode()
	return redis.ParseFailoverURL(g.String())
}

func loadCA(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("store url ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("store url ca_file %s: no PEM certificate in it", file)
	}
	return pool, nil
}
